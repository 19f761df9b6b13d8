"""Phúc tra in Debian's Chromium: the auditor uploads the contact list, draws the sheets, reads a contact off the
page, records that its respondent did not fill in the sheet themselves, and closes phúc tra; an admin is
refused the page."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey_service.models import Contact, RecheckItem, RecheckOutcome
from tests.conftest import axe_violations
from tests.test_phuctra import NAMES, PHONES, fieldwork  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


# The pages' database work is the services', tested on both databases in test_phuctra.py.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_auditor_records_an_outcome_and_closes(session, fieldwork, staff_page, live_server, tmp_path,  # noqa: F811
                                               artifacts):
    issued = fieldwork["sheets"]
    upload = tmp_path / "danh-ba.csv"
    upload.write_text(f"số phiếu,loại,họ tên,điện thoại\n{issued[30].serial},người trả lời,{NAMES[0]},{PHONES[0]}\n",
                      encoding="utf-8")
    admin = staff_page("admin")
    assert "Phúc tra" not in admin.inner_text("main")
    assert admin.goto(f"{live_server}/phuctra/QNA-2023").status == 403

    page = staff_page("auditor")
    page.get_by_role("link", name="Phúc tra").click()
    page.get_by_label("Tệp danh bạ").set_input_files(str(upload))
    page.get_by_role("button", name="Niêm phong vào danh bạ").click()
    page.get_by_role("button", name="Chọn phiếu phúc tra").click()
    card = page.locator(f"#item-{issued[30].serial}")
    assert NAMES[0] in card.inner_text() and PHONES[0] in card.inner_text()
    assert axe_violations(page) == []
    card.locator("fieldset", has_text="Đã liên lạc được?").get_by_label("Có").check()
    card.locator("fieldset", has_text="Có nhận phiếu").get_by_label("Có").check()
    card.locator("fieldset", has_text="Có tự điền phiếu").get_by_label("Không").check()
    card.get_by_role("button", name="Ghi kết quả").click()
    assert "Không đạt" in page.locator(f"#item-{issued[30].serial} .outcome").inner_text()
    page.screenshot(path=str(artifacts / "outcome.png"), full_page=True)
    session.expire_all()
    assert session.scalar(sa.select(RecheckItem.outcome).where(RecheckItem.sheet_id == issued[30].id)) \
        is RecheckOutcome.FAILED

    page.get_by_role("button", name="Đóng phúc tra và xóa danh bạ").click()
    page.get_by_role("button", name="Đóng phúc tra và xóa danh bạ").click()
    assert "danh bạ đã bị xóa" in page.inner_text("#state") and NAMES[0] not in page.content()
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count()).select_from(Contact)) == 0
