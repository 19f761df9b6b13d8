"""Admin pages: accounts, the audit log, rounds and questionnaire versions; and the staff home per role."""
import re

import sqlalchemy as sa

from survey_service.models import AuditEvent, StaffUser
from tests.conftest import PASSWORD


def test_staff_home_links_only_what_the_role_may_use(staff_client):
    clerk_home = staff_client("clerk").get("/staff/").get_data(as_text=True)
    assert "Tài khoản cán bộ" not in clerk_home and "Nhật ký thao tác" not in clerk_home


def test_admin_home_links_admin_pages(staff_client):
    html = staff_client("admin").get("/staff/").get_data(as_text=True)
    assert "Tài khoản cán bộ" in html and "/staff/admin/audit" in html


def test_admin_creates_disables_and_unlocks_accounts(staff_client, session, auth):
    client = staff_client("admin")
    created = client.post("/staff/admin/users", data={"username": "thu.ky", "full_name": "Thư Ký",
                                                      "role": "clerk", "password": PASSWORD})
    assert created.status_code == 302
    user = session.scalar(sa.select(StaffUser).where(StaffUser.username == "thu.ky"))
    duplicate = client.post("/staff/admin/users", data={"username": "thu.ky", "role": "clerk", "password": PASSWORD})
    assert duplicate.status_code == 400 and "đã tồn tại" in duplicate.get_data(as_text=True)

    assert client.post(f"/staff/admin/users/{user.id}/active", data={"active": "0"}).status_code == 302
    session.expire_all()
    assert session.get(StaffUser, user.id).active is False
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.active"))
    assert event.old_value == {"active": True} and event.new_value == {"active": False}


def test_admin_cannot_disable_itself(staff_client, session):
    client = staff_client("admin")
    me = session.scalar(sa.select(StaffUser).where(StaffUser.role == "admin"))
    response = client.post(f"/staff/admin/users/{me.id}/active", data={"active": "0"})
    assert response.status_code == 400 and "tự vô hiệu hóa" in response.get_data(as_text=True)


def test_audit_log_reads_in_vietnamese_local_time_and_filters(staff_client, loaded_round, session, make_user):
    import csv
    import io
    from datetime import datetime, timezone

    from survey_service.models import AuditEvent, QuotaCell
    from survey_service.services import audit

    clerk = make_user("clerk", username="nv1", full_name="Trần Văn Bưu Điện")
    cell = session.scalar(sa.select(QuotaCell).where(QuotaCell.form_code == "LĐ-CP").limit(1))
    event = audit.record(session, "quota.target", user=clerk, object_type="quota_cell", object_id=cell.id,
                         old={"target": 10}, new={"target": 12, "form_code": "LĐ-CP", "source": "trang chỉ tiêu"})
    event.at = datetime(2026, 1, 14, 20, 30, tzinfo=timezone.utc)  # 03:30 on 15/1 in Việt Nam
    session.commit()
    client = staff_client("admin")
    html = client.get("/staff/admin/audit").get_data(as_text=True)
    assert "\\u0110" not in html and "LĐ-CP" in html
    assert "15/01/2026 03:30" in html and "Sửa chỉ tiêu" in html and "Nạp đợt khảo sát" in html
    assert f"Ô chỉ tiêu LĐ-CP – {cell.agency.name}" in html and "quota_cell" not in html
    assert "chỉ tiêu: 12" in html and "Trần Văn Bưu Điện" in html

    def shown(query: str) -> list[str]:
        """The action codes of the rows the page lists."""
        page = client.get(f"/staff/admin/audit?{query}").get_data(as_text=True)
        return re.findall(r'<span class="small muted">([a-z_.]+)</span>', page)

    assert set(shown(f"who=u{clerk.id}")) == {"quota.target"}
    assert set(shown("action=round.load")) == {"round.load"}
    assert shown("from=15/01/2026&to=15/01/2026") == ["quota.target"]
    assert "quota.target" not in shown("to=14/01/2026")
    assert shown("from=15/1/2026&to=2026-01-15") == ["quota.target"]
    arabic_digits = "%D9%A1%D9%A5/%D9%A0%D9%A1/%D9%A2%D9%A0%D9%A2%D9%A6"  # ١٥/٠١/٢٠٢٦
    for bad in ("from=31/02/2026", "who=someone", "action=drop.table", "from=02/12/2026&to=01/12/2026",
                f"from={arabic_digits}", "from=20260115", "to=15/01/2026%C2%A0", "to=2026-1-15"):
        response = client.get(f"/staff/admin/audit?{bad}")
        assert response.status_code == 400, bad

    exported = client.get(f"/staff/admin/audit.csv?who=u{clerk.id}")
    assert exported.status_code == 200 and exported.data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Thời điểm", "Người thực hiện", "Thao tác"]
    assert len(rows) == 1 + session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                           .where(AuditEvent.user_id == clerk.id))
    assert ["15/01/2026 03:30", "Trần Văn Bưu Điện", "Sửa chỉ tiêu", "quota.target"] == rows[1][:4]
    assert "mẫu phiếu: LĐ-CP" in rows[1][6]


def test_rounds_page_lists_versions(staff_client, loaded_round):
    html = staff_client("analyst").get("/staff/admin/rounds").get_data(as_text=True)
    assert "QNA-2023" in html and "LĐH-CH" in html


def test_clerk_is_denied_admin_pages(staff_client):
    client = staff_client("clerk")
    assert client.get("/staff/admin/users").status_code == 403
    assert client.get("/staff/admin/rounds").status_code == 403


def test_supervisor_extends_and_closes_a_round(staff_client, loaded_round, session):
    from datetime import date

    from survey_service.services import rounds

    client = staff_client("supervisor")
    assert "Đặt thời gian nhận phiếu" in client.get("/staff/admin/rounds").get_data(as_text=True)
    ok = client.post("/staff/admin/rounds/QNA-2023/schedule",
                     data={"opens_on": "2026-11-01", "closes_on": "2026-12-31"})
    assert ok.status_code == 302
    session.expire_all()
    assert rounds.round_state(loaded_round, date(2026, 11, 24)) == "open"
    backwards = client.post("/staff/admin/rounds/QNA-2023/schedule",
                            data={"opens_on": "2026-12-31", "closes_on": "2026-11-01"})
    assert backwards.status_code == 400 and "Ngày mở phải trước" in backwards.get_data(as_text=True)
    garbage = client.post("/staff/admin/rounds/QNA-2023/schedule", data={"opens_on": "hôm qua", "closes_on": ""})
    assert garbage.status_code == 400
    assert "Ngày không hợp lệ" in garbage.get_data(as_text=True) and "Not a valid" not in garbage.get_data(as_text=True)
    for lax in ("20261101", "2026-11-1", " 2026-11-01", "2026-11-01\xa0", "٢٠٢٦-١١-٠١", "2026-W45-1"):
        refused = client.post("/staff/admin/rounds/QNA-2023/schedule",
                              data={"opens_on": lax, "closes_on": "2027-01-31"})
        assert refused.status_code == 400 and "Ngày không hợp lệ" in refused.get_data(as_text=True), lax
    session.expire_all()
    assert loaded_round.closes_on == date(2026, 12, 31)  # as the good request left it
    assert client.post("/staff/admin/rounds/NOPE/close").status_code == 404
    assert client.post("/staff/admin/rounds/QNA-2023/close").status_code == 302
    session.expire_all()
    assert rounds.round_state(loaded_round, date(2026, 11, 24)) == "closed"


def test_analyst_sees_rounds_but_cannot_reschedule(staff_client, loaded_round):
    client = staff_client("analyst")
    assert "Đặt thời gian nhận phiếu" not in client.get("/staff/admin/rounds").get_data(as_text=True)
    assert client.post("/staff/admin/rounds/QNA-2023/close").status_code == 403


def test_rounds_page_lists_only_each_rounds_own_versions(staff_client, loaded_round, session, tmp_path):
    """QNA-2026 reuses CC-CT with a changed title: each round lists its own CC-CT version, not the other's."""
    import shutil

    import yaml

    from survey_service.services import rounds
    from tests.conftest import QUESTIONNAIRE_DIR

    copy = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRE_DIR, copy)
    form = copy / "CC-CT.yaml"
    form.write_text(form.read_text(encoding="utf-8").replace('title: "Phiếu', 'title: "Phiếu mới', 1),
                    encoding="utf-8")
    directory = copy / "rounds" / "QNA-2026"
    shutil.copytree(copy / "rounds" / "QNA-2023", directory)
    data = yaml.safe_load((directory / "round.yaml").read_text(encoding="utf-8"))
    data.update(code="QNA-2026", year=2026, opens_on="2026-09-01", closes_on="2026-10-30")
    (directory / "round.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rounds.load_round(session, directory, copy)
    session.commit()

    def cc_ct_titles(code):
        listed = rounds.form_versions(session, rounds.get_round(session, code))
        return [v["title"][:10] for v in listed if v["form_code"] == "CC-CT"]

    assert cc_ct_titles("QNA-2023") == ["Phiếu khảo"]
    assert cc_ct_titles("QNA-2026") == ["Phiếu mới "]
    html = staff_client("analyst").get("/staff/admin/rounds").get_data(as_text=True)
    assert html.count("Phiếu mới khảo sát") == 1
