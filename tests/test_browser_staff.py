"""A staff member logs in with a real browser (Debian's Chromium) on a phone-sized screen."""
import pytest

from tests.conftest import axe_violations

pytestmark = pytest.mark.browser


def test_login_in_a_real_browser(browser, live_server, make_user, loaded_round, artifacts):
    make_user("supervisor", username="giamsat", full_name="Nguyễn Thị Giám Sát")
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/staff/login")
    page.get_by_label("Tên đăng nhập").fill("giamsat")
    page.get_by_label("Mật khẩu").fill("wrong-password-1")
    page.keyboard.press("Enter")
    assert page.get_by_role("alert").first.inner_text().startswith("Tên đăng nhập hoặc mật khẩu không đúng")
    page.get_by_label("Mật khẩu").fill("correct-horse-battery")
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"{live_server}/staff/")
    assert "Nguyễn Thị Giám Sát" in page.inner_text("h1")
    # Nothing overflows the 360 px screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(artifacts / "staff-home.png"), full_page=True)

    # The reminders table: one card per agency, each line as wide as the card and naming its column.
    page.goto(f"{live_server}/staff/reminders/QNA-2023/")
    first = page.locator("#reminders tbody tr").first
    cells = first.locator("th, td")
    boxes = [cells.nth(i).bounding_box() for i in range(cells.count())]
    assert len({round(b["x"]) for b in boxes}) == 1 and min(b["width"] for b in boxes) > 300, boxes
    assert page.evaluate("el => getComputedStyle(el, '::before').content", first.locator("td").first.element_handle()) \
        == '"Phiếu còn thiếu: "'
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert axe_violations(page) == []
    page.screenshot(path=str(artifacts / "reminders.png"), full_page=False)
    context.close()


@pytest.mark.parametrize(("role", "path", "width"), [("supervisor", "/staff/progress/QNA-2023", 90 * 16),
                                                     ("admin", "/staff/admin/audit", 80 * 16)])
def test_wide_pages_widen_their_header_and_footer_too(staff_page, live_server, loaded_round, role, path, width):
    page = staff_page(role, "desktop")
    page.set_viewport_size({"width": 1800, "height": 900})
    page.goto(f"{live_server}{path}")
    boxes = [page.locator(selector).bounding_box() for selector in ("header.site .wrap", "main", "footer.site .wrap")]
    assert {(round(b["x"]), round(b["width"])) for b in boxes} == {((1800 - width) // 2, width)}, boxes


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_api_token_made_and_revoked_in_a_real_browser(staff_page, live_server, artifacts, viewport):
    page = staff_page("analyst", viewport)
    page.goto(f"{live_server}/staff/api-token/")
    page.get_by_role("button", name="Tạo mã").click()
    assert page.locator("#token").inner_text()
    assert "(90 ngày)" in page.locator("#token-expiry").inner_text()
    assert axe_violations(page) == []
    page.screenshot(path=str(artifacts / f"token-{viewport}.png"), full_page=True)
    page.get_by_role("button", name="Thu hồi mã").click()
    assert "không dùng được nữa" in page.get_by_role("alertdialog").inner_text()
    page.get_by_role("button", name="Thu hồi mã").click()
    page.wait_for_url(f"{live_server}/staff/api-token/")
    assert "Bạn chưa có mã nào" in page.locator("#token-state").inner_text()
    assert page.get_by_role("button", name="Thu hồi mã").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_accounts_page_with_tokens_passes_the_scan(staff_page, live_server, make_user, session, artifacts):
    from survey_service.services import users

    users.issue_api_token(session, make_user("analyst", username="phantich"))
    session.commit()
    page = staff_page("admin", "desktop")
    page.goto(f"{live_server}/staff/admin/users")
    row = page.locator("tr", has_text="phantich")
    assert "Có, hết hạn lúc" in row.inner_text()
    assert axe_violations(page) == []
    row.get_by_role("button", name="Thu hồi mã truy cập API của phantich").click()
    page.get_by_role("button", name="Thu hồi mã").click()
    page.wait_for_url(f"{live_server}/staff/admin/users")
    assert "Không có" in page.locator("tr", has_text="phantich").inner_text()
    page.screenshot(path=str(artifacts / "accounts-tokens.png"), full_page=True)


def test_the_usual_browser_logs_in_while_the_account_is_attacked(browser, live_server, app, make_user,
                                                                  monkeypatch):
    from survey_service.services import login_throttle

    monkeypatch.setattr(login_throttle, "now_ms", lambda: 1_900_000_000_000)  # no delay runs out meanwhile
    make_user("supervisor", username="giamsat", full_name="Nguyễn Thị Giám Sát")
    usual, new = browser.new_context(locale="vi-VN"), browser.new_context(locale="vi-VN")

    def log_in(context):
        page = context.new_page()
        page.goto(f"{live_server}/staff/login")
        page.get_by_label("Tên đăng nhập").fill("giamsat")
        page.get_by_label("Mật khẩu").fill("correct-horse-battery")
        page.get_by_role("button", name="Đăng nhập").click()
        return page

    page = log_in(usual)
    page.wait_for_url(f"{live_server}/staff/")
    page.get_by_role("button", name="Đăng xuất").click()
    attacker = app.test_client()
    for a in range(12):
        attacker.post("/staff/login", data={"username": "giamsat", "password": f"guess-{a}-password"},
                      environ_base={"REMOTE_ADDR": f"198.51.100.{a}"})
    refused = log_in(new)
    message = refused.get_by_role("alert").first.inner_text()
    assert message.startswith("Tài khoản này đã bị đăng nhập sai nhiều lần")
    page = log_in(usual)
    page.wait_for_url(f"{live_server}/staff/")
    assert "Nguyễn Thị Giám Sát" in page.inner_text("h1")
    usual.close()
    new.close()
