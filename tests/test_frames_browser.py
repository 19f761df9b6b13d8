"""The sample lists in Debian's Chromium: a supervisor deletes a frame imported by mistake, imports a household
frame and draws it, the print page refuses to issue sheets, an observer of the MTTQ reviews and signs off the
lists, and sheets are issued."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey_service.models import AuditEvent, Frame
from tests.conftest import axe_violations, collect_from_today

pytestmark = pytest.mark.browser


# The pages' database work is the services', tested on both databases in test_frames.py: the browser runs on one.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

def test_observer_signs_off_the_lists_before_any_sheet_is_issued(app, loaded_round, session, staff_page, live_server,
                                                                 artifacts, tmp_path):
    collect_from_today(session, loaded_round)
    frame_file = tmp_path / "ho-gia-dinh.csv"
    frame_file.write_text("commune,village,ref,label\n" + "".join(
        f"{commune},Thôn {i % 3 + 1},{commune}-{i},Hộ ông/bà số {i}\n"
        for commune in ("TAMKY", "HOIAN") for i in range(25)), encoding="utf-8")

    supervisor = staff_page("supervisor")
    # a frame imported by mistake is deleted from its page, after a confirmation
    supervisor.goto(f"{live_server}/frames/?round=QNA-2023")
    supervisor.get_by_label("Loại khung mẫu").select_option("households")
    supervisor.get_by_label("Tên khung mẫu (không bắt buộc)").fill("Nhập nhầm")
    supervisor.get_by_label("Tệp").set_input_files(str(frame_file))
    supervisor.get_by_role("button", name="Nhập khung mẫu").click()
    supervisor.wait_for_selector("#withdraw")
    supervisor.locator("#withdraw").get_by_role("button", name="Xóa khung mẫu").click()
    assert "không hoàn tác được" in supervisor.content()
    supervisor.get_by_role("button", name="Xóa khung mẫu").click()
    supervisor.wait_for_selector("text=Đã xóa khung mẫu “Nhập nhầm”")
    assert session.scalar(sa.select(sa.func.count()).select_from(Frame)) == 0
    assert session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "frame.delete")).old_value["name"] == \
        "Nhập nhầm"

    supervisor.get_by_label("Loại khung mẫu").select_option("households")
    supervisor.get_by_label("Tệp").set_input_files(str(frame_file))
    supervisor.get_by_role("button", name="Nhập khung mẫu").click()
    supervisor.wait_for_selector("#cells")
    supervisor.get_by_label("Sai số e").fill("0,2")
    supervisor.get_by_role("button", name="Chọn mẫu").click()
    supervisor.wait_for_selector("#list-official")
    assert "chờ quan sát viên" in supervisor.content()
    supervisor.goto(f"{live_server}/paper/print?round=QNA-2023")
    supervisor.get_by_role("button", name="Tạo tệp PDF").click()
    assert "chưa được quan sát viên MTTQ/CCB ký duyệt" in supervisor.content()

    observer = staff_page("observer", full_name="Nguyễn Văn Giám Sát")
    observer.get_by_role("link", name="Ký duyệt danh sách mẫu").click()
    observer.get_by_role("link", name="ho-gia-dinh.csv").click()
    assert observer.locator("#list-official tbody tr").count() == 2 * 13
    assert observer.locator("#list-reserve tbody tr").count() == 2 * 3
    assert axe_violations(observer) == []
    observer.get_by_label("Ủy ban Mặt trận Tổ quốc Việt Nam (MTTQ)").check()
    observer.get_by_role("button", name="Ký duyệt danh sách").click()
    observer.get_by_role("button", name="Ký duyệt", exact=True).click()
    observer.wait_for_selector("#signed-off")
    observer.screenshot(path=str(artifacts / "signed-off.png"), full_page=True)
    assert "Nguyễn Văn Giám Sát" in observer.inner_text("#signed-off")

    session.expire_all()
    frame = session.scalar(sa.select(Frame))
    assert frame.signed_off_as == "MTTQ"
    assert session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "frame.sign_off")).new_value[
        "lists_sha256"] == frame.signed_lists_hash
    supervisor.goto(f"{live_server}/paper/print?round=QNA-2023")
    supervisor.get_by_role("button", name="Tạo tệp PDF").click()
    supervisor.wait_for_selector("#printed")
