"""The paper channel: serials, signed QR tokens, printing, the sheet ledger, keying, blind double entry and
reconciliation, through the services, the web pages and the CLI."""
from __future__ import annotations

import random
import re
import subprocess
import unicodedata

import pytest
import sqlalchemy as sa

from survey_service.models import (
    Agency, AuditEvent, Keying, QuotaCell, Response, Round, Sheet, SheetEvent, SheetState,
)
from survey_service.omr import layout
from survey_service.services import keying, printing, rounds, sheets
from tests.conftest import PASSWORD, collect_from_today

KEYS = ["test-sheet-key"]
BASE = "http://127.0.0.1:5000"
LDH = "LĐH-CH"


@pytest.fixture(autouse=True)
def _collecting_today(request):
    """Sheets are keyed only while their round collects: the real 2023 window moves around today."""
    if "loaded_round" in request.fixturenames:
        collect_from_today(request.getfixturevalue("session"), request.getfixturevalue("loaded_round"))


# --- helpers -----------------------------------------------------------------------------------------
def issue(session, rnd, form_code=LDH, agency_code=None, extra=0):
    plans = sheets.paper_cells(session, rnd, form_code=form_code, agency_code=agency_code)
    batch = sheets.issue_sheets(session, rnd, plans, extra=extra, actor="test")
    session.commit()
    return batch


def full_answers(session, sheet, value="3", text="Cần rút ngắn thời gian xử lý hồ sơ"):
    """Form data keying every slot of a sheet with ``value`` (and the free text)."""
    form = keying.sheet_form(session, sheet)
    data = {keying.slot_name(row.key, item.code): value for row in form.rows for item in form.questionnaire.scale_items}
    for item in form.questionnaire.text_items:
        data[keying.slot_name("*", item.code)] = text
    return data


def set_settings(session, rnd, **values):
    rnd.settings = {**rnd.settings, **values}
    session.commit()


def login(client, user):
    client.post("/staff/logout")
    response = client.post("/staff/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302


def snapshot(session):
    """Counts of everything keying or the ledger may write."""
    session.expire_all()
    return {model.__name__: session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Keying, Response, SheetEvent, Sheet)} | {
        "states": sorted((s.serial, s.state.value) for s in session.scalars(sa.select(Sheet)))}


# --- serials and tokens ------------------------------------------------------------------------------
def test_serial_check_character_catches_every_single_typo():
    serial = sheets.make_serial("QNA-2023", 4217)
    assert serial[-1] in sheets.CHECK_ALPHABET
    assert sheets.normalize_serial(serial.lower().replace("-", " ")) == serial
    for i, ch in enumerate(serial):
        if ch == "-" or i < serial.index("-"):  # the round prefix is checked by the look-up (below)
            continue
        for other in sheets.ALPHABET.replace(ch, ""):
            typed = serial[:i] + other + serial[i + 1:]
            try:
                found = sheets.serial_candidates(typed)
            except sheets.SheetError:
                continue
            # Only a serial printed with the older check alphabet can answer, never the sheet itself.
            assert serial not in found
            assert all(c[-1] == sheets.legacy_check_character(c[:-2].replace("-", "")) for c in found)


def test_new_serials_have_no_look_alike_check_characters():
    checks = {sheets.make_serial("QNA-2023", n)[-1] for n in range(1, 2000)}
    assert checks == set(sheets.CHECK_ALPHABET)
    assert not checks & set("0O1ILU")


def test_printed_serial_with_a_look_alike_check_character_is_accepted():
    """Serials printed before the change (QNA2023-00089-O, QNA2023-00026-0) are read with either glyph."""
    assert sheets.legacy_check_character("QNA202300089") == "O"
    assert sheets.legacy_check_character("QNA202300026") == "0"
    assert sheets.serial_candidates("qna2023-00089-0") == ["QNA2023-00089-O"]
    assert sheets.serial_candidates("QNA2023 00089 O") == ["QNA2023-00089-O"]
    assert sheets.serial_candidates("QNA2023-00026-O") == ["QNA2023-00026-0"]
    with pytest.raises(sheets.SheetError, match="ký tự kiểm tra sai"):
        sheets.serial_candidates("QNA2023-00089-Q")


def test_old_serial_keyed_with_the_look_alike_opens_its_sheet(app, loaded_round, session, staff_client):
    sheet = issue(session, loaded_round, agency_code="SNV")[0]
    sheet.serial = "QNA2023-00089-O"  # as printed before the change of check alphabet
    session.commit()
    typed = "QNA2023-00089-0"
    client = staff_client("clerk")
    response = client.post("/paper/?round=QNA-2023", data={"code": typed.lower()})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/paper/sheets/{sheet.serial}/key")
    assert client.get(f"/paper/sheets/{typed}/key").status_code == 200
    wrong_prefix = "QNB2023" + sheet.serial[7:]
    assert client.post("/paper/?round=QNA-2023", data={"code": wrong_prefix}).status_code in (400, 404)


def test_token_survives_key_rotation_and_refuses_forgery():
    token = sheets.sign_sheet_id(["old-key"], 42)
    assert sheets.sheet_id_from_token(["new-key", "old-key"], token) == 42
    assert sheets.sign_sheet_id(["new-key", "old-key"], 42) != token  # the first key signs
    with pytest.raises(sheets.SheetError):
        sheets.sheet_id_from_token(["new-key"], token)
    payload, signature = token.split(".")
    with pytest.raises(sheets.SheetError):
        sheets.sheet_id_from_token(["old-key"], f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}")
    with pytest.raises(sheets.SheetError):
        sheets.sheet_id_from_token(["old-key"], "NDM." + signature)  # id 43 with the signature of 42


# --- printing ----------------------------------------------------------------------------------------
def test_printed_batch_qr_codes_decode_to_the_keying_screen_of_their_sheet(
        app, loaded_round, runner, client, make_user, tmp_path):
    """Both are printed to be read (HĐ-CT over several pages a sheet): every page's QR holds its signed
    serial and page, which the key-in screen's scanner field opens."""
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    login(client, make_user("clerk"))
    for form_code, count in (("LĐS-CT", 36), ("HĐ-CT", 30)):
        out = tmp_path / "sheets.pdf"
        result = runner.invoke(args=["sheets", "print", "--round", "QNA-2023", "--form", form_code, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"Đã phát {count} phiếu" in result.output
        for old in tmp_path.glob("page-*.ppm"):
            old.unlink()
        # HĐ-CT has ten pages a sheet: the first pages are enough
        last = ["-l", "12"] if form_code == "HĐ-CT" else []
        subprocess.run(["pdftoppm", "-r", "100", *last, str(out), str(tmp_path / "page")], check=True)
        pages = sorted(tmp_path.glob("page-*.ppm"))
        assert len(pages) >= (12 if last else count)
        codes_by_page = []
        for page in pages:
            found = zxingcpp.read_barcodes(Image.open(page), formats=zxingcpp.BarcodeFormat.QRCode)
            assert len(found) == 1, page.name
            codes_by_page.append(found[0].text)
        text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, check=True,
                              text=True).stdout.split("\f")
        seen = set()
        for number, (code, page_text) in enumerate(zip(codes_by_page, text)):
            serial = re.search(r"Số phiếu:? (\S+)", page_text).group(1)
            assert sheets.parse_page_payload(KEYS, code) == (serial, int(re.search(r"Trang (\d+)/", page_text)[1]))
            assert len(code) <= 27
            response = client.post("/paper/?round=QNA-2023", data={"code": code})
            assert response.status_code == 302
            assert response.headers["Location"].endswith(f"/paper/sheets/{serial}/key")
            seen.add(serial)
        assert len(seen) == (count if form_code == "LĐS-CT" else len(seen))
        landing = client.post("/paper/?round=QNA-2023", data={"code": codes_by_page[0]}, follow_redirects=True)
        assert landing.status_code == 200
        body = landing.get_data(as_text=True)
        assert "Nhập phiếu" in body and sorted(seen)[0] in body and "Lần nhập 1" in body


def test_pdf_text_is_nfc_vietnamese_with_the_title_and_the_serial_on_every_page(app, loaded_round, session):
    rnd = loaded_round
    hd = issue(session, rnd, form_code="HĐ-CT")[:2]
    pdf = printing.sheets_pdf(session, hd, base_url=BASE, signing_keys=KEYS)
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    title = rounds.questionnaire_for(session, rnd, "HĐ-CT").title
    assert unicodedata.is_normalized("NFC", title)
    flat = " ".join(text.split())
    assert title in flat
    pages = text.split("\f")[:-1]
    assert len(pages) >= 4  # the matrix spans several pages per sheet
    for page in pages:
        assert hd[0].serial in page or hd[1].serial in page
    fonts = subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "DejaVuSans" in fonts and " yes yes yes " in fonts
    agencies = session.scalars(sa.select(Agency.name).where(Agency.round_id == rnd.id)).all()
    assert all(" ".join(name.split()) in flat for name in agencies)


def test_every_page_of_the_readable_hdct_sheet_repeats_the_question_legend(app, loaded_round, session):
    """HĐ-CT printed to be read: page 1 asks every question in full; every page after it, read or filled on
    its own, says what each question number asks and what the codes mean; every agency has its block."""
    sheet = issue(session, loaded_round, form_code="HĐ-CT")[0]
    q = rounds.questionnaire_for(session, loaded_round, "HĐ-CT")
    pdf = printing.sheets_pdf(session, [sheet], base_url=BASE, signing_keys=KEYS)
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    pages = [" ".join(p.split()) for p in text.split("\f")[:-1]]
    assert len(pages) >= 4
    for n, item in enumerate(q.scale_items, 1):
        assert f"Câu {n} ({item.code}): {item.text}" in pages[0]
    for number, page in enumerate(pages[1:], 2):
        assert "tô kín ●" in page and f"Trang {number}/{len(pages)}" in page
        for n, item in enumerate(q.scale_items, 1):
            assert f"{n}. {printing.short_wording(item.text, 60)}"[:40] in page, (number, item.code)
        assert "Thang trả lời – 4 = Rất tốt" in page, number
    form = keying.sheet_form(session, sheet)
    flat = " ".join(pages)
    assert flat.count("Không đánh giá cơ quan này") == len(form.rows) + 1  # a bubble each, and the instruction
    assert all(" ".join(row.label.split()) in flat for row in form.rows)


def test_hdct_grid_is_printed_to_be_keyed_when_its_agencies_need_too_many_pages(app, loaded_round, session,
                                                                                monkeypatch):
    """A matrix form whose blocks would need more pages than the markers can name is printed as the grid to
    be keyed: every page repeats the column legend and the answer scales."""
    monkeypatch.setattr(layout, "MAX_PAGES", 3)
    sheet = issue(session, loaded_round, form_code="HĐ-CT")[0]
    q = rounds.questionnaire_for(session, loaded_round, "HĐ-CT")
    pdf = printing.sheets_pdf(session, [sheet], base_url=BASE, signing_keys=KEYS)
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    pages = [" ".join(p.split()) for p in text.split("\f")[:-1]]
    assert len(pages) >= 2
    for number, page in enumerate(pages, 1):
        for n, item in enumerate(q.scale_items, 1):
            assert f"Cột {n} ({item.code}):" in page, (number, item.code)
        assert "Thang trả lời – 4 = Rất tốt" in page, number
    assert printing.short_wording(q.scale_items[0].text)[:40] in pages[-1]


def test_print_whole_paper_plan_then_nothing_left_to_issue(app, loaded_round, runner, session, tmp_path):
    out = tmp_path / "plan.pdf"
    result = runner.invoke(args=["sheets", "print", "--round", "QNA-2023", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Đã phát 106 phiếu" in result.output
    again = runner.invoke(args=["sheets", "print", "--round", "QNA-2023", "--out", str(out)])
    assert again.exit_code == 1 and "Không có phiếu nào để in" in again.output
    reprint = runner.invoke(args=["sheets", "print", "--round", "QNA-2023", "--form", "HĐ-CT", "--again",
                                  "--out", str(out)])
    assert reprint.exit_code == 0 and "Đã in lại 30 phiếu" in reprint.output
    assert session.scalar(sa.select(sa.func.count()).select_from(Sheet)) == 106
    bad = runner.invoke(args=["sheets", "print", "--round", "QNA-2023", "--form", "CC-CT", "--out", str(out)])
    assert bad.exit_code == 1


def test_soft_closed_paper_cell_gets_no_new_sheets(app, loaded_round, session):
    plans = sheets.paper_cells(session, loaded_round, form_code="LĐH-CH", agency_code="SNV")
    plans[0].cell.soft_closed = True
    assert sheets.issue_sheets(session, loaded_round, plans, extra=1) == []
    plans[0].cell.soft_closed = False
    assert len(sheets.issue_sheets(session, loaded_round, plans)) == 2


def test_sheet_is_keyed_with_the_questionnaire_version_printed_on_it(app, loaded_round, session, make_user,
                                                                        tmp_path):
    import shutil

    from tests.conftest import QUESTIONNAIRE_DIR

    old_sheet = issue(session, loaded_round, agency_code="SNV")[0]
    printed = old_sheet.questionnaire_version_id
    copy = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRE_DIR, copy)
    path = copy / "LDH-CH.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace('title: "Phiếu', 'title: "Phiếu (sửa đổi)', 1),
                    encoding="utf-8")
    rounds.load_round(session, copy / "rounds" / "QNA-2023", copy)
    collect_from_today(session, loaded_round)  # loading puts back the 2023 dates
    new_sheet = issue(session, loaded_round, agency_code="STP")[0]
    assert new_sheet.questionnaire_version_id != printed

    keying.key_sheet(session, old_sheet, make_user("clerk"), full_answers(session, old_sheet), rng=random.Random(1))
    session.commit()
    response = session.scalar(sa.select(Response).where(Response.sheet_id == old_sheet.id))
    assert response.questionnaire_version_id == printed


# --- bad input on the key-in screen --------------------------------------------------------------------
def test_forged_or_altered_token_is_refused_and_nothing_stored(app, loaded_round, session, staff_client):
    sheet = issue(session, loaded_round, agency_code="SNV")[0]
    client = staff_client("clerk")
    token = sheets.sign_sheet_id(KEYS, sheet.id)
    before = snapshot(session)
    forged = [sheets.sign_sheet_id(["test-secret"], sheet.id), token[:-2] + ("xx" if token[-2:] != "xx" else "yy"),
              sheets.sign_sheet_id(["another-key"], sheet.id)]
    for bad in forged:
        response = client.get(f"/p/{bad}")
        assert response.status_code == 400
        assert "Mã QR không hợp lệ" in response.get_data(as_text=True)
        scanned = client.post("/paper/?round=QNA-2023", data={"code": f"{BASE}/p/{bad}"})
        assert scanned.status_code == 400
        assert "Mã QR không hợp lệ" in scanned.get_data(as_text=True)
    assert snapshot(session) == before


def test_wrong_check_character_void_sheet_and_other_round_are_refused(app, loaded_round, session, staff_client):
    rnd = loaded_round
    sheet, spare = issue(session, rnd, agency_code="SNV")
    client = staff_client("clerk")
    typo = sheet.serial[:-1] + ("A" if sheet.serial[-1] != "A" else "B")
    response = client.post("/paper/?round=QNA-2023", data={"code": typo})
    assert response.status_code == 400 and "ký tự kiểm tra sai" in response.get_data(as_text=True)
    assert client.get(f"/paper/sheets/{typo}/key").status_code == 400

    new = sheets.reprint(session, spare, by=None, actor="test")
    session.commit()
    assert spare.state is SheetState.VOID and spare.replaced_by_id == new.id
    before = snapshot(session)
    response = client.get(f"/paper/sheets/{spare.serial}/key")
    assert response.status_code == 409 and new.serial in response.get_data(as_text=True)
    posted = client.post(f"/paper/sheets/{spare.serial}/key", data=full_answers(session, spare))
    assert posted.status_code == 409
    assert snapshot(session) == before

    other = Round(code="QNA-2024", name="Đợt thử", province="Quảng Nam", year=2024, opens_on=rnd.opens_on,
                  closes_on=rnd.closes_on, settings=rnd.settings, methodology={}, methodology_hash="x",
                  content_hash="x", structure=rnd.structure)
    session.add(other)
    session.flush()
    cell = QuotaCell(round_id=other.id, form_code=LDH, agency_id=None, channel=sheet.quota_cell.channel, target=1)
    session.add(cell)
    session.flush()
    foreign = Sheet(serial=sheets.make_serial(other.code, 1), quota_cell_id=cell.id)
    session.add(foreign)
    session.commit()
    for code in (foreign.serial, f"{BASE}/p/{sheets.sign_sheet_id(KEYS, foreign.id)}"):
        response = client.post("/paper/?round=QNA-2023", data={"code": code})
        assert response.status_code == 409 and "QNA-2024" in response.get_data(as_text=True)


def test_value_outside_the_scale_is_refused_and_nothing_stored(app, loaded_round, session, staff_client):
    sheet = issue(session, loaded_round, agency_code="SNV")[0]
    client = staff_client("clerk")
    before = snapshot(session)
    for bad in ("5", "9", "X", ""):
        data = full_answers(session, sheet)
        data["*:E01"] = bad
        response = client.post(f"/paper/sheets/{sheet.serial}/key", data=data)
        assert response.status_code == 422
        assert "E01" in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_text_the_database_cannot_store_is_refused_when_keyed_or_reconciled(app, loaded_round, session,
                                                                            make_user):
    sheet = issue(session, loaded_round, agency_code="SNV")[0]
    first, second, supervisor = make_user("clerk"), make_user("clerk"), make_user("supervisor")
    before = snapshot(session)
    with pytest.raises(keying.KeyingError) as refused:
        keying.key_sheet(session, sheet, first, full_answers(session, sheet, text="Cần\x00 sửa"))
    assert refused.value.problems == {"*:KN": "Câu KN: có ký tự rỗng (NUL, mã 0), không lưu được."}
    session.rollback()
    assert snapshot(session) == before
    keying.key_sheet(session, sheet, first, full_answers(session, sheet, text="Cần sửa"))
    keying.key_sheet(session, sheet, second, full_answers(session, sheet, text="Cần sữa"))
    session.commit()
    before = snapshot(session)
    with pytest.raises(keying.KeyingError) as refused:
        keying.reconcile(session, sheet, supervisor, {"*:KN": "t", "*:KN:text": "Cần\x00 sửa"})
    assert "có ký tự rỗng (NUL, mã 0), không lưu được" in refused.value.problems["*:KN"]
    session.rollback()
    assert snapshot(session) == before


# --- keying and the ledger -----------------------------------------------------------------------------
def test_key_once_then_refused_showing_who_and_when(app, loaded_round, session, make_user, client):
    rnd = loaded_round
    set_settings(session, rnd, double_entry_first_sheets=0, double_entry_rate=0.0,
                 unsampled_keyed_count_as_verified=True)
    sheet = issue(session, rnd, agency_code="SNV")[0]
    clerk = make_user("clerk", full_name="Trần Văn Bưu Điện")
    login(client, clerk)
    data = full_answers(session, sheet)
    data["*:E02"] = "0"
    data["*:E03"] = "k"
    data["*:E04"] = "-"
    response = client.post(f"/paper/sheets/{sheet.serial}/key", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    session.expire_all()
    assert sheet.state is SheetState.VERIFIED and not sheet.double_entry
    assert [(e.from_state, e.to_state) for e in sheet.events] == [
        (None, SheetState.ISSUED), (SheetState.ISSUED, SheetState.RETURNED),
        (SheetState.RETURNED, SheetState.KEYED), (SheetState.KEYED, SheetState.VERIFIED)]
    assert all(e.user_id == clerk.id for e in sheet.events[1:])
    response_row = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    snv = session.scalar(sa.select(Agency).where(Agency.code == "SNV"))
    assert response_row.channel.value == "paper" and response_row.agency_id == snv.id
    assert response_row.form_code == LDH and not response_row.surplus
    values = {a.item_code: a.value for a in response_row.answers}
    assert values["E01"] == "3" and values["E02"] == "K" and values["E03"] == "K" and "E04" not in values
    assert values["KN"] == "Cần rút ngắn thời gian xử lý hồ sơ"
    assert {a.agency_id for a in response_row.answers} == {snv.id}

    before = snapshot(session)
    for who in (clerk, make_user("clerk")):
        login(client, who)
        again = client.get(f"/paper/sheets/{sheet.serial}/key")
        assert again.status_code == 409
        body = again.get_data(as_text=True)
        assert "Trần Văn Bưu Điện" in body and "đã được nhập" in body
        again_keyed = client.post(f"/paper/sheets/{sheet.serial}/key", data=full_answers(session, sheet, "1"))
        assert again_keyed.status_code == 409
    assert snapshot(session) == before


def test_unsampled_sheet_waits_for_supervisor_when_setting_is_off(app, loaded_round, session, make_user, client):
    rnd = loaded_round
    set_settings(session, rnd, double_entry_first_sheets=0, double_entry_rate=0.0,
                 unsampled_keyed_count_as_verified=False)
    sheet = issue(session, rnd, agency_code="SNV")[0]
    login(client, make_user("clerk"))
    assert client.post(f"/paper/sheets/{sheet.serial}/key", data=full_answers(session, sheet)).status_code == 302
    session.expire_all()
    assert sheet.state is SheetState.KEYED
    login(client, make_user("supervisor"))
    page = client.get("/paper/reconcile?round=QNA-2023").get_data(as_text=True)
    assert sheet.serial in page
    assert client.post(f"/paper/ledger/{sheet.serial}/verify").status_code == 302
    session.expire_all()
    assert sheet.state is SheetState.VERIFIED


def test_matrix_sheet_stores_one_answer_per_agency_and_item(app, loaded_round, session, make_user, client):
    rnd = loaded_round
    sheet = issue(session, rnd, form_code="HĐ-CT")[0]
    form = keying.sheet_form(session, sheet)
    groups = list(dict.fromkeys(r.group for r in form.rows))  # the round's kinds, in its order
    assert groups == ["Các sở, ban, ngành", "UBND các huyện, thị xã, thành phố", "Các cơ quan ngành dọc cấp tỉnh"]
    assert len(form.rows) == 43
    login(client, make_user("clerk"))
    page = client.get(f"/paper/sheets/{sheet.serial}/key").get_data(as_text=True)
    assert page.count('class="cell"') == 43 * len(form.questionnaire.scale_items)
    data = full_answers(session, sheet, "K")
    first = form.rows[0].key
    data[keying.slot_name(first, form.questionnaire.scale_items[0].code)] = "4"
    assert client.post(f"/paper/sheets/{sheet.serial}/key", data=data).status_code == 302
    row = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    assert row.agency_id is None
    scale_answers = [a for a in row.answers if a.agency_id is not None]
    assert len(scale_answers) == 43 * len(form.questionnaire.scale_items)
    text_answers = [a for a in row.answers if a.agency_id is None]
    assert [a.item_code for a in text_answers] == [i.code for i in form.questionnaire.text_items]
    first_agency = session.scalar(sa.select(Agency).where(Agency.code == first))
    assert {a.value for a in scale_answers if a.agency_id == first_agency.id} == {"4", "K"}


def test_surplus_sheets_are_flagged(app, loaded_round, session, make_user, client):
    rnd = loaded_round
    batch = issue(session, rnd, agency_code="SNV", extra=1)
    assert len(batch) == 3
    login(client, make_user("clerk"))
    for sheet in batch:
        assert client.post(f"/paper/sheets/{sheet.serial}/key", data=full_answers(session, sheet)).status_code == 302
    flags = session.scalars(sa.select(Response.surplus).order_by(Response.sheet_id)).all()
    assert flags == [False, False, True]


def test_bulk_returns_are_all_or_nothing(app, loaded_round, session, staff_client):
    a, b = issue(session, loaded_round, agency_code="SNV")
    client = staff_client("clerk")
    before = snapshot(session)
    token_url = f"{BASE}/p/{sheets.sign_sheet_id(KEYS, b.id)}"
    bad = client.post("/paper/returns?round=QNA-2023", data={"codes": f"{a.serial}\n{token_url}\nQNA2023-00099-A"})
    assert bad.status_code == 422 and "Chưa ghi nhận phiếu nào" in bad.get_data(as_text=True)
    assert snapshot(session) == before
    ok = client.post("/paper/returns?round=QNA-2023", data={"codes": f"{a.serial.lower()}\n{token_url}\n{a.serial}\n"})
    assert ok.status_code == 302
    session.expire_all()
    assert a.state is SheetState.RETURNED and b.state is SheetState.RETURNED
    again = client.post("/paper/returns?round=QNA-2023", data={"codes": a.serial}, follow_redirects=True)
    assert "1 phiếu đã được ghi nhận từ trước" in again.get_data(as_text=True)


def test_cli_return_reprint_and_status(app, loaded_round, session, runner, tmp_path):
    a, b = issue(session, loaded_round, agency_code="SNV")
    result = runner.invoke(args=["sheets", "return", "--round", "QNA-2023", a.serial])
    assert result.exit_code == 0 and "Đã ghi nhận 1 phiếu thu về" in result.output
    out = tmp_path / "r.pdf"
    result = runner.invoke(args=["sheets", "reprint", b.serial, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")
    result = runner.invoke(args=["sheets", "return", "--round", "QNA-2023", b.serial])
    assert result.exit_code == 1 and "đã bị hủy" in result.output
    status = runner.invoke(args=["sheets", "status", "--round", "QNA-2023"])
    assert status.output.split()[:4] == ["Mẫu", "phiếu", "Đã", "phát"] and "Đã xác nhận" in status.output
    assert "returned" not in status.output and "verified" not in status.output
    line = next(text for text in status.output.splitlines() if text.startswith(LDH))
    assert line.split()[1:] == ["1", "1", "0", "0", "1"]


# --- double entry --------------------------------------------------------------------------------------
def test_double_entry_sampling_first_sheets_then_rate(app, loaded_round, session, make_user):
    rnd = loaded_round
    set_settings(session, rnd, double_entry_first_sheets=2, double_entry_rate=0.5)
    batch = issue(session, rnd, form_code=LDH)[:12]
    clerk = make_user("clerk")
    rng = random.Random(7)
    for sheet in batch:
        keying.key_sheet(session, sheet, clerk, full_answers(session, sheet), rng=rng)
    session.commit()
    flags = [s.double_entry for s in batch]
    assert flags[:2] == [True, True]
    draws = random.Random(7)
    assert flags[2:] == [draws.random() < 0.5 for _ in flags[2:]]
    assert 0 < sum(flags[2:]) < 10


def test_blind_double_entry_agreement_and_reconciliation(app, loaded_round, session, make_user, client):
    rnd = loaded_round
    s1, s2 = issue(session, rnd, agency_code="SNV")
    first, second = make_user("clerk", username="nv1"), make_user("clerk", username="nv2")
    login(client, first)
    for sheet in (s1, s2):
        assert client.post(f"/paper/sheets/{sheet.serial}/key", data=full_answers(session, sheet)).status_code == 302
    session.expire_all()
    assert s1.double_entry and s1.state is SheetState.KEYED  # a clerk's first sheets are always double-keyed
    refused = client.get(f"/paper/sheets/{s1.serial}/key")
    assert refused.status_code == 403 and "nhân viên khác" in refused.get_data(as_text=True)

    login(client, second)
    waiting = client.get("/paper/second?round=QNA-2023").get_data(as_text=True)
    assert s1.serial in waiting and s2.serial in waiting
    blind = client.get(f"/paper/sheets/{s1.serial}/key").get_data(as_text=True)
    assert "Lần nhập 2" in blind and "nv1" not in blind and "checked" not in blind
    assert "Cần rút ngắn" not in blind
    assert client.post(f"/paper/sheets/{s1.serial}/key", data=full_answers(session, s1)).status_code == 302
    changed = full_answers(session, s2, text="Cần rút ngắn thời gian  xử lý hồ sơ")
    changed["*:E05"] = "4"
    changed["*:E06"] = "-"
    assert client.post(f"/paper/sheets/{s2.serial}/key", data=changed).status_code == 302
    session.expire_all()
    assert s1.state is SheetState.VERIFIED
    assert s2.state is SheetState.KEYED
    assert [(d.item, d.first, d.second) for d in keying.disagreements(s2)] == [("E05", "3", "4"), ("E06", "3", "")]
    assert client.post(f"/paper/sheets/{s2.serial}/key", data=changed).status_code == 409
    third = make_user("clerk", username="nv3")
    login(client, third)
    already = client.get(f"/paper/sheets/{s1.serial}/key").get_data(as_text=True)
    # The first keyer is named as such, the second as the second.
    assert re.search(r"đã được nhập bởi nv1 lúc .*; nhập lần hai bởi nv2 lúc", already), already

    supervisor = make_user("supervisor")
    login(client, supervisor)
    assert s2.serial in client.get("/paper/reconcile?round=QNA-2023").get_data(as_text=True)
    page = client.get(f"/paper/reconcile/{s2.serial}").get_data(as_text=True)
    assert "nv1" in page and "nv2" in page and "(để trống)" in page
    before = snapshot(session)
    incomplete = client.post(f"/paper/reconcile/{s2.serial}", data={"*:E05": "2"})
    assert incomplete.status_code == 422
    assert snapshot(session) == before
    done = client.post(f"/paper/reconcile/{s2.serial}", data={"*:E05": "2", "*:E06": "1"})
    assert done.status_code == 302
    session.expire_all()
    assert s2.state is SheetState.VERIFIED
    response = session.scalar(sa.select(Response).where(Response.sheet_id == s2.id))
    answers = {a.item_code: a.value for a in response.answers}
    assert answers["E05"] == "4" and answers["E06"] == "3"
    changes = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "answer.reconcile")).all()
    assert [(c.old_value["value"], c.new_value["value"], c.user_id) for c in changes] == [("3", "4", supervisor.id)]
    assert client.get(f"/paper/reconcile/{s2.serial}").status_code == 409

    stats = {s.clerk.username: s for s in keying.agreement_by_clerk(session, rnd)}
    assert stats["nv1"].double_sheets == 2 and stats["nv1"].agreed_sheets == 1
    assert stats["nv1"].overruled == 1 and stats["nv2"].overruled == 1  # E05 went to nv2, E06 to nv1
    assert stats["nv2"].slots == stats["nv1"].slots and stats["nv1"].agreed_slots == stats["nv1"].slots - 2
    table = client.get("/paper/agreement?round=QNA-2023").get_data(as_text=True)
    assert "nv1" in table and "%" in table


def test_reconciliation_shows_labels_and_takes_a_third_value(app, loaded_round, session, make_user, client):
    """Both clerks misread the sheet: the supervisor records what the paper says."""
    rnd = loaded_round
    sheet = issue(session, rnd, agency_code="SNV")[0]
    first, second = make_user("clerk", username="nv1"), make_user("clerk", username="nv2")
    login(client, first)
    assert client.post(f"/paper/sheets/{sheet.serial}/key", data=full_answers(session, sheet)).status_code == 302
    login(client, second)
    misread = full_answers(session, sheet, text="Cần rút ngắn thời gian")
    misread["*:E05"] = "4"
    assert client.post(f"/paper/sheets/{sheet.serial}/key", data=misread).status_code == 302
    login(client, make_user("supervisor"))
    page = client.get(f"/paper/reconcile/{sheet.serial}").get_data(as_text=True)
    assert "<strong>3 – Tốt</strong>" in page and "<strong>4 – Rất tốt</strong>" in page
    assert 'value="v:2"' in page and 'value="v:3"' not in page and 'name="*:KN:text"' in page
    before = snapshot(session)
    bad = client.post(f"/paper/reconcile/{sheet.serial}", data={"*:E05": "v:9", "*:KN": "1"})
    assert bad.status_code == 422 and "không thuộc thang" in bad.get_data(as_text=True)
    assert snapshot(session) == before
    done = client.post(f"/paper/reconcile/{sheet.serial}",
                       data={"*:E05": "v:2", "*:KN": "t", "*:KN:text": "Cần  rút ngắn thời gian xử lý"})
    assert done.status_code == 302, done.get_data(as_text=True)
    session.expire_all()
    response = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    answers = {a.item_code: a.value for a in response.answers}
    assert answers["E05"] == "2" and answers["KN"] == "Cần rút ngắn thời gian xử lý"
    stats = {s.clerk.username: s for s in keying.agreement_by_clerk(session, rnd)}
    assert stats["nv1"].overruled == 2 and stats["nv2"].overruled == 2


def test_ledger_searches_by_serial_agency_and_form_and_pages(app, loaded_round, session, staff_client):
    rnd = loaded_round
    issue(session, rnd, form_code="HĐ-CT")
    issue(session, rnd, form_code=LDH)
    total = session.scalar(sa.select(sa.func.count()).select_from(Sheet))
    client = staff_client("supervisor")

    def listed(query: str) -> list[str]:
        page = client.get(f"/paper/ledger?round=QNA-2023&{query}")
        assert page.status_code == 200
        return re.findall(r'class="serial[^"]*">(QNA2023-\d{5}-\w)<', page.get_data(as_text=True))

    first_page = listed("")
    assert len(first_page) == 50 < total and first_page == sorted(first_page)
    assert len(listed("page=2")) == min(50, total - 50) and listed("page=999") == listed(f"page={-(-total // 50)}")
    one = first_page[7]
    assert listed(f"serial={one.lower()}") == [one]
    assert listed(f"serial={one.split('-')[1]}") == [one]
    assert len(listed("agency=SNV")) == 2  # the two LĐH-CH sheets rating Sở Nội vụ
    assert len(listed("form=HĐ-CT")) == 30 and listed("form=HĐ-CT&agency=SNV") == []
    assert listed("serial=QNA2023-99999-Z") == []


# --- pages and roles -----------------------------------------------------------------------------------
def test_supervisor_prints_a_cell_from_the_page(app, loaded_round, session, staff_client):
    client = staff_client("supervisor")
    page = client.get("/paper/print?round=QNA-2023")
    assert page.status_code == 200 and "Kế hoạch phiếu giấy" in page.get_data(as_text=True)
    response = client.post("/paper/print?round=QNA-2023", data={"cell_choice": f"{LDH}|SNV", "extra": "0"})
    assert response.status_code == 303 and "printed=1-2" in response.headers["Location"]
    assert session.scalar(sa.select(sa.func.count()).select_from(Sheet)) == 2
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    # The page after printing counts the new sheets and offers their PDF.
    assert re.search(r"Sở Nội vụ</td>\s*<td class=\"num\">2</td><td class=\"num\">2</td>", shown), shown
    pdf_link = re.search(r'href="([^"]*/paper/print/sheets\.pdf[^"]*)"', shown).group(1).replace("&amp;", "&")
    pdf = client.get(pdf_link)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert session.scalar(sa.select(sa.func.count()).select_from(Sheet)) == 2  # downloading prints nothing new
    assert client.get("/paper/print/sheets.pdf?round=QNA-2023&printed=50-60").status_code == 404
    assert client.get("/paper/print/sheets.pdf?round=QNA-2023&printed=x").status_code == 404
    again = client.post("/paper/print?round=QNA-2023", data={"cell_choice": f"{LDH}|SNV"})
    assert again.status_code == 409
    ledger = client.get("/paper/ledger?round=QNA-2023").get_data(as_text=True)
    serials = sorted(set(re.findall(r"QNA2023-\d{5}-\w", ledger)))
    assert len(serials) == 2
    detail = client.get(f"/paper/ledger/{serials[0]}").get_data(as_text=True)
    assert "Đã phát" in detail and "In lại" not in detail and "phiếu thay thế" in detail
    asked = client.post(f"/paper/ledger/{serials[0]}/reprint")
    assert asked.status_code == 200 and f"Hủy phiếu {serials[0]} và in phiếu thay thế?" in asked.get_data(as_text=True)
    assert session.scalar(sa.select(sa.func.count()).select_from(Sheet)) == 2  # asking changed nothing
    done = client.post(f"/paper/ledger/{serials[0]}/reprint", data={"confirmed": "1"})
    assert done.status_code == 200 and done.mimetype == "application/pdf"
    session.expire_all()
    assert session.scalar(sa.select(Sheet.state).where(Sheet.serial == serials[0])) is SheetState.VOID
    assert client.get("/paper/ledger?state=nonsense").status_code == 400


def test_roles_are_enforced(app, loaded_round, staff_client, client):
    assert client.get("/paper/").status_code == 302  # to the login page
    clerk = staff_client("clerk")
    assert clerk.get("/paper/print").status_code == 403
    assert clerk.get("/paper/reconcile").status_code == 403
    assert clerk.get("/paper/").status_code == 200
    home = clerk.get("/staff/").get_data(as_text=True)
    assert "Nhập phiếu giấy" in home and "In phiếu giấy" not in home
