"""Reminders: per agency what is still missing, a ready-to-send Vietnamese text and a printable list; the
Post Office gets the serials of the paper sheets still out. Counts only, never codes."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from survey_service.models import InvitationCode
from survey_service.services import invitations, quotas, reminders, sheets
from tests.results.conftest import Builder


@pytest.fixture
def collecting(session, loaded_round):
    """Two CC-CT answers from Sở Nội vụ, codes handed out there, LĐS-CT sheets printed, one cell closed."""
    rnd, while_collecting = loaded_round, date(2023, 10, 1)
    Builder(session, rnd).load([Builder(session, rnd).row("CC-CT", "SNV", v) for v in "34"])
    invitations.issue_codes(session, invitations.find_cell(session, rnd, "CC-CT", "SNV"), 10,
                            today=while_collecting, actor="test")
    sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, form_code="LĐS-CT"),
                        today=while_collecting, actor="test")
    quotas.set_soft_closed(session, invitations.find_cell(session, rnd, "CC-CT", "STP"), True,
                           today=while_collecting, by=None)
    session.commit()
    return rnd


def test_what_each_agency_still_owes(session, collecting):
    rnd = collecting
    items = {r.key: r for r in reminders.reminders(session, rnd)}
    snv = items["SNV"]
    cc_ct = next(m for m in snv.missing if m.form_code == "CC-CT")
    cell = invitations.find_cell(session, rnd, "CC-CT", "SNV")
    assert (cc_ct.target, cc_ct.received, cc_ct.shortfall) == (cell.target, 2, cell.target - 2)
    assert "STP" not in items  # its one online cell is soft-closed: nothing to remind
    assert not any(m.form_code in ("HĐ-CT", "LĐH-CH", "LĐS-CT") for r in items.values() if r.key != "buu-dien"
                   for m in r.missing)
    post = items[reminders.POST_OFFICE]
    assert {m.form_code for m in post.missing} == {"LĐS-CT"}
    assert sum(len(m.serials) for m in post.missing) == 36
    text = reminders.reminder_text(snv, rnd, today=date(2023, 10, 2), organiser="Sở Nội vụ tỉnh Quảng Nam",
                                   portal_url="https://cchc.example.vn")
    assert text.startswith("Kính gửi: Sở Nội vụ.")
    assert f"đã nhận 2/{cell.target} phiếu, còn thiếu {cell.target - 2} phiếu" in text
    assert "30/10/2023" in text and "https://cchc.example.vn" in text
    for code in session.scalars(sa.select(InvitationCode.code)):
        assert code not in text  # never which codes are unused
    post_text = reminders.reminder_text(post, rnd, today=date(2023, 10, 2), organiser="Sở Nội vụ",
                                        portal_url="x")
    assert post.missing[0].serials[0] in post_text and "chưa thu về" in post_text


def test_pages(collecting, staff_client):
    client = staff_client("supervisor")
    page = client.get("/staff/reminders/QNA-2023/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Sở Nội vụ" in html and "Bưu điện tỉnh" in html
    one = client.get("/staff/reminders/QNA-2023/SNV").get_data(as_text=True)
    assert "Kính gửi: Sở Nội vụ." in one and 'class="missing"' in one
    txt = client.get("/staff/reminders/QNA-2023/SNV.txt")
    assert txt.mimetype == "text/plain" and txt.get_data(as_text=True).startswith("Kính gửi: Sở Nội vụ.")
    everything = client.get("/staff/reminders/QNA-2023/all").get_data(as_text=True)
    assert everything.count('class="reminder"') == html.count("Văn bản nhắc</a>")
    assert client.get("/staff/reminders/QNA-2023/NOPE").status_code == 404
    assert client.get("/staff/reminders/NOPE/").status_code == 404
    assert client.get("/staff/reminders/").status_code == 302
    assert "Nhắc đơn vị còn thiếu phiếu" in client.get("/staff/progress/QNA-2023").get_data(as_text=True)


def test_only_supervisors(collecting, staff_client):
    assert staff_client("analyst").get("/staff/reminders/QNA-2023/").status_code == 403
    assert staff_client("clerk").get("/staff/reminders/QNA-2023/SNV").status_code == 403


def test_reminder_in_the_browser_and_on_paper(collecting, live_server, staff_page, artifacts):
    from playwright.sync_api import expect

    for viewport in ("phone", "desktop"):
        page = staff_page("supervisor", viewport)
        page.goto(f"{live_server}/staff/reminders/QNA-2023/")
        page.click("#reminders tr:has-text('Sở Nội vụ') >> text=Văn bản nhắc")
        text = page.locator("textarea.reminder-text")
        assert text.input_value().startswith("Kính gửi: Sở Nội vụ.")
        page.screenshot(path=str(artifacts / f"reminder-{viewport}.png"), full_page=True)
        page.emulate_media(media="print")
        expect(page.locator("textarea.reminder-text")).to_be_hidden()
        expect(page.locator("pre.print-only")).to_be_visible()
        expect(page.locator("header.site")).to_be_hidden()
        page.screenshot(path=str(artifacts / f"printed-{viewport}.png"), full_page=True)
        page.close()
