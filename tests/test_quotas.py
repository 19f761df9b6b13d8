"""The quota plan: recommended sizes, editing, CSV import (all or nothing, every bad row listed) and export,
soft-close with its audit trail, and what the portal and keying screens ask of a closed cell."""
import io

import pytest
import sqlalchemy as sa

from survey_service.models import AuditEvent, QuotaCell, SheetState
from survey_service.services import invitations, portal, quotas
from tests.conftest import collect_from_today
from tests.progress_data import cell, make_round, paper_sheet

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def rnd(session):
    """A round collecting today, as while its quota plan is worked on."""
    rnd = make_round(session, methodology={"online_sample_size": {"margin": 0.1, "floor": 15}})
    collect_from_today(session, rnd)
    return rnd


def targets(session, rnd):
    session.expire_all()
    return {(c.form_code, c.agency.code if c.agency else ""): (c.target, c.staff_count)
            for c in quotas.cells(session, rnd)}


@pytest.mark.parametrize("n, expected", [(0, 0), (10, 10), (15, 15), (20, 17), (60, 38), (100, 50),
                                         (1000, 91), (100000, 100)])
def test_recommended_size(n, expected):
    assert quotas.recommended_size(n, 0.1, 15) == expected


def test_recommended_size_with_5_percent_margin():
    assert quotas.recommended_size(400, 0.05, 0) == 200  # exactly 200: no rounding up past it


CSV_OK = ("form_code,agency_code,agency_name,target,staff_count\n"
          "CC-CT,SNV,Sở Nội vụ,40,\n"
          "CC-CT,STC,,,60\n"
          "HĐ-CT,,,30,\n")


def test_import_sets_targets_and_recommended_sizes(session, rnd, make_user):
    user = make_user("supervisor")
    changed = quotas.import_csv(session, rnd, CSV_OK.encode("utf-8-sig"), by=user)
    session.commit()
    assert changed == 3
    plan = targets(session, rnd)
    assert plan[("CC-CT", "SNV")] == (40, None)
    assert plan[("CC-CT", "STC")] == (38, 60)
    assert plan[("HĐ-CT", "")] == (30, None)
    events = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "quota.target")).all()
    assert len(events) == 3 and all(e.user_id == user.id for e in events)
    assert {e.new_value["source"] for e in events} == {"csv"}


def test_import_with_semicolons_as_excel_writes_them(session, rnd):
    data = "form_code;agency_code;target\nCC-CH;DLO;12\n".encode("utf-8-sig")
    assert quotas.import_csv(session, rnd, data, by=None) == 1
    assert targets(session, rnd)[("CC-CH", "DLO")] == (12, None)


def test_bad_rows_are_all_listed_and_nothing_changes(session, rnd):
    before = targets(session, rnd)
    data = ("form_code,agency_code,target\n"
            "CC-CT,SNV,40\n"            # fine, but must not be applied
            "XX-YY,SNV,10\n"            # wrong form code
            "CC-CT,NOPE,10\n"           # unknown agency
            "CC-CT,STC,-3\n"            # negative
            "CC-CT,BDT,mười\n"          # not a number
            "CC-CT,SNV,41\n"            # duplicated cell
            "CC-CT,DLO,5\n"             # a district has no CC-CT cell
            "CC-CH,TKY,\n")             # no target and no staff count
    with pytest.raises(quotas.QuotaError) as exc:
        quotas.import_csv(session, rnd, data.encode(), by=None)
    errors = exc.value.errors
    assert [e.split(":")[0] for e in errors] == [f"Dòng {n}" for n in (3, 4, 5, 6, 7, 8, 9)]
    assert "XX-YY" in errors[0] and "NOPE" in errors[1] and "-3" in errors[2] and "mười" in errors[3]
    assert "trùng với dòng 2" in errors[4]
    session.rollback()
    assert targets(session, rnd) == before


@pytest.mark.parametrize("data, message", [
    (b"", "rỗng"),
    (b"\xff\xfe\x00bad", "UTF-8"),
    (b"form,agency,target\nCC-CT,SNV,3\n", "thiếu cột"),
    (b"form_code,agency_code,target\n", "không có dòng"),
])
def test_malformed_files_are_refused(session, rnd, data, message):
    with pytest.raises(quotas.QuotaError) as exc:
        quotas.import_csv(session, rnd, data, by=None)
    assert message in exc.value.errors[0]


def test_export_reads_back_unchanged(session, rnd):
    quotas.import_csv(session, rnd, CSV_OK.encode(), by=None)
    session.commit()
    exported = quotas.export_csv(session, rnd)
    assert exported.startswith(b"\xef\xbb\xbf")
    assert "Sở Nội vụ" in exported.decode("utf-8-sig")
    assert quotas.import_csv(session, rnd, exported, by=None) == 0


def test_soft_close_and_reopen_are_audited(session, rnd, make_user):
    user = make_user("supervisor")
    target = cell(session, rnd, "CC-CT", "SNV")
    assert quotas.set_soft_closed(session, target, True, by=user)
    assert not quotas.set_soft_closed(session, target, True, by=user)  # already closed: nothing recorded
    assert quotas.set_soft_closed(session, target, False, by=user)
    session.commit()
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.object_type == "quota_cell")
                              .order_by(AuditEvent.id)).all()
    assert actions == ["quota.soft_close", "quota.reopen"]


def test_soft_close_refuses_new_online_starts_but_lets_started_ones_finish(session, loaded_round):
    online = invitations.find_cell(session, loaded_round, "CC-CT", "SNV")
    today = loaded_round.opens_on
    started, fresh = (c.code for c in invitations.issue_codes(session, online, 2, today=today).codes)
    portal.open_code(session, started, secret="test-secret", today=today, start=True)
    quotas.set_soft_closed(session, online, True, today=today, by=None)
    with pytest.raises(portal.Refusal) as refused:
        portal.open_code(session, fresh, secret="test-secret", today=today)
    assert refused.value.reason == "full"
    assert portal.open_code(session, started, secret="test-secret", today=today).draft is not None
    quotas.set_soft_closed(session, online, False, today=today, by=None)
    assert portal.open_code(session, fresh, secret="test-secret", today=today).draft is None


def test_paper_over_target_is_surplus(session, rnd):
    paper = cell(session, rnd, "LĐS-CT", "TKY")
    paper.target = 2
    paper_sheet(session, paper, SheetState.VERIFIED)
    assert not quotas.new_paper_response_is_surplus(session, paper)
    paper_sheet(session, paper, SheetState.VERIFIED)
    assert quotas.new_paper_response_is_surplus(session, paper)
    paper_sheet(session, paper, SheetState.VERIFIED, surplus=True)  # surplus ones do not fill the cell
    paper.target = 3
    assert not quotas.new_paper_response_is_surplus(session, paper)
    online = cell(session, rnd, "CC-CT", "SNV")
    assert not quotas.is_surplus(online, counted=online.target + 5)  # online over target is refused instead


def test_surplus_in_analysis_setting(session):
    assert quotas.surplus_in_analysis(make_round(session, "A")) is False
    assert quotas.surplus_in_analysis(make_round(session, "B", settings={"surplus_in_analysis": True}))


# --- the web pages ----------------------------------------------------------------------------------
def test_plan_editor_saves_and_rejects_bad_values(session, rnd, staff_client):
    client = staff_client("supervisor")
    snv, stc = cell(session, rnd, "CC-CT", "SNV"), cell(session, rnd, "CC-CT", "STC")
    page = client.get(f"/staff/progress/{rnd.code}/quotas")
    assert page.status_code == 200 and "Kế hoạch chỉ tiêu" in page.get_data(as_text=True)
    bad = client.post(f"/staff/progress/{rnd.code}/quotas",
                      data={f"target-{snv.id}": "12", f"target-{stc.id}": "-1"})
    assert bad.status_code == 400
    assert "Chỉ tiêu phải là số nguyên không âm" in bad.get_data(as_text=True)
    assert targets(session, rnd)[("CC-CT", "SNV")] == (5, None)
    form = {f"target-{c.id}": str(c.target) for c in session.scalars(sa.select(QuotaCell))}
    form.update({f"target-{snv.id}": "12", f"target-{stc.id}": "", f"staff-{stc.id}": "60"})
    ok = client.post(f"/staff/progress/{rnd.code}/quotas", data=form)
    assert ok.status_code == 302
    plan = targets(session, rnd)
    assert plan[("CC-CT", "SNV")] == (12, None) and plan[("CC-CT", "STC")] == (38, 60)


def test_csv_upload_page_lists_every_bad_row(session, rnd, staff_client):
    client = staff_client("supervisor")
    before = targets(session, rnd)
    data = "form_code,agency_code,target\nCC-CT,SNV,9\nCC-XX,SNV,1\nCC-CT,SNV,2\n".encode()
    response = client.post(f"/staff/progress/{rnd.code}/quotas/import",
                           data={"file": (io.BytesIO(data), "chi-tieu.csv")}, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Dòng 3" in html and "Dòng 4" in html and "không có chỉ tiêu nào thay đổi" in html
    assert targets(session, rnd) == before
    good = client.post(f"/staff/progress/{rnd.code}/quotas/import",
                       data={"file": (io.BytesIO(CSV_OK.encode()), "chi-tieu.csv")},
                       content_type="multipart/form-data")
    assert good.status_code == 302 and targets(session, rnd)[("CC-CT", "SNV")] == (40, None)
    exported = client.get(f"/staff/progress/{rnd.code}/quotas.csv")
    assert exported.data.startswith(b"\xef\xbb\xbf") and "Sở Nội vụ" in exported.data.decode("utf-8-sig")
    assert client.post(f"/staff/progress/{rnd.code}/quotas/import", data={}).status_code == 400


def test_apply_recommended_sizes(session, rnd, staff_client):
    client = staff_client("supervisor")
    snv = cell(session, rnd, "CC-CT", "SNV")
    snv.staff_count = 100
    session.commit()
    assert client.post(f"/staff/progress/{rnd.code}/quotas/recommended").status_code == 302
    assert targets(session, rnd)[("CC-CT", "SNV")] == (50, 100)


def test_soft_close_button(session, rnd, staff_client):
    client = staff_client("supervisor")
    target = cell(session, rnd, "CC-CT", "SNV")
    url = f"/staff/progress/{rnd.code}/cells/{target.id}/soft-close?form=CC-CT"
    asked = client.post(url, data={"closed": "1"})  # one click only asks
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Tạm khóa ô CC-CT – Sở Nội vụ?" in page and 'name="confirmed" value="1"' in page
    session.expire_all()
    assert not cell(session, rnd, "CC-CT", "SNV").soft_closed
    response = client.post(url, data={"closed": "1", "confirmed": "1"})
    assert response.status_code == 302 and "form=CC-CT" in response.headers["Location"]
    session.expire_all()
    assert cell(session, rnd, "CC-CT", "SNV").soft_closed
    assert "Tạm khóa" in client.get(f"/staff/progress/{rnd.code}?form=CC-CT").get_data(as_text=True)
    assert client.post(url, data={"closed": "maybe"}).status_code == 400
    assert client.post(f"/staff/progress/{rnd.code}/cells/999999/soft-close", data={"closed": "1"}).status_code == 404


def test_roles(session, rnd, staff_client, client):
    assert client.get(f"/staff/progress/{rnd.code}").status_code == 302  # not logged in: to the login page
    analyst = staff_client("analyst")
    assert analyst.get(f"/staff/progress/{rnd.code}").status_code == 200
    assert analyst.get(f"/staff/progress/{rnd.code}/quotas").status_code == 403
    target = cell(session, rnd, "CC-CT", "SNV")
    assert analyst.post(f"/staff/progress/{rnd.code}/cells/{target.id}/soft-close",
                        data={"closed": "1"}).status_code == 403
    analyst.post("/staff/logout")
    clerk = staff_client("clerk")
    assert clerk.get(f"/staff/progress/{rnd.code}").status_code == 403


def test_the_real_round_plan_and_dashboard(session, loaded_round, staff_client):
    collect_from_today(session, loaded_round)  # a closed round's plan cannot change
    rule = loaded_round.methodology["online_sample_size"]
    assert quotas.sizing(loaded_round) == (rule["margin"], rule["floor"])
    client = staff_client("supervisor")
    page = client.get("/staff/progress/QNA-2023?kind=district&form=CC-CH")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Đại Lộc" in html and "Duy Xuyên" in html
    assert html.index("Duy Xuyên") < html.index("Đại Lộc") < html.index("Tam Kỳ")
    assert client.get("/staff/progress/QNA-2023/quotas").status_code == 200
    exported = client.get("/staff/progress/QNA-2023/quotas.csv").data
    assert quotas.import_csv(session, loaded_round, exported, by=None) == 0  # the export reads back unchanged
