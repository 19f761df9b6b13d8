"""The key-in screen in Debian's Chromium: keyboard-only keying, a double-entry disagreement settled by a
supervisor, and scanning a printed QR with a (fake) camera."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from survey_service.models import Response, SheetState
from survey_service.services import keying, printing, sheets
from tests.conftest import BROWSER_ARGS, CHROMIUM, PASSWORD, collect_from_today

pytestmark = pytest.mark.browser
KEYS = ["test-sheet-key"]


@pytest.fixture(autouse=True)
def _collecting_today(request):
    """Sheets are keyed only while their round collects: the real 2023 window moves around today."""
    if "loaded_round" in request.fixturenames:
        collect_from_today(request.getfixturevalue("session"), request.getfixturevalue("loaded_round"))


class Keyboard:
    """Presses keys on a page and counts them."""

    def __init__(self, page):
        self.page = page
        self.count = 0

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)
            self.count += 1


def issue_ldh(session, rnd, agency="SNV"):
    plans = sheets.paper_cells(session, rnd, form_code="LĐH-CH", agency_code=agency)
    batch = sheets.issue_sheets(session, rnd, plans, actor="test")
    session.commit()
    return batch


def log_in(context, base: str, username: str):
    page = context.new_page()
    page.goto(f"{base}/staff/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/")
    return page


def key_by_keyboard(page, base: str, serial: str, keys: list[str]) -> Keyboard:
    page.goto(f"{base}/paper/sheets/{serial}/key")
    page.wait_for_selector("form[data-keying] input[type=radio]:focus")
    keyboard = Keyboard(page)
    keyboard.press(*keys)
    keyboard.press("Enter")
    page.wait_for_url(f"{base}/paper/?round=QNA-2023")
    assert f"Đã lưu phiếu {serial}" in page.content()
    return keyboard


def test_keyboard_only_keying_of_an_ldh_sheet(app, loaded_round, session, make_user, live_server, browser,
                                              artifacts):
    sheet = issue_ldh(session, loaded_round)[0]
    form = keying.sheet_form(session, sheet)
    items = form.questionnaire.scale_items
    assert len(items) == 18
    clerk = make_user("clerk")
    context = browser.new_context(locale="vi-VN")
    page = log_in(context, live_server, clerk.username)
    typed = ["4", "3", "2", "1", "0", "k", "4", "4", "3", "3", "2", " ", "1", "4", "3", "2", "K", "5"]
    keyboard = key_by_keyboard(page, live_server, sheet.serial, typed)
    page.screenshot(path=str(artifacts / "after-save.png"))
    context.close()

    assert keyboard.count <= 20
    (artifacts / "keystrokes.json").write_text(json.dumps(
        {"form": "LĐH-CH", "rated_items": len(items), "text_items": len(form.questionnaire.text_items),
         "keystrokes": keyboard.count}))
    session.expire_all()
    stored = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    values = {a.item_code: a.value for a in stored.answers}
    expected = {item.code: {"0": "K", "k": "K"}.get(key, key) for item, key in zip(items, typed) if key != " "}
    assert values == expected
    assert sheet.state is SheetState.KEYED and sheet.keyings[0].clerk_id == clerk.id


def test_double_entry_disagreement_through_reconciliation(app, loaded_round, session, make_user, live_server,
                                                          browser, artifacts):
    sheet = issue_ldh(session, loaded_round)[0]
    first, second, supervisor = make_user("clerk"), make_user("clerk"), make_user("supervisor")
    answers = ["3"] * 18

    context = browser.new_context(locale="vi-VN")
    key_by_keyboard(log_in(context, live_server, first.username), live_server, sheet.serial, answers)
    context.close()

    context = browser.new_context(locale="vi-VN")
    page = log_in(context, live_server, second.username)
    page.goto(f"{live_server}/paper/second?round=QNA-2023")
    page.click(f"text={sheet.serial}")
    page.wait_for_selector("form[data-keying] input[type=radio]:focus")
    assert "Lần nhập 2" in page.content() and page.locator("input[type=radio]:checked").count() == 0
    keyboard = Keyboard(page)
    # Types 2 for item 3, goes back with Backspace and corrects it, then keys 4 for item 5 (paper says 3).
    keyboard.press("3", "3", "2", "Backspace", "3", "3", "4", *["3"] * 13, "Enter")
    page.wait_for_url(f"{live_server}/paper/?round=QNA-2023")
    context.close()
    session.expire_all()
    assert sheet.state is SheetState.KEYED
    assert [(d.item, d.first, d.second) for d in keying.disagreements(sheet)] == [("E05", "3", "4")]

    context = browser.new_context(locale="vi-VN")
    page = log_in(context, live_server, supervisor.username)
    page.goto(f"{live_server}/paper/reconcile?round=QNA-2023")
    page.click(f"text={sheet.serial}")
    page.check("input[name='*:E05'][value='1']")
    page.screenshot(path=str(artifacts / "reconcile.png"))
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{live_server}/paper/reconcile?round=QNA-2023")
    assert "Đã đối chiếu và xác nhận" in page.content()
    page.goto(f"{live_server}/paper/agreement?round=QNA-2023")
    assert first.username in page.content() and second.username in page.content()
    context.close()
    session.expire_all()
    assert sheet.state is SheetState.VERIFIED
    stored = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    assert {a.value for a in stored.answers if a.item_code != "KN"} == {"3"}


def test_matrix_sheet_is_keyed_row_by_row(app, loaded_round, session, make_user, live_server, browser):
    plans = sheets.paper_cells(session, loaded_round, form_code="HĐ-CT")
    sheet = sheets.issue_sheets(session, loaded_round, plans, actor="test")[0]
    session.commit()
    form = keying.sheet_form(session, sheet)
    columns = len(form.questionnaire.scale_items)
    context = browser.new_context(locale="vi-VN")
    page = log_in(context, live_server, make_user("clerk").username)
    page.goto(f"{live_server}/paper/sheets/{sheet.serial}/key")
    page.wait_for_selector("input.cell:focus")
    # First row: 4 then K (typed as 0) for the rest; a wrong key (9) is refused on screen and not advanced.
    page.keyboard.type("4")
    page.keyboard.press("9")
    assert page.locator("[data-keying-message]").is_visible()
    page.keyboard.type("0" * (columns - 1))
    page.keyboard.type("3" * (columns * (len(form.rows) - 1)))
    assert page.evaluate("document.activeElement.name") == "*:KN"
    page.keyboard.type("Ý kiến viết tay")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server}/paper/?round=QNA-2023")
    context.close()
    stored = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    first_row = form.rows[0].agency_id
    assert sorted(a.value for a in stored.answers if a.agency_id == first_row) == ["4"] + ["K"] * (columns - 1)
    assert sum(1 for a in stored.answers if a.value == "3") == columns * (len(form.rows) - 1)
    assert [a.value for a in stored.answers if a.agency_id is None] == ["Ý kiến viết tay"]


def write_y4m(path, picture: Image.Image, width: int = 640, height: int = 480, frames: int = 10) -> None:
    """A Y4M video showing ``picture`` (grayscale) centred on white, as a camera would see a sheet."""
    picture = picture.convert("L")
    picture.thumbnail((width - 20, height - 20))
    frame = np.full((height, width), 255, dtype=np.uint8)
    top, left = (height - picture.height) // 2, (width - picture.width) // 2
    frame[top:top + picture.height, left:left + picture.width] = np.asarray(picture)
    chroma = np.full((height // 2) * (width // 2), 128, dtype=np.uint8).tobytes()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + frame.tobytes() + chroma + chroma)


def printed_corner(session, sheet, base_url: str, tmp_path) -> Image.Image:
    """The top right corner (QR code and header) of the sheet's first printed page, rendered at 200 dpi."""
    pdf = tmp_path / "sheet.pdf"
    pdf.write_bytes(printing.sheets_pdf(session, [sheet], base_url=base_url, signing_keys=KEYS))
    subprocess.run(["pdftoppm", "-r", "200", "-f", "1", "-l", "1", "-png", "-singlefile", str(pdf),
                    str(tmp_path / "page")], check=True)
    page = Image.open(tmp_path / "page.png")
    side = int(page.width * 0.3)
    return page.crop((page.width - side, 0, page.width, side))


@pytest.fixture
def camera_browser(_playwright, tmp_path):
    """A separate Chromium whose camera shows the file ``camera.y4m`` (written by the test first)."""
    video = tmp_path / "camera.y4m"

    def launch():
        return _playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=BROWSER_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                 f"--use-file-for-fake-video-capture={video}"])

    browsers = []
    yield video, lambda: browsers.append(launch()) or browsers[-1]
    for b in browsers:
        b.close()


def test_camera_scan_of_a_printed_qr_opens_the_keying_screen(app, loaded_round, session, make_user, live_server,
                                                             browser, camera_browser, artifacts):
    sheet = issue_ldh(session, loaded_round)[1]
    video, launch = camera_browser
    write_y4m(video, printed_corner(session, sheet, live_server, video.parent))
    clerk = make_user("clerk")
    context = launch().new_context(locale="vi-VN", permissions=["camera"])
    page = log_in(context, live_server, clerk.username)
    page.goto(f"{live_server}/paper/?round=QNA-2023")
    page.click("text=Quét bằng camera")
    page.wait_for_url(f"{live_server}/paper/sheets/{sheet.serial}/key", timeout=20_000)
    page.screenshot(path=str(artifacts / "camera-landing.png"))
    assert sheet.serial in page.locator("[data-serial]").inner_text()
    context.close()
