"""Supervisors and analysts list and open individual responses: filters, pages, and the anonymity rules
(no small group, no code, no time, no division, no order that follows submission)."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from survey_service.models import Agency, Response
from survey_service.services import responses, rounds, simulation
from tests.conftest import QUESTIONNAIRE_DIR, ROUND_DIR

DEMO = "QNA-2023-DEMO"


@pytest.fixture
def demo(app, session, make_user):
    rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR, actor="test", simulated_code=DEMO)
    rnd = rounds.get_round(session, DEMO)
    rounds.schedule(session, rnd, date.today() - timedelta(days=7), date.today() + timedelta(days=30), actor="test")
    simulation.simulate(session, rnd, clerks=(make_user("clerk"), make_user("clerk")), supervisor=make_user(),
                        today=date.today(), signing_keys=["k"], secret="responses-test-secret",
                        online_share=(0.06, 0.15))
    session.commit()
    return rnd


def _groups(session, rnd):
    return dict(((f, a), n) for f, a, n in session.execute(
        sa.select(Response.form_code, Response.agency_id, sa.func.count(sa.distinct(Response.respondent_key)))
        .where(Response.round_id == rnd.id).group_by(Response.form_code, Response.agency_id)))


def test_listing_hides_small_groups_and_follows_no_submission_order(session, demo):
    rnd = demo
    groups = _groups(session, rnd)
    small = {k for k, n in groups.items() if n < 5}
    assert small and len(small) < len(groups)
    seen, hidden = set(), None
    page = 1
    while True:
        listing = responses.list_responses(session, rnd, responses.Filters(page=page))
        hidden = listing.hidden
        seen.update(r.uid for r in listing.rows)
        if page >= listing.pages:
            break
        page += 1
    rows = session.execute(sa.select(Response.uid, Response.form_code, Response.agency_id)
                           .where(Response.round_id == rnd.id)).all()
    assert seen == {r.uid for r in rows if (r.form_code, r.agency_id) not in small}
    assert hidden == sum(1 for r in rows if (r.form_code, r.agency_id) in small)
    # "Random" is the order of the random public ids, nothing else.
    first = responses.list_responses(session, rnd, responses.Filters()).rows
    assert [r.uid for r in first] == sorted(r.uid for r in first)
    # A response of a small group cannot be opened; one of a large group can.
    f, a = next(iter(small))
    uid = session.scalar(sa.select(Response.uid).where(Response.form_code == f, Response.agency_id.is_(a) if a is None
                                                       else Response.agency_id == a, Response.round_id == rnd.id))
    with pytest.raises(responses.ResponseNotShown, match="dưới 5"):
        responses.response_detail(session, rnd, uid)
    detail = responses.response_detail(session, rnd, first[0].uid)
    assert detail.blocks and all(line.answer for b in detail.blocks for line in b.lines)


def test_filters(session, demo):
    rnd = demo
    for filters, check in [
        (responses.Filters(channel="paper"), lambda r: r.channel == "Phiếu giấy"),
        (responses.Filters(form="CC-CT"), lambda r: r.form_code == "CC-CT"),
        (responses.Filters(agency=responses.MATRIX), lambda r: r.form_code == "HĐ-CT"),
        (responses.Filters(state="awaiting"), lambda r: r.state == "Phiếu giấy chờ xác nhận"),
    ]:
        listing = responses.list_responses(session, rnd, filters)
        assert listing.rows and all(check(r) for r in listing.rows), filters
    big = next(a for (f, a), n in _groups(session, rnd).items() if n >= 5 and a is not None)
    name = session.get(Agency, big).name
    big_code = session.get(Agency, big).code
    agency = responses.list_responses(session, rnd, responses.Filters(agency=big_code, sort="form"))
    assert {r.agency for r in agency.rows} == {name}
    forms = [r.form_code for r in agency.rows]
    assert forms == sorted(forms)


def test_pages_for_staff(client, auth, make_user, demo, session):
    make_user("analyst", username="pt")
    auth.login("pt")
    page = client.get(f"/staff/responses/{DEMO}/?channel=online&sort=agency")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Dữ liệu mô phỏng." in html
    uids = re.findall(r"/r/([0-9a-f]{32})", html)
    assert len(uids) == responses.PAGE_SIZE
    detail = client.get(f"/staff/responses/{DEMO}/r/{uids[0]}").get_data(as_text=True)
    assert "Câu" in detail and "Phiên bản phiếu" in detail
    # Nothing in the pages that could tie a response to a person or a moment.
    response = session.scalar(sa.select(Response).where(Response.uid == uids[0]))
    assert response.submitted_on.strftime("%d/%m/%Y") not in detail
    assert "Phòng" not in detail.split("Phiếu trả lời", 2)[-1].split("<table>")[0]
    for bad in ["?agency=NOPE", "?form=XX", "?channel=fax", "?state=lost", "?sort=id", "?page=0", "?page=x"]:
        assert client.get(f"/staff/responses/{DEMO}/{bad}").status_code == 400, bad
    assert client.get(f"/staff/responses/{DEMO}/r/{'0' * 32}").status_code == 404
    assert client.get("/staff/responses/NOPE/").status_code == 404
    assert client.get("/staff/responses/").status_code == 302


def test_clerks_may_not_browse(staff_client, demo):
    assert staff_client("clerk").get(f"/staff/responses/{DEMO}/").status_code == 403


def test_browse_in_the_browser(demo, live_server, staff_page, artifacts):
    from playwright.sync_api import expect

    for viewport in ("phone", "desktop"):
        page = staff_page("supervisor", viewport)
        page.goto(f"{live_server}/staff/responses/{DEMO}/")
        page.select_option("#f-form", "LĐH-CH")
        page.click("form.filters button[type=submit]")
        expect(page.locator("#summary")).to_contain_text("nhóm dưới 5")  # 2 sheets per agency: all hidden
        page.select_option("#f-form", "CC-CH")
        page.click("form.filters button[type=submit]")
        rows = page.locator("#responses tbody tr")
        expect(rows.first).to_be_visible()
        assert all("CC-CH" in t for t in rows.all_inner_texts())
        page.screenshot(path=str(artifacts / f"list-{viewport}.png"))
        rows.first.locator("a").click()
        expect(page.locator("h1")).to_contain_text("Phiếu trả lời")
        page.screenshot(path=str(artifacts / f"detail-{viewport}.png"))
        page.close()
