"""Admin pages: accounts, the audit log, rounds and questionnaire versions; and the staff home per role."""
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


def test_audit_log_page_filters(staff_client, loaded_round):
    client = staff_client("admin")
    html = client.get("/staff/admin/audit?action=round").get_data(as_text=True)
    assert "round.load" in html and "login.ok" not in html


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
    ok = client.post("/staff/admin/rounds/QNA-2023/schedule", data={"opens_on": "2026-11-01", "closes_on": "2026-12-31"})
    assert ok.status_code == 302
    session.expire_all()
    assert rounds.round_state(loaded_round, date(2026, 11, 24)) == "open"
    backwards = client.post("/staff/admin/rounds/QNA-2023/schedule",
                            data={"opens_on": "2026-12-31", "closes_on": "2026-11-01"})
    assert backwards.status_code == 400 and "Ngày mở phải trước" in backwards.get_data(as_text=True)
    garbage = client.post("/staff/admin/rounds/QNA-2023/schedule", data={"opens_on": "hôm qua", "closes_on": ""})
    assert garbage.status_code == 400
    assert "Ngày không hợp lệ" in garbage.get_data(as_text=True) and "Not a valid" not in garbage.get_data(as_text=True)
    assert client.post("/staff/admin/rounds/NOPE/close").status_code == 404
    assert client.post("/staff/admin/rounds/QNA-2023/close").status_code == 302
    session.expire_all()
    assert rounds.round_state(loaded_round, date(2026, 11, 24)) == "closed"


def test_analyst_sees_rounds_but_cannot_reschedule(staff_client, loaded_round):
    client = staff_client("analyst")
    assert "Đặt thời gian nhận phiếu" not in client.get("/staff/admin/rounds").get_data(as_text=True)
    assert client.post("/staff/admin/rounds/QNA-2023/close").status_code == 403
