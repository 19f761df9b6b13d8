"""What a respondent meets around the form: the closed round's home page, the way back from the thank-you
page, the browser's icon, and form cards read as a person sees them (phone and desktop, accessibility scan)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from survey_service.web.respond import local_today
from tests.conftest import VIEWPORTS, axe_violations
from tests.portal.conftest import full_answers
from tests.portal.test_respond_views import form_fields


def _division_tag(client, code: str) -> str:
    """Open the LĐ-CP invitation link; the division page's tag that binds its POST to the code."""
    page = client.get(f"/c/{code}", follow_redirects=True).get_data(as_text=True)
    return re.search(r'name="form_tag" type="hidden" value="([0-9a-f]+)"', page).group(1)


@pytest.fixture(params=["phone", "desktop"])
def respondent_page(request, browser, live_server):
    """A browser page on the phone screen, then on the desktop one (a test using it runs on both):
    ``respondent_page("/c/CODE")`` opens that portal path on it and returns the page."""
    context = browser.new_context(viewport=VIEWPORTS[request.param], locale="vi-VN")
    page = context.new_page()

    def open_path(path: str):
        page.goto(f"{live_server}{path}")
        return page

    yield open_path
    context.close()


def test_closed_round_home_page_says_so_and_offers_no_code_box(client, open_round, session):
    today = local_today()
    open_round.opens_on, open_round.closes_on = today - timedelta(days=30), today - timedelta(days=2)
    session.commit()
    html = client.get("/").get_data(as_text=True)
    assert "Đợt khảo sát đã kết thúc" in html and 'name="code"' not in html
    open_round.closes_on = today + timedelta(days=2)
    session.commit()
    html = client.get("/").get_data(as_text=True)
    assert "Đợt khảo sát đã kết thúc" not in html and 'name="code"' in html


def test_thank_you_page_leads_back_to_the_portal(client, issue, questionnaire):
    [code] = issue()
    page = client.get(f"/c/{code}", follow_redirects=True).get_data(as_text=True)
    data = {**form_fields(page), "action": "submit", **full_answers(questionnaire())}
    done = client.post("/phieu", data=data)
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and "Cảm ơn" in html and 'href="/"' in html


def test_favicon_is_served(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.data[:4] == b"\x00\x00\x01\x00"


@pytest.mark.browser
def test_form_cards_hold_their_legends_and_pass_the_scan(respondent_page, issue, artifacts):
    [code] = issue("CC-CT", "SNV")
    page = respondent_page("/")
    assert axe_violations(page) == []
    respondent_page(f"/c/{code}")
    page.wait_for_selector("fieldset.item legend")
    boxes = page.eval_on_selector_all("fieldset.item", """els => els.map(f => {
        const l = f.querySelector('legend').getBoundingClientRect(), b = f.getBoundingClientRect();
        return [l.top - b.top, b.right - l.right, l.left - b.left]; })""")
    assert boxes and all(top > 0 and right >= 0 and left > 0 for top, right, left in boxes), boxes[:3]
    page.locator("fieldset.item").nth(1).scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "form.png"), full_page=False)
    assert axe_violations(page) == []


def test_ldcp_form_shows_where_the_respondent_is_and_errors_name_department_and_question(client, issue,
                                                                                        questionnaire):
    [code] = issue("LĐ-CP", "TAMKY")
    tag = _division_tag(client, code)
    client.post("/phieu/phong", data={"division": "TCKH", "form_tag": tag})
    html = client.get("/phieu").get_data(as_text=True)
    q = questionnaire("LĐ-CP")
    assert "Phiếu có 2 phần" in html and 'href="#part-1"' in html and 'id="part-2"' in html
    assert "Phần 1/2" in html and "Phần 2/2" in html
    assert f'Câu 1<span class="of">/{len(q.items)}</span>' in html
    half = {f"STC-{k}": v for k, v in full_answers(q).items()}  # the second department left unanswered
    refused = client.post("/phieu", data={**form_fields(html), "action": "submit", **half})
    summary = re.search(r'<div class="errorsummary".*?</div>', refused.get_data(as_text=True), re.S).group(0)
    lines = re.findall(r"<li>(.*?)</li>", summary, re.S)
    assert lines and all("Sở Kế hoạch và Đầu tư – Câu" in line for line in lines)
    assert len({re.search(r"Câu \d+", line).group(0) for line in lines}) == len(lines)  # each line its own


def test_ldcp_division_must_be_picked_and_can_be_changed(client, issue):
    [code] = issue("LĐ-CP", "TAMKY")
    tag = _division_tag(client, code)
    empty = client.post("/phieu/phong", data={"form_tag": tag})
    assert empty.status_code == 400
    assert "Vui lòng chọn phòng chuyên môn" in empty.get_data(as_text=True)
    assert "không có trong danh sách" not in empty.get_data(as_text=True)
    assert client.post("/phieu/phong", data={"division": "TCKH", "form_tag": tag}).status_code == 303
    form = client.get("/phieu").get_data(as_text=True)
    assert 'href="/phieu/phong"' in form and "Đổi phòng chuyên môn" in form
    back = client.get("/phieu/phong").get_data(as_text=True)
    assert re.search(r'value="TCKH"\s+checked', back)
    assert "Quay lại phiếu" in back
    assert client.post("/phieu/phong", data={"division": "NV", "form_tag": tag}).status_code == 303
    html = client.get("/phieu").get_data(as_text=True)
    assert "Đánh giá: Sở Nội vụ" in html and "Đánh giá: Sở Tài chính" not in html


@pytest.mark.browser
def test_ldcp_pages_in_the_browser(respondent_page, issue, artifacts):
    [code] = issue("LĐ-CP", "TAMKY")
    page = respondent_page(f"/c/{code}")
    page.get_by_role("button", name="Tiếp tục").click()
    page.wait_for_selector("#division-err")
    assert "Vui lòng chọn phòng chuyên môn" in page.content()
    assert axe_violations(page) == []
    page.get_by_label("Phòng Tài chính - Kế hoạch").check()
    page.get_by_role("button", name="Tiếp tục").click()
    page.wait_for_url("**/phieu")
    parts = page.get_by_role("navigation", name="Các phần của phiếu")
    assert parts.is_visible() and parts.get_by_role("link").count() == 2
    page.screenshot(path=str(artifacts / "ldcp.png"))
    assert axe_violations(page) == []
    page.get_by_role("link", name="Đổi phòng chuyên môn").click()
    page.wait_for_url("**/phieu/phong")
    assert page.get_by_label("Phòng Tài chính - Kế hoạch").is_checked()


@pytest.mark.browser
def test_refusal_and_thank_you_pages_pass_the_scan(respondent_page, live_server, issue, artifacts):
    [code] = issue("CC-CT", "SNV")
    page = respondent_page("/")
    page.get_by_label("Nhập mã khảo sát trên phiếu mời").fill("2222-2222-2222")
    page.get_by_role("button", name="Bắt đầu trả lời").click()
    page.wait_for_selector("#code-err")
    assert axe_violations(page) == []
    respondent_page(f"/c/{code}")
    for card in page.locator("fieldset.item").all():
        options = card.locator("input[type=radio]")
        if options.count():
            options.first.check()
        else:
            card.locator("textarea").fill("Cần rút ngắn thời gian xử lý hồ sơ.")
    page.get_by_role("button", name="Gửi phiếu").click()
    page.wait_for_selector("section.state-thanks")
    assert "Cảm ơn Anh/Chị đã gửi phiếu" in page.locator("h1").inner_text()
    page.screenshot(path=str(artifacts / "thanks.png"), full_page=True)
    assert axe_violations(page) == []
    page.get_by_role("link", name="Về trang chủ khảo sát").click()
    page.wait_for_url(f"{live_server}/")
