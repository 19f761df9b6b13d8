"""Staff pages on a 360 px phone and a 1,280 px desktop, in Debian's Chromium, on a simulated round: nothing
wider than the screen, nothing cut or broken where a person reads it (role names, codes, form codes, buttons),
and a dashboard a phone can scroll through."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from survey_service.models import CodeBatch, QuotaCell
from survey_service.services import invitations, rounds, simulation
from tests.conftest import QUESTIONNAIRE_DIR, ROUND_DIR

pytestmark = pytest.mark.browser
DEMO = "QNA-2023-DEMO"

#: The number of lines an element's text takes on screen.
LINES = """el => {
  const range = document.createRange(); range.selectNodeContents(el);
  const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
  return tops.size;
}"""
#: Whether a select shows the whole of its chosen option's text.
SELECT_FITS = """el => {
  const style = getComputedStyle(el), ctx = document.createElement("canvas").getContext("2d");
  ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const text = ctx.measureText(el.options[el.selectedIndex].text).width;
  const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 16;
  return text <= room;
}"""


@pytest.fixture
def demo(app, session, make_user):
    rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR, actor="test", simulated_code=DEMO)
    rnd = rounds.get_round(session, DEMO)
    today = date.today()
    rounds.schedule(session, rnd, today - timedelta(days=7), today + timedelta(days=30), actor="test")
    simulation.simulate(session, rnd, clerks=(make_user("clerk"), make_user("clerk")), supervisor=make_user(),
                        today=date.today(), signing_keys=["k"], secret="screens-test-secret",
                        online_share=(0.06, 0.15))
    session.commit()
    return rnd


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], page.url


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_staff_pages_fit_the_screen(demo, session, staff_page, live_server, artifacts, make_user, viewport):
    # the response detail page (an analyst's): long question texts wrap inside the screen
    analyst = staff_page("analyst", viewport)
    analyst.goto(f"{live_server}/staff/responses/{DEMO}/?sort=agency")
    analyst.locator("a[href*='/r/']").first.click()
    analyst.wait_for_url("**/r/**")
    analyst.screenshot(path=str(artifacts / f"response-{viewport}.png"), full_page=True)
    assert analyst.get_by_role("heading", name=re.compile("Phiếu trả lời")).is_visible()
    _fits(analyst)
    make_user("supervisor", username="gs2")
    page = staff_page("admin", viewport)
    # the accounts table: each role select shows the whole role name
    page.goto(f"{live_server}/staff/admin/users")
    page.screenshot(path=str(artifacts / f"users-{viewport}.png"), full_page=True)
    selects = page.locator("select[name=role]")
    assert selects.count() >= 2
    for i in range(selects.count()):
        assert selects.nth(i).evaluate(SELECT_FITS), selects.nth(i).input_value()
    _fits(page)
    # a batch of codes: every code on one line
    cell = session.scalar(sa.select(QuotaCell)
                          .where(QuotaCell.round_id == demo.id, QuotaCell.channel == "online").limit(1))
    invitations.issue_codes(session, cell, 3, actor="test")
    session.commit()
    batch = session.scalar(sa.select(CodeBatch.id).where(CodeBatch.quota_cell_id == cell.id)
                           .order_by(CodeBatch.id.desc()).limit(1))
    page.goto(f"{live_server}/staff/invitations/batches/{batch}")
    page.screenshot(path=str(artifacts / f"batch-{viewport}.png"), full_page=True)
    codes = page.locator("table code")
    assert codes.count() >= 3
    assert [codes.nth(i).evaluate(LINES) for i in range(3)] == [1, 1, 1]
    _fits(page)
    # codes per cell: form codes and the issue buttons on one line each
    page.goto(f"{live_server}/staff/invitations/?round={DEMO}")
    page.screenshot(path=str(artifacts / f"codes-{viewport}.png"), full_page=True)
    rows = page.locator("table.codes tbody tr")
    for i in range(min(rows.count(), 8)):
        assert rows.nth(i).locator("td").first.evaluate(LINES) == 1, rows.nth(i).inner_text()
        assert rows.nth(i).get_by_role("button", name="Phát mã").evaluate(LINES) == 1
    _fits(page)


def test_dashboard_on_a_phone(demo, staff_page, live_server, artifacts):
    page = staff_page("supervisor", "phone")
    page.goto(f"{live_server}/staff/progress/{DEMO}")
    page.screenshot(path=str(artifacts / "dashboard-phone.png"), full_page=True)
    _fits(page)
    height = page.evaluate("document.documentElement.scrollHeight")
    print("dashboard height", height)
    assert height < 12_000
    chart = page.locator("figure.chart img").first
    assert chart.bounding_box()["height"] >= 150  # readable, not squeezed to a strip
