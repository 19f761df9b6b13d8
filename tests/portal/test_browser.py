"""The respondent's flow in Debian's Chromium at 360x740, keyboard only; screenshots kept as artefacts."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey_service.models import Ballot
from tests.portal.conftest import until

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 360, "height": 740}


def tab_to(page, name: str, limit: int = 80) -> None:
    """Press Tab until the focused element has the given name (a radio group, a text box or a button)."""
    for _ in range(limit):
        if page.evaluate("document.activeElement && (document.activeElement.name || '')") == name:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"could not reach {name} with the keyboard")


def answer_by_keyboard(page, items) -> None:
    """Scale items: Tab into the group, Space picks the first option, ArrowDown moves to the second
    ("Tốt" / "Hài lòng"). Text items: type."""
    for item in items:
        tab_to(page, item.code)
        if item.kind == "scale":
            page.keyboard.press("Space")
            page.keyboard.press("ArrowDown")
        else:
            page.keyboard.type("Đề nghị công khai tiến độ giải quyết hồ sơ.")


def submit_by_keyboard(page, action: str) -> None:
    for _ in range(120):
        if page.evaluate("document.activeElement && document.activeElement.value") == action \
                and page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
        page.keyboard.press("Tab")
    # the offline form sends by script and writes the server's answer in place, without a navigation
    page.evaluate("document.body.dataset.before = '1'")
    page.keyboard.press("Enter")
    until(page, "() => !document.body.dataset.before && document.readyState === 'complete'")


def test_respondent_answers_saves_resumes_and_submits_by_keyboard(browser, live_server, issue, questionnaire,
                                                                  session, artifacts):
    respondent_flow(browser, live_server, issue, questionnaire, session, artifacts)


def respondent_flow(browser, live_server, issue, questionnaire, session, artifacts, javascript: bool = True) -> None:
    """Answer half, save, resume on another device, submit with answers missing, complete, submit; then a
    second submit from the first device is refused. Also run on a round answered offline, with and without
    JavaScript (tests/portal/test_offline_browser.py)."""
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    first_half, second_half = q.items[:8], q.items[8:]
    link = f"{live_server}/c/{code}"

    phone = browser.new_context(viewport=VIEWPORT, locale="vi-VN", java_script_enabled=javascript)
    page = phone.new_page()
    page.goto(link)
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    page.screenshot(path=str(artifacts / "1-form.png"), full_page=False)
    answer_by_keyboard(page, first_half)
    submit_by_keyboard(page, "save")
    assert "Đã lưu các câu trả lời" in page.content()
    page.screenshot(path=str(artifacts / "2-saved.png"))

    other = browser.new_context(viewport=VIEWPORT, locale="vi-VN", java_script_enabled=javascript)
    resumed = other.new_page()
    resumed.goto(link)
    for item in first_half:
        if item.kind == "scale":
            assert resumed.is_checked(f"input[name='{item.code}'][value='3']"), item.code
    # Submitting now shows the missing answers at their fields, with focus on the first one.
    tab_to(resumed, first_half[-1].code)
    submit_by_keyboard(resumed, "submit")
    first_missing = second_half[0].code
    until(resumed, f"() => document.activeElement.name === '{first_missing}'", timeout=5)
    error = resumed.locator(f"#q-{first_missing} .error")
    assert error.is_visible() and "Vui lòng chọn một mức đánh giá" in error.inner_text()
    assert resumed.locator("fieldset.has-error").count() == sum(1 for i in second_half if i.required)
    resumed.screenshot(path=str(artifacts / "3-errors.png"))
    answer_by_keyboard(resumed, second_half)
    submit_by_keyboard(resumed, "submit")
    assert resumed.locator("h1").inner_text() == "Cảm ơn Anh/Chị đã gửi phiếu"
    resumed.screenshot(path=str(artifacts / "4-thanks.png"))

    # The first device still shows the form: a second submit is refused.
    answer_by_keyboard(page, second_half)
    submit_by_keyboard(page, "submit")
    assert page.locator("h1").inner_text() == "Phiếu đã được gửi"
    page.screenshot(path=str(artifacts / "5-second-submit.png"))
    phone.close()
    other.close()
    assert session.scalar(sa.select(sa.func.count()).select_from(Ballot)) == 1


def test_home_page_at_360_and_a_wrong_code(browser, live_server, open_round, artifacts):
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN")
    page = context.new_page()
    page.goto(live_server + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    page.get_by_label("Nhập mã khảo sát trên phiếu mời").fill("abcd efgh jkmn")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Không tìm thấy mã này" in page.locator("#code-err").inner_text()
    assert page.evaluate("document.activeElement.id") == "code"
    page.screenshot(path=str(artifacts / "wrong-code.png"), full_page=True)
    context.close()
