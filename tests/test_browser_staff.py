"""A staff member logs in with a real browser (Debian's Chromium) on a phone-sized screen."""
import pytest

pytestmark = pytest.mark.browser


def test_login_in_a_real_browser(browser, live_server, make_user, artifacts):
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
    context.close()
