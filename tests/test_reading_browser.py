"""In Debian's Chromium: photos of a sheet uploaded on the reading page and the uncertain marks confirmed by
keyboard; the HĐ-CT key that leaves the rest of a row blank."""
from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from survey_service.models import KEYER_READER, Keying, Response
from survey_service.omr import reader, simulate
from survey_service.services import keying, printing, reading, sheets
from tests.conftest import axe_violations, collect_from_today
from tests.test_paper_browser import log_in

pytestmark = pytest.mark.browser
KEYS = ["test-sheet-key"]


@pytest.fixture(autouse=True)
def _collecting_today(session, loaded_round):
    collect_from_today(session, loaded_round)


def confirm_by_keyboard(page, pending, truth: dict) -> None:
    """Answer each uncertain mark as the clerk would, with what was meant: a text typed, a blank as "-"."""
    texts = {i.code for i in pending.form.questionnaire.text_items}
    for key in pending.review:
        meant = truth.get(key)
        if key in texts:
            page.keyboard.type("Góp ý" if meant else "")
            page.keyboard.press("Tab")
        else:
            page.keyboard.press("-" if meant in (None, reader.REVIEW) else meant)
    page.keyboard.press("Enter")


def test_photos_uploaded_and_uncertain_marks_confirmed_by_keyboard(app, loaded_round, session, make_user,
                                                                    live_server, browser, tmp_path):
    plans = sheets.paper_cells(session, loaded_round, form_code="LĐH-CH")
    sheet = sheets.issue_sheets(session, loaded_round, plans[:1], actor="test")[0]
    session.commit()
    pdf = printing.sheets_pdf(session, [sheet], base_url=live_server, signing_keys=KEYS)
    plan = reading.sheet_pages(keying.sheet_form(session, sheet))
    rng = random.Random(2)
    truth, files = {}, []
    for number, (image, page) in enumerate(zip(reader.images_from_file(pdf), plan), 1):
        filled, meant, _ = simulate.fill(image, page, rng, reader.PDF_DPI / 25.4)
        truth |= meant
        path = tmp_path / f"trang-{number}.jpg"
        path.write_bytes(simulate.photograph(filled, rng, simulate.CONDITIONS[1]))
        files.append(str(path))
    context = browser.new_context(locale="vi-VN")
    page = log_in(context, live_server, make_user("clerk").username)
    page.goto(f"{live_server}/paper/read?round={loaded_round.code}")
    page.set_input_files("#files", files)
    page.click("form[enctype] button[type=submit]")
    page.wait_for_selector("[data-read-results]")
    assert page.locator("[data-read-results] .has-error").count() == 0
    assert axe_violations(page) == []
    pending = reading.waiting(session, sheet)
    assert pending is not None and pending.review  # this seed leaves marks to confirm
    if pending is not None:
        page.goto(f"{live_server}/paper/read/{sheet.serial}")
        assert axe_violations(page) == []
        confirm_by_keyboard(page, pending, truth)
        page.wait_for_url(f"{live_server}/paper/read?round={loaded_round.code}")
    context.close()
    session.expire_all()
    first = session.scalar(sa.select(Keying).where(Keying.sheet_id == sheet.id))
    assert first.keyer == KEYER_READER
    stored = {a.item_code: a.value for a in session.scalar(
        sa.select(Response).where(Response.sheet_id == sheet.id)).answers}
    for code, meant in truth.items():
        if meant not in (None, reader.REVIEW, "text"):
            assert stored[code] == meant, code


def test_star_blanks_the_rest_of_an_hdct_row(app, loaded_round, session, make_user, live_server, browser):
    plans = sheets.paper_cells(session, loaded_round, form_code="HĐ-CT")
    sheet = sheets.issue_sheets(session, loaded_round, plans, actor="test")[0]
    session.commit()
    form = keying.sheet_form(session, sheet)
    columns, rows = len(form.questionnaire.scale_items), len(form.rows)
    context = browser.new_context(locale="vi-VN")
    page = log_in(context, live_server, make_user("clerk").username)
    page.goto(f"{live_server}/paper/sheets/{sheet.serial}/key")
    page.wait_for_selector("input.cell:focus")
    keys = 0
    for row in range(rows):
        if row < 5:
            page.keyboard.type("4" * columns)
            keys += columns
        else:
            page.keyboard.type("3*" if row == 5 else "*")  # one answer, then the rest blank
            keys += 2 if row == 5 else 1
    assert page.evaluate("document.activeElement.name") == "*:KN"
    page.keyboard.press("Enter")
    keys += 1
    page.wait_for_url(f"{live_server}/paper/?round=QNA-2023")
    context.close()
    assert keys == 5 * columns + (rows - 5) + 2
    stored = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    assert sum(1 for a in stored.answers if a.value == "4") == 5 * columns
    assert [a.value for a in stored.answers if a.agency_id == form.rows[5].agency_id] == ["3"]
    assert len(stored.answers) == 5 * columns + 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL: tests/test_reading_hdct.py
def test_hdct_scanner_pdf_missing_page_shown_then_confirmed_by_keyboard(app, loaded_round, session, make_user,
                                                                         live_server, browser, tmp_path):
    """A delegates' sheet scanned to one PDF without one page: the page missing is shown; once it is
    uploaded, the clerk confirms the uncertain marks, each shown with its agency, by keyboard."""
    from tests.test_reading_hdct import delegate_pages, scanner_pdf

    plans = sheets.paper_cells(session, loaded_round, form_code="HĐ-CT")
    sheet = sheets.issue_sheets(session, loaded_round, plans[:1], actor="test")[0]
    session.commit()
    filled, truth, rng = delegate_pages(session, sheet, seed=5)
    shots = [simulate.photograph(image, rng, simulate.CONDITIONS[0]) for image in filled]
    missing = 2
    (tmp_path / "quet.pdf").write_bytes(scanner_pdf([s for n, s in enumerate(shots, 1) if n != missing][::-1]))
    (tmp_path / "trang.jpg").write_bytes(shots[missing - 1])
    context = browser.new_context(locale="vi-VN")
    page = log_in(context, live_server, make_user("clerk").username)
    page.goto(f"{live_server}/paper/read?round={loaded_round.code}")
    page.set_input_files("#files", str(tmp_path / "quet.pdf"))
    page.click("form[enctype] button[type=submit]")
    page.wait_for_selector("[data-read-results]")
    assert page.locator("[data-read-results] tbody tr").count() == len(shots) - 1
    assert page.locator("[data-read-results] .has-error").count() == 0
    assert f"còn thiếu trang {missing}" in page.locator("[data-incomplete]").inner_text()
    assert axe_violations(page) == []
    page.set_input_files("#files", str(tmp_path / "trang.jpg"))
    page.click("form[enctype] button[type=submit]")
    page.wait_for_selector("[data-read-results]")
    assert page.locator("[data-incomplete]").count() == 0
    pending = reading.waiting(session, sheet)
    assert pending is not None and pending.review  # this seed leaves marks to confirm
    page.goto(f"{live_server}/paper/read/{sheet.serial}")
    captions = page.locator("figcaption").all_inner_texts()
    assert [c.split(":")[0] for c in captions] == [pending.label(key) for key in pending.review]
    assert axe_violations(page) == []
    confirm_by_keyboard(page, pending, truth)
    page.wait_for_url(f"{live_server}/paper/read?round={loaded_round.code}")
    context.close()
    session.expire_all()
    response = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    rows = {row.agency_id: row.key for row in keying.sheet_form(session, sheet).rows}
    stored = {f"{rows[a.agency_id]}:{a.item_code}": a.value for a in response.answers if a.agency_id}
    assert stored == {key: value for key, value in truth.items()
                      if ":" in key and not key.endswith(":-") and value not in (None, reader.REVIEW)}
