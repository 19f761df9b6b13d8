"""A paper sheet's QR scanned into a field tool's submission decides its quota cell: the printed QR read by a
real decoder, its signature checked, unknown, forged, spent and void sheets refused with the row, and the sheet
counted once by the ledger and progress, never again by keying."""
from __future__ import annotations

import io
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from survey_service.models import Ballot, Response, Sheet, SheetState
from survey_service.questionnaires import xlsform
from survey_service.services import ballots, imports, keying, printing, progress, rounds, sheets
from survey_service.services import xlsform as xlsform_service
from tests.conftest import SECRET, collect_from_today
from tests.interop import export_files as ef

KEYS = ["test-sheet-key"]
BASE = "http://127.0.0.1:5000"
FORM = "LĐS-CT"


@pytest.fixture
def collecting(loaded_round, session):
    collect_from_today(session, loaded_round)
    return loaded_round


def _issue(session, rnd, form_code: str) -> list[Sheet]:
    batch = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, form_code=form_code), actor="test")
    session.commit()
    return batch


def _printed_qr(session, sheet, tmp_path) -> str:
    """The text a phone reads from the first page of the printed sheet (zxing-cpp on a 100 dpi rendering)."""
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    pdf = tmp_path / "sheet.pdf"
    pdf.write_bytes(printing.sheets_pdf(session, [sheet], base_url=BASE, signing_keys=KEYS))
    subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    (page,) = tmp_path.glob("page-*.png")
    (found,) = zxingcpp.read_barcodes(Image.open(page), formats=zxingcpp.BarcodeFormat.QRCode)
    page.unlink()
    return found.text


def _sub(q, *, sheet: str = "", agency: str = "") -> ef.Sub:
    """A submission answering every scale item with its scale's first option."""
    fields = {"form_code": q.code, "q_version": q.version, xlsform.SHEET: sheet, "agency": agency,
              **{i.code: q.scales[i.scale].codes[0] for i in q.scale_items}}
    return ef.Sub(uuid.uuid4().hex, fields)


def _import(session, rnd, data, **kw):
    """Import ``data`` and release every ballot of the round into the responses (committed)."""
    report = imports.import_responses(session, rnd, data, today=rounds.local_today(), secret=SECRET, actor="test",
                                      keys=KEYS, **kw)
    ballots.release(session, rnd, ballots.opener(rnd, SECRET), today=rounds.local_today(), everything=True)
    session.commit()
    return report


def _refused(session, rnd, data) -> dict[int, str]:
    with pytest.raises(imports.ImportRejected) as exc:
        imports.import_responses(session, rnd, data, today=rounds.local_today(), secret=SECRET, actor="test",
                                 keys=KEYS)
    session.rollback()
    return {e.line: e.message for e in exc.value.errors}


def _cell_figures(session, rnd, cell_id):
    session.expire_all()
    return next(c.figures for c in progress.round_progress(session, rnd).cells if c.cell_id == cell_id)


def test_a_scanned_sheet_decides_the_cell_once_and_keying_it_is_refused(collecting, session, make_user, staff_client,
                                                                        tmp_path):
    rnd = collecting
    q = rounds.questionnaire_for(session, rnd, FORM)
    rows = xlsform.survey_rows(q, q, xlsform_service.round_lists(session, rnd, q))
    assert [r["name"] for r in rows[:5] if r["type"] == "barcode"] == [xlsform.SHEET]
    issued = _issue(session, rnd, FORM)
    sheet = issued[0]
    scanned = _printed_qr(session, sheet, tmp_path)
    assert sheets.parse_page_payload(KEYS, scanned)[0] == sheet.serial
    other_cell = next(s for s in issued if s.quota_cell.agency_id != sheet.quota_cell.agency_id)
    before = _cell_figures(session, rnd, sheet.quota_cell_id)
    # the sheet's QR, no agency chosen (the form asks for none after a scan); another one without a sheet,
    # whose hidden fields decide its cell
    data = ef.kobo_xlsx(q.title, rows, [_sub(q, sheet=scanned), _sub(q, agency=other_cell.quota_cell.agency.code)],
                        [])
    report = _import(session, rnd, data)
    assert report.responses == 2 and report.already == 0
    session.expire_all()
    assert session.get(Sheet, sheet.id).state is SheetState.VERIFIED
    assert session.get(Sheet, other_cell.id).state is SheetState.ISSUED
    cells = sorted(r.quota_cell_id for r in session.scalars(sa.select(Response)))
    assert cells == sorted([sheet.quota_cell_id, other_cell.quota_cell_id])
    # nothing links the response to its sheet
    assert session.scalar(sa.select(sa.func.count()).select_from(Response).where(Response.sheet_id.is_not(None))) == 0
    after = _cell_figures(session, rnd, sheet.quota_cell_id)
    assert (after.verified, after.issued, after.keyed) == (before.verified + 1, before.issued - 1, before.keyed)
    # the paper sheet, brought back too, is not keyed a second time
    clerk = make_user("clerk")
    with pytest.raises(sheets.SheetError, match="ODK/KoboToolbox"):
        keying.key_sheet(session, session.get(Sheet, sheet.id), clerk, {}, today=rounds.local_today())
    session.rollback()
    assert _cell_figures(session, rnd, sheet.quota_cell_id) == after
    # the same export again adds nothing and does not call the sheet spent
    again = _import(session, rnd, data)
    assert again.responses == 0 and again.already == 2
    # another submission scanning the same sheet is refused, on the responses page too
    client = staff_client("supervisor")
    page = client.post(f"/staff/responses/{rnd.code}/import", content_type="multipart/form-data", data={
        "file": (io.BytesIO(ef.kobo_xlsx(q.title, rows, [_sub(q, sheet=scanned)], [])), "kobo.xlsx")})
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and "dòng 2:" in html and "đã có câu trả lời" in html and sheet.serial in html


def test_bad_serials_are_refused_with_their_row_and_nothing_changes(collecting, session, make_user):
    rnd = collecting
    q = rounds.questionnaire_for(session, rnd, FORM)
    rows = xlsform.survey_rows(q, q, xlsform_service.round_lists(session, rnd, q))
    issued = _issue(session, rnd, FORM)
    keyed, void, good = issued[0], issued[1], issued[2]
    keying.key_sheet(session, keyed, make_user("clerk"), {keying.slot_name(keying.SHEET_ROW, i.code): "3"
                                                          for i in q.scale_items}, today=rounds.local_today())
    sheets.reprint(session, void, today=rounds.local_today(), by=None, actor="test")
    session.commit()
    matrix = _issue(session, rnd, "HĐ-CT")[0]
    payload = sheets.page_payload(KEYS, good.serial, 1)
    forged = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    unknown = sheets.make_serial(rnd.code, 9999)
    wrong_agency = next(s for s in issued[3:] if s.quota_cell.agency_id != good.quota_cell.agency_id)
    subs = [
        _sub(q, sheet=forged),                                                  # line 2
        _sub(q, sheet=unknown),                                                 # 3
        _sub(q, sheet=sheets.page_payload(KEYS, keyed.serial, 1)),              # 4: keyed on paper
        _sub(q, sheet=void.serial),                                             # 5: typed, void
        _sub(q, sheet=sheets.sheet_url(BASE, KEYS, matrix.id)),                 # 6: a HĐ-CT sheet
        _sub(q, sheet=payload),                                                 # 7: good
        _sub(q, sheet=sheets.page_payload(KEYS, good.serial, 2)),               # 8: its other page
        _sub(q, sheet=sheets.page_payload(KEYS, wrong_agency.serial, 1),
             agency=good.quota_cell.agency.code),                               # 9
    ]
    states = {s.id: s.state for s in session.scalars(sa.select(Sheet))}
    responses = session.scalar(sa.select(sa.func.count()).select_from(Response))
    errors = _refused(session, rnd, ef.kobo_xlsx(q.title, rows, subs, []))
    assert sorted(errors) == [2, 3, 4, 5, 6, 8, 9]
    assert "Mã QR không hợp lệ" in errors[2]
    assert "Không tìm thấy phiếu" in errors[3]
    assert keyed.serial in errors[4] and "đã có câu trả lời" in errors[4]
    assert "đã bị hủy" in errors[5]
    assert "là phiếu mẫu HĐ-CT" in errors[6]
    assert "đã được quét ở dòng 7" in errors[8]
    assert f"thuộc chỉ tiêu của {wrong_agency.quota_cell.agency.code}" in errors[9]
    session.expire_all()
    assert {s.id: s.state for s in session.scalars(sa.select(Sheet))} == states
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)) == responses
    # without the signing keys a scanned QR cannot be checked: refused, not trusted
    with pytest.raises(imports.ImportRejected) as exc:
        imports.import_responses(session, rnd, ef.kobo_xlsx(q.title, rows, [_sub(q, sheet=payload)], []),
                                 today=rounds.local_today(), secret=SECRET, actor="test")
    session.rollback()
    assert "SHEET_SIGNING_KEYS" in str(exc.value.errors[0])


def test_a_matrix_sheet_from_its_printed_qr_in_a_central_zip(collecting, session, runner, tmp_path):
    rnd = collecting
    q = rounds.questionnaire_for(session, rnd, "HĐ-CT")
    rows = xlsform.survey_rows(q, q, xlsform_service.round_lists(session, rnd, q))
    sheet = _issue(session, rnd, "HĐ-CT")[0]
    scanned = _printed_qr(session, sheet, tmp_path)
    assert scanned == sheets.page_payload(KEYS, sheet.serial, 1)  # HĐ-CT is printed to be read, every page signed
    items = [i.code for i in q.scale_items]
    sub = ef.Sub(uuid.uuid4().hex, {"form_code": q.code, "q_version": q.version, xlsform.SHEET: scanned,
                                    "rated": "SNV TAMKY"},
                 [{"agency": a, **{c: "4" for c in items}} for a in ("SNV", "TAMKY")])
    path = tmp_path / "HD-CT.csv.zip"
    path.write_bytes(ef.central_zip("HD-CT", rows, [sub]))
    result = runner.invoke(args=["responses", "import", "--round", rnd.code, str(path)])
    assert result.exit_code == 0 and "Đã nhập 1 phiếu" in result.output, result.output
    session.expire_all()
    assert session.get(Sheet, sheet.id).state is SheetState.VERIFIED
    assert session.scalar(sa.select(Ballot.quota_cell_id)) == sheet.quota_cell_id  # sealed until its cell has 2k


def test_phuctra_draws_imported_sheets_but_takes_no_day_from_their_import(collecting, session, make_user):
    """The import day says nothing of the day a sheet was answered: no "too many sheets in one day" flag."""
    from survey_service.services import phuctra

    rnd = collecting
    rnd.settings = {**rnd.settings, "phuc_tra_sheets_per_day": 5}
    q = rounds.questionnaire_for(session, rnd, FORM)
    rows = xlsform.survey_rows(q, q, xlsform_service.round_lists(session, rnd, q))
    issued = _issue(session, rnd, FORM)[:10]
    supervisor = make_user("supervisor")
    data = ef.kobo_xlsx(q.title, rows, [_sub(q, sheet=sheets.page_payload(KEYS, s.serial, 1)) for s in issued], [])
    _import(session, rnd, data, by=supervisor)
    report = phuctra.draw(session, rnd, today=rounds.local_today(), secret=SECRET, seed=3, actor="test")
    assert (report.returned, report.busy_day) == (10, 0) and report.random >= 1


def test_a_citizens_sheet_needs_its_investigator_as_for_keying(app, session, make_user):
    from datetime import timedelta

    from tests.conftest import QUESTIONNAIRE_DIR

    rounds.load_round(session, QUESTIONNAIRE_DIR / "rounds" / "DNG-HL-2026", QUESTIONNAIRE_DIR)
    rnd = rounds.get_round(session, "DNG-HL-2026")
    today = rounds.local_today()
    rounds.schedule(session, rnd, today - timedelta(days=7), today + timedelta(days=30), actor="test")
    make_user("clerk", username="dtv01")
    handed = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, agency_code="STP"),
                                 investigator="DTV01")[0]
    unassigned = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, agency_code="SYT"))[0]
    session.commit()
    q = rounds.questionnaire_for(session, rnd, handed.quota_cell.form_code)
    rows = xlsform.survey_rows(q, q, xlsform_service.round_lists(session, rnd, q))
    assert xlsform.SHEET in [r["name"] for r in rows]
    subs = [_sub(q, sheet=sheets.page_payload(KEYS, s.serial, 1)) for s in (unassigned, handed)]
    errors = _refused(session, rnd, ef.kobo_xlsx(q.title, rows, subs, []))
    assert list(errors) == [2] and "chưa ghi điều tra viên" in errors[2], errors
    report = imports.import_responses(session, rnd, ef.kobo_xlsx(q.title, rows, subs[1:], []), today=today,
                                      secret=SECRET, actor="test", keys=KEYS)
    session.commit()
    assert report.responses == 1 and session.get(Sheet, handed.id).state is SheetState.VERIFIED
    # sealed under the sheet's investigator, as a keyed citizens' sheet is, so phúc tra can quarantine it
    assert session.scalar(sa.select(Ballot.investigator)) == "dtv01"
