"""Response-level export (the tidy answers file) and ``responses import`` in the browser, with the row
report on the page."""
from __future__ import annotations

import io
import logging
from datetime import date, timedelta

import pandas as pd
import sqlalchemy as sa

from survey_service.models import AuditEvent, Ballot, Response
from survey_service.services import exports, results, rounds
from tests.conftest import release_ballots
from tests.results.conftest import csv_bytes


def _answers(client, url="/staff/responses/QNA-2023/answers.csv") -> pd.DataFrame:
    return pd.read_csv(io.StringIO(client.get(url).data.decode("utf-8-sig")))


def test_answers_file_leaves_out_small_groups(builder, session, loaded_round, staff_client, tmp_path):
    builder.load([builder.row("CC-CT", "SNV", v) for v in "1234"]            # 4 respondents: left out
                 + [builder.row("CC-CT", "STP", v) for v in "12344"])        # 5: kept
    frame = _answers(staff_client("analyst"))
    assert set(frame["agency"]) == {"STP"} and frame["response_id"].nunique() == 5
    # The command-line file keeps everything, and the web file is that file without the small group.
    full = results.round_results(session, loaded_round).answers
    kept, left_out = exports.small_groups_removed(full, 5)
    assert len(kept) == len(frame) and [g for g, _ in left_out] == [("CC-CT", "SNV")]


def _open(session, rnd):
    """Imports go only into a round still collecting."""
    rounds.schedule(session, rnd, date.today() - timedelta(days=7), date.today() + timedelta(days=30), actor="test")
    session.commit()


def test_import_in_the_browser_page(builder, session, loaded_round, staff_client):
    _open(session, loaded_round)
    client = staff_client("supervisor")
    page = client.get("/staff/responses/QNA-2023/import")
    assert page.status_code == 200 and "import-template.csv?form=CC-CT" in page.get_data(as_text=True)
    template = client.get("/staff/responses/QNA-2023/import-template.csv?form=LĐ-CP").data.decode("utf-8-sig")
    assert template.startswith("form,agency,division,district,respondent,submitted_on,")
    good = csv_bytes([builder.row("CC-CT", "SNV", "4"), builder.row("LĐH-CH", "SNV", "3"),
                      builder.row("LĐH-CH", "SNV", "3"), builder.row("LĐH-CH", "SNV", "3")])
    page = client.post("/staff/responses/QNA-2023/import", data={"file": (io.BytesIO(good), "phieu.csv")},
                       content_type="multipart/form-data")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Đã nhập 4 phiếu từ phieu.csv" in html
    assert "1 phiếu giấy vượt chỉ tiêu" in html
    # sealed in the box, none released: no cell has 2k waiting
    assert "0 người đã vào dữ liệu, 4 người đang chờ" in html
    assert session.scalar(sa.select(sa.func.count()).select_from(Ballot)) == 4
    assert release_ballots(session) == 4
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)) == 4
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "responses.import"))
    assert event.actor == "staff" and event.user_id is not None

    bad = csv_bytes([builder.row("CC-CT", "SNV", "3", I01="9"), builder.row("CC-CT", "NOPE", "3"),
                     builder.row("CC-CT", "STP", "3")])
    page = client.post("/staff/responses/QNA-2023/import", data={"file": (io.BytesIO(bad), "sai.csv")},
                       content_type="multipart/form-data")
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and "Không nhập phiếu nào từ sai.csv" in html
    assert "dòng 2:" in html and "dòng 3:" in html and "dòng 4:" not in html
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)) == 4  # nothing more
    for data, status in [({}, 400), ({"file": (io.BytesIO(b"\xff\xfe\x00"), "x.csv")}, 422),
                         ({"file": (io.BytesIO(b""), "empty.csv")}, 422)]:
        page = client.post("/staff/responses/QNA-2023/import", data=data, content_type="multipart/form-data")
        assert page.status_code == status, data
    assert client.get("/staff/responses/QNA-2023/import-template.csv?form=XX").status_code == 404


def test_an_import_with_nul_is_refused_by_row_stores_nothing_and_logs_no_answer(
        builder, session, loaded_round, staff_client, caplog):
    _open(session, loaded_round)
    client = staff_client("supervisor")
    text = builder.forms["CC-CT"].text_items[0].code
    said = "Ý kiến riêng của người trả lời số 4417"
    rows = [builder.row("CC-CT", "SNV", "4", **{text: said}),
            builder.row("CC-CT", "STP", "3", **{text: said + "\x00 còn tiếp"}),
            builder.row("CC-CT", "SNV", "2", respondent="người\x00 thứ ba", submitted_on="\x00")]
    with caplog.at_level(logging.DEBUG):
        page = client.post("/staff/responses/QNA-2023/import", content_type="multipart/form-data",
                           data={"file": (io.BytesIO(csv_bytes(rows)), "nul.csv")})
    html = page.get_data(as_text=True)
    assert page.status_code == 422, html
    assert f"dòng 3: cột &#39;{text}&#39; có ký tự rỗng (NUL, mã 0), không lưu được" in html
    assert "dòng 4: cột &#39;respondent&#39; có ký tự rỗng" in html
    assert "dòng 4: cột &#39;submitted_on&#39; có ký tự rỗng" in html
    assert "dòng 2:" not in html and "\x00" not in html
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "responses.import")) == 0
    assert "4417" not in caplog.text and "người" not in caplog.text


def test_roles(loaded_round, staff_client, client):
    assert staff_client("analyst").post("/staff/responses/QNA-2023/import").status_code == 403
    assert staff_client("clerk").get("/staff/responses/QNA-2023/answers.csv").status_code == 403


def test_import_and_export_in_a_real_browser(builder, session, loaded_round, live_server, staff_page, artifacts,
                                             tmp_path):
    _open(session, loaded_round)
    from playwright.sync_api import expect

    good = tmp_path / "phieu.csv"
    good.write_bytes(csv_bytes([builder.row("CC-CT", "STP", v) for v in "1234412344"]))  # 2k: k are released
    bad = tmp_path / "sai.csv"
    bad.write_bytes(csv_bytes([builder.row("CC-CT", "STP", "3", I01="7")]))
    for viewport in ("phone", "desktop"):
        page = staff_page("supervisor", viewport)
        page.goto(f"{live_server}/staff/responses/QNA-2023/")
        page.click("text=Nhập phiếu từ tệp CSV")
        page.set_input_files("#file", str(bad))
        page.click("button:has-text('Kiểm tra và nhập')")
        expect(page.locator("#import-errors")).to_contain_text("dòng 2:")
        page.screenshot(path=str(artifacts / f"errors-{viewport}.png"), full_page=True)
        if viewport == "phone":
            page.set_input_files("#file", str(good))
            page.click("button:has-text('Kiểm tra và nhập')")
            expect(page.locator("#import-report")).to_contain_text("Đã nhập 10 phiếu")
            expect(page.locator("#import-report")).to_contain_text("5 người đã vào dữ liệu, 5 người đang chờ")
            page.screenshot(path=str(artifacts / f"report-{viewport}.png"), full_page=True)
        page.goto(f"{live_server}/staff/responses/QNA-2023/")
        with page.expect_download() as download:
            page.click("text=Tải câu trả lời")
        text = open(download.value.path(), encoding="utf-8-sig").read()
        assert "response_uid" in text and "STP" in text
        page.close()
