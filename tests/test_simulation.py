"""The demonstration round: simulated responses written through the portal and keying services, only into
a round marked simulated, and labelled as such on every page, export and chart."""
from __future__ import annotations

import io
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from survey_service.models import AuditEvent, Channel, Keying, Response, Sheet, SheetState, SpentCode
from survey_service.services import exports, invitations, progress, results, rounds, simulation
from tests.conftest import QUESTIONNAIRE_DIR, ROUND_DIR

DEMO = "QNA-2023-DEMO"
#: A smaller share than the demo's, to keep the suite fast; the paper plan is the whole 106 sheets.
SHARE = (0.02, 0.06)


@pytest.fixture
def demo(app, session, loaded_round, make_user):
    """The real round (empty) and the simulated round beside it, filled."""
    rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR, actor="test", simulated_code=DEMO)
    rnd = rounds.get_round(session, DEMO)
    today = date.today()
    rounds.schedule(session, rnd, today - timedelta(days=7), today + timedelta(days=30), actor="test")
    clerks = (make_user("clerk", full_name="Clerk One"), make_user("clerk", full_name="Clerk Two"))
    supervisor = make_user("supervisor")
    report = simulation.simulate(session, rnd, clerks=clerks, supervisor=supervisor, today=today,
                                 signing_keys=app.config["SHEET_SIGNING_KEYS"], secret=app.config["SECRET_KEY"],
                                 online_share=SHARE)
    session.commit()
    return rnd, report


def test_simulated_round_is_filled_through_the_services(session, demo, loaded_round, make_user, tmp_path):
    rnd, report = demo
    assert rnd.simulated and not loaded_round.simulated
    assert rnd.name.endswith("(dữ liệu mô phỏng)")
    count = lambda *where: session.scalar(sa.select(sa.func.count()).select_from(Response).where(*where))  # noqa: E731
    assert count(Response.round_id == loaded_round.id) == 0  # nothing leaks into the real round
    online = count(Response.round_id == rnd.id, Response.channel == Channel.ONLINE)
    assert online == report.online_responses > report.online_respondents > 30
    # Spent codes (as many as respondents) and drafts, as the portal leaves them; the responses name no code.
    used = session.scalar(sa.select(sa.func.count()).select_from(SpentCode))
    assert used == report.online_respondents and report.drafts > 0
    days = set(session.scalars(sa.select(Response.submitted_on).where(Response.round_id == rnd.id)))
    assert len(days) > 3 and max(days) <= date.today() and min(days) >= rnd.opens_on
    # Paper: issued, keyed by two clerks, double entry with disagreements, some settled.
    states = dict(session.execute(sa.select(Sheet.state, sa.func.count()).group_by(Sheet.state)).all())
    assert sum(states.values()) == report.sheets_issued == 106
    assert states[SheetState.VERIFIED] > 0 and states[SheetState.ISSUED] > 0
    assert count(Response.round_id == rnd.id, Response.channel == Channel.PAPER) == report.sheets_keyed
    assert report.second_keyed == session.scalar(sa.select(sa.func.count()).select_from(Keying)
                                                 .where(Keying.pass_no == 2))
    assert report.disagreements > report.reconciled > 0
    reconciled = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                .where(AuditEvent.action == "sheet.reconcile"))
    assert reconciled == report.reconciled
    # The dashboard counts what was written.
    data = progress.round_progress(session, rnd)
    assert data.total.verified == report.online_respondents + states[SheetState.VERIFIED]
    assert data.total.started == report.drafts
    _exports_say_simulated(session, demo, tmp_path)
    _never_into_a_real_round(session, loaded_round, make_user, demo)


def _never_into_a_real_round(session, loaded_round, make_user, demo):
    clerks = (make_user("clerk"), make_user("clerk"))
    with pytest.raises(simulation.SimulationError, match="đợt khảo sát thật"):
        simulation.simulate(session, loaded_round, clerks=clerks, supervisor=make_user("supervisor"),
                            today=date.today(), signing_keys=["k"],
                            secret="s")
    rnd, _ = demo
    with pytest.raises(simulation.SimulationError, match="đã có phiếu"):
        simulation.simulate(session, rnd, clerks=clerks, supervisor=clerks[0], today=date.today(), signing_keys=["k"],
                            secret="s")
    # A real round's directory cannot be loaded over the simulated round, nor the other way round.
    with pytest.raises(rounds.RoundError, match="đợt mô phỏng"):
        rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR, simulated_code="QNA-2023")
    session.rollback()


def _exports_say_simulated(session, demo, tmp_path):
    rnd, _ = demo
    res = results.round_results(session, rnd)
    assert res.provenance["simulated"] is True
    assert res.summary["survey_points"].notna().sum() > 10
    # the CSV stays a plain table: the label is its first column, on every row, and in the provenance beside it
    exports.export(res, tmp_path / "r.csv")
    table = pd.read_csv(tmp_path / "r.csv")
    assert table.columns[0] == "Dữ liệu mô phỏng" and (table["Dữ liệu mô phỏng"] == "DỮ LIỆU MÔ PHỎNG").all()
    assert "DỮ LIỆU MÔ PHỎNG" in (tmp_path / "r.provenance.json").read_text(encoding="utf-8")
    exports.export(res, tmp_path / "r.xlsx")
    assert pd.ExcelFile(tmp_path / "r.xlsx").sheet_names[0] == "Dữ liệu mô phỏng"
    exports.write_answers_csv(res, tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text(encoding="utf-8-sig").startswith("Dữ liệu mô phỏng,")
    pyreadstat = pytest.importorskip("pyreadstat")
    exports.export(res, tmp_path / "r.sav")
    _, meta = pyreadstat.read_sav(str(tmp_path / "r.sav"))
    assert meta.file_label.startswith("DỮ LIỆU MÔ PHỎNG") and meta.notes[0].startswith("DỮ LIỆU MÔ PHỎNG:")
    real = results.round_results(session, rounds.get_round(session, "QNA-2023"))
    assert real.provenance["simulated"] is False
    exports.export(real, tmp_path / "real.csv")
    assert "mô phỏng" not in (tmp_path / "real.csv").read_text(encoding="utf-8-sig")


def test_pages_label_the_simulated_round(client, auth, make_user, demo, live_server, staff_page, artifacts):
    make_user("supervisor", username="gs")
    auth.login("gs")
    label = "Dữ liệu mô phỏng."
    for url in [f"/staff/progress/{DEMO}", f"/staff/results/{DEMO}/", f"/staff/results/{DEMO}/agency/SNV",
                f"/paper/ledger?round={DEMO}", f"/paper/reconcile?round={DEMO}", f"/staff/invitations/?round={DEMO}"]:
        page = client.get(url)
        assert page.status_code == 200, url
        assert label in page.get_data(as_text=True), url
    for url in ["/staff/progress/QNA-2023", "/staff/results/QNA-2023/", "/paper/ledger", "/staff/invitations/"]:
        page = client.get(url)
        assert page.status_code == 200 and label not in page.get_data(as_text=True), url
    assert "dữ liệu mô phỏng" in client.get("/staff/results/").get_data(as_text=True)
    # The dashboard CSV opens in pandas without options, the label in a first column of every row.
    table = pd.read_csv(io.BytesIO(client.get(f"/staff/progress/{DEMO}/progress.csv").data))
    assert list(table.columns[:3]) == ["Dữ liệu mô phỏng", "Mã phiếu", "Tên phiếu"]
    assert (table["Dữ liệu mô phỏng"] == "DỮ LIỆU MÔ PHỎNG").all() and len(table) > 1
    real = pd.read_csv(io.BytesIO(client.get("/staff/progress/QNA-2023/progress.csv").data))
    assert real.columns[0] == "Mã phiếu"
    book = pd.ExcelFile(io.BytesIO(client.get(f"/staff/progress/{DEMO}/progress.xlsx").data))
    assert book.sheet_names[0] == "Dữ liệu mô phỏng"
    assert "DỮ LIỆU MÔ PHỎNG" in client.get(f"/staff/progress/{DEMO}/curve.svg").get_data(as_text=True)
    assert "DỮ LIỆU MÔ PHỎNG" not in client.get("/staff/progress/QNA-2023/curve.svg").get_data(as_text=True)
    # The public home page never offers the simulated round.
    auth.logout()
    assert DEMO not in client.get("/").get_data(as_text=True)
    _browser(staff_page, live_server, artifacts)


def _browser(staff_page, live_server, artifacts):
    from playwright.sync_api import expect

    for viewport in ("phone", "desktop"):
        page = staff_page("supervisor", viewport)
        page.goto(f"{live_server}/staff/progress/{DEMO}")
        expect(page.locator(".simulated")).to_contain_text("Dữ liệu mô phỏng")
        verified = page.locator("[data-total='channel:online'][data-figure='verified']")
        assert int(verified.first.inner_text().replace(".", "")) > 30
        page.screenshot(path=str(artifacts / f"dashboard-{viewport}.png"), full_page=False)
        page.goto(f"{live_server}/staff/results/{DEMO}/")
        expect(page.locator(".simulated")).to_be_visible()
        page.screenshot(path=str(artifacts / f"results-{viewport}.png"), full_page=False)
        page.close()


@pytest.fixture
def open_demo(session, loaded_round):
    """The simulated round, open today and empty."""
    rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR, actor="test", simulated_code=DEMO)
    rnd = rounds.get_round(session, DEMO)
    rounds.schedule(session, rnd, date.today() - timedelta(days=1), date.today() + timedelta(days=30), actor="test")
    session.commit()
    return rnd


def _codes(session, rnd, form, agency, count=1):
    cell = invitations.find_cell(session, rnd, form, agency)
    codes = [c.code for c in invitations.issue_codes(session, cell, count, actor="test").codes]
    session.commit()
    return codes


@pytest.mark.browser
def test_respondent_pages_of_the_simulated_round_say_so(client, session, open_demo, loaded_round, live_server,
                                                         browser, artifacts):
    from tests.portal.conftest import full_answers
    from tests.portal.test_respond_views import form_fields

    band, note = "Dữ liệu mô phỏng.", f"Đợt {DEMO} là đợt khảo sát mô phỏng để trình diễn"
    [code, spare] = _codes(session, open_demo, "CC-CT", "SNV", 2)
    form = client.get(f"/c/{code}", follow_redirects=True).get_data(as_text=True)
    assert band in form and note in form
    answers = full_answers(rounds.questionnaire_for(session, open_demo, "CC-CT"))
    thanks = client.post("/phieu", data={**form_fields(form), "action": "submit", **answers})
    assert thanks.status_code == 200 and band in thanks.get_data(as_text=True)
    again = client.get(f"/c/{code}", follow_redirects=True)  # the spent code's refusal page
    assert again.status_code == 409 and note in again.get_data(as_text=True)
    [ldcp] = _codes(session, open_demo, "LĐ-CP", "TAMKY")
    division = client.get(f"/c/{ldcp}", follow_redirects=True).get_data(as_text=True)
    assert 'name="division"' in division and note in division
    rounds.schedule(session, loaded_round, date.today() - timedelta(days=1), date.today() + timedelta(days=30),
                    actor="test")
    [real] = _codes(session, loaded_round, "CC-CT", "SNV")
    real_form = client.get(f"/c/{real}", follow_redirects=True).get_data(as_text=True)
    assert 'name="submission_id"' in real_form and band not in real_form and "mô phỏng" not in real_form

    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/c/{spare}")
    page.wait_for_selector("fieldset.item")
    assert page.locator(".simulated").is_visible() and note in page.locator(".simulated").inner_text()
    page.screenshot(path=str(artifacts / "simulated-form-phone.png"))
    context.close()
