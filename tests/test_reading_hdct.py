"""HĐ-CT printed to be read: every page of the delegates' sheet carries its markers, its own QR and a block
per agency with a "not rated" bubble; the pages of a filled sheet are read independently, from a scanner's
PDF in any order and from photos, through the CLI and the service; a missing page is named, a page read twice
refused, and the clerk confirms the sheet once all its pages are read."""
from __future__ import annotations

import importlib.util
import io
import json
import math
import random
import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import zxingcpp
from PIL import Image

from survey_service.models import KEYER_READER, Response, Sheet, SheetState
from survey_service.omr import layout, reader, rows, simulate
from survey_service.services import keying, printing, reading, rounds, sheets
from tests.conftest import QUESTIONNAIRE_DIR, ROUND_DIR, collect_from_today

REPO = Path(__file__).resolve().parent.parent
KEYS = ["test-sheet-key"]
SECRET = "test-secret"
HD = "HĐ-CT"
SCAN, PHOTO = simulate.CONDITIONS[0], simulate.CONDITIONS[1]


@pytest.fixture
def rnd(session, loaded_round):
    collect_from_today(session, loaded_round)
    return loaded_round


def issue_hd(session, rnd):
    plans = sheets.paper_cells(session, rnd, form_code=HD)
    sheet = sheets.issue_sheets(session, rnd, plans[:1], actor="test")[0]
    session.commit()
    return sheet


def delegate_pages(session, sheet, seed: int):
    """(each page filled by a delegate, as an image; what was meant per item key) of one printed sheet."""
    pdf = printing.sheets_pdf(session, [sheet], base_url="http://x", signing_keys=KEYS)
    plan = reading.sheet_pages(keying.sheet_form(session, sheet))
    rng = random.Random(seed)
    filled, truth = [], {}
    for image, page in zip(reader.images_from_file(pdf), plan, strict=True):
        page_image, meant, _ = simulate.fill_delegate(image, page, rng, reader.PDF_DPI / 25.4)
        filled.append(page_image)
        truth |= meant
    return filled, truth, rng


def scanner_pdf(shots: list[bytes]) -> bytes:
    """A multi-page PDF of JPEG pages, as a sheet-feeding scanner writes one."""
    images = [Image.open(io.BytesIO(shot)).convert("RGB") for shot in shots]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=reader.PDF_DPI)
    return out.getvalue()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_has_its_markers_its_own_qr_and_a_block_per_agency(session, rnd):
    sheet = issue_hd(session, rnd)
    form = keying.sheet_form(session, sheet)
    pdf = printing.sheets_pdf(session, [sheet], base_url="http://x", signing_keys=KEYS)
    images = reader.images_from_file(pdf)
    plan = reading.sheet_pages(form)
    assert len(images) == len(plan) > 1
    blocks = set()
    for number, (image, page) in enumerate(zip(images, plan), 1):
        found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
        assert [b.text for b in found] == [sheets.page_payload(KEYS, sheet.serial, number)]
        assert len(found[0].text) <= 27  # page 10 and beyond take one character more
        aligned = reader.align(image)
        assert (aligned.page, aligned.markers, aligned.payload) == (number, 4, found[0].text)
        assert aligned.error_mm < 0.2
        # every bubble's clear zone holds nothing but its own ring: the reader scores a printed page blank
        marks = reader.read_marks(aligned, page)
        assert all(item.value is None for item in marks.items.values()), number
        blocks |= {key.rsplit(":", 1)[0] for key in page.items()}
        nearest = min(math.dist((a.x, a.y), (b.x, b.y)) for a in page.bubbles for b in page.bubbles if a is not b)
        assert nearest >= layout.MATRIX_PITCH and layout.BUBBLE_R >= 2.5
    assert blocks == {row.key for row in form.rows}
    keys = {key for page in plan for key in page.items()}
    assert keys == {layout.matrix_key(row.key, item.code) for row in form.rows
                    for item in [*form.questionnaire.scale_items, type("Skip", (), {"code": layout.SKIP})]}


def test_pages_in_any_order_missing_and_duplicate_pages_then_confirmed(session, rnd, runner, tmp_path, make_user):
    """A scanner's PDF of every page but one, in shuffled order, read by the CLI; the missing page named;
    a page read twice refused; the missing page photographed; the clerk confirms; the response holds what
    was marked, agency by agency."""
    sheet = issue_hd(session, rnd)
    filled, truth, rng = delegate_pages(session, sheet, seed=21)
    count = len(filled)
    order = list(range(1, count + 1))
    random.Random(4).shuffle(order)
    missing = order.pop(3)
    shots = {n: simulate.photograph(filled[n - 1], rng, SCAN) for n in order}
    (tmp_path / "scan.pdf").write_bytes(scanner_pdf([shots[n] for n in order]))
    result = runner.invoke(args=["sheets", "read", "--round", rnd.code, str(tmp_path / "scan.pdf")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("page") for line in lines] == order and not any("refused" in line for line in lines)
    assert lines[-1]["missing"] == [missing] and not lines[-1]["complete"]
    for line in lines:
        assert line["serial"] == sheet.serial
        for key, value in line["answers"].items():
            assert value == reader.REVIEW or value == truth[key], key
    session.expire_all()
    assert reading.waiting(session, sheet) is None
    assert reading.incomplete(session, rnd) == [(sheet, [missing])]
    clerk = make_user("clerk", "buudien")
    with pytest.raises(sheets.SheetError, match=f"còn thiếu trang {missing}:"):
        reading.confirm(session, sheet, clerk, {})
    again = reading.read_file(session, rnd, "lai.jpg", shots[order[0]], keys=KEYS, secret=SECRET)
    assert again[0].refused == f"Trang {order[0]} của phiếu {sheet.serial} đã được đọc rồi."
    last = reading.read_file(session, rnd, "thieu.jpg", simulate.photograph(filled[missing - 1], rng, PHOTO),
                             keys=KEYS, secret=SECRET)
    session.commit()
    assert last[0].page == missing and last[0].complete and last[0].missing == []
    assert reading.incomplete(session, rnd) == []

    pending = reading.waiting(session, sheet)
    assert pending.review, "this seed leaves marks for the clerk"
    assert set(pending.decided) | set(pending.review) == {
        key for key in truth if not key.endswith(":" + layout.SKIP)}
    for key, value in pending.decided.items():
        assert value == truth[key], key
    assert {truth[key] for key in pending.review} <= {reader.REVIEW, *"1234K"} | {None}
    assert all(" – câu " in pending.label(key) for key in pending.review if ":" in key)
    answers = {reading.slot(key): "-" if truth[key] in (None, reader.REVIEW) else "Viết tay" if truth[key] == "text"
               else truth[key] for key in pending.review}
    reading.confirm(session, sheet, clerk, answers)
    session.commit()
    assert sheet.keyings[0].keyer == KEYER_READER
    response = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    agencies = {row.agency_id: row.key for row in keying.sheet_form(session, sheet).rows}
    stored = {layout.matrix_key(agencies[a.agency_id], a.item_code): a.value
              for a in response.answers if a.agency_id is not None}
    meant = {key: value for key, value in truth.items()
             if value not in (None, reader.REVIEW) and not key.endswith(":" + layout.SKIP) and ":" in key}
    assert stored == meant
    skipped = {key.rsplit(":", 1)[0] for key, value in truth.items() if key.endswith(":" + layout.SKIP) and value}
    assert skipped and not any(key.rsplit(":", 1)[0] in skipped for key in stored)


def test_a_not_rated_bubble_beside_marks_sends_the_block_to_the_clerk():
    decided = reader.ItemReading("4", {"4": 0.9}, 0.3)
    blank = reader.ItemReading(None, {"4": 0.02}, 0.1)
    marked = reader.ItemReading(layout.SKIP_CODE, {layout.SKIP_CODE: 0.8}, 0.2)
    items = {"SNV:E01": decided, "SNV:E03": blank, "SNV:-": marked, "STP:E01": decided, "STP:-": blank}
    settled = rows.settle(items)
    assert settled["SNV:E01"].value == reader.REVIEW and settled["SNV:E01"].reason == rows.REASON
    assert settled["SNV:E03"] is blank and settled["SNV:-"] is marked
    assert settled["STP:E01"] is decided
    assert rows.answers(settled) == ["SNV:E01", "SNV:E03", "STP:E01"]


def test_simulated_delegates_subset():
    """A few HĐ-CT pages per condition, filled as delegates do, straight through the pure reader: no wrong
    automatic answer, every double mark and every block marked "not rated" and rated at once sent to the
    clerk, every page missing half the sheet refused (the full table: bench/bench_reading.py --form HĐ-CT)."""
    spec = importlib.util.spec_from_file_location("bench_reading", REPO / "bench" / "bench_reading.py")
    bench = sys.modules["bench_reading"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = bench.run_conditions(pages=2, seed=2026, only=[c.name for c in simulate.CONDITIONS], form=HD,
                                 rated=0.6)
    for row in table:
        assert row.wrong == 0 and row.doubles_decided == 0, row
        if row.condition.partial:
            assert row.refused == row.pages
        else:
            assert row.refused == 0 and row.decided > 0, row


def test_agencies_rated_on_sheets_out_neither_come_nor_go(app, session, rnd, tmp_path):
    """Printed HĐ-CT pages hold a block per agency in the round's order: while such sheets are out and not
    keyed, a reload of the round may rename an agency but not add one of the kinds rated (nor remove one)."""
    sheet = issue_hd(session, rnd)
    directory = tmp_path / "QNA-2023"
    shutil.copytree(ROUND_DIR, directory)
    agencies = directory / "agencies.csv"
    original = agencies.read_text(encoding="utf-8")
    agencies.write_text(original + "SMOI,department,Sở Mới\n", encoding="utf-8")
    with pytest.raises(rounds.RoundError, match="không thêm cơ quan SMOI khi còn phiếu HĐ-CT đã phát chưa nhập"):
        rounds.load_round(session, directory, QUESTIONNAIRE_DIR)
    session.rollback()
    agencies.write_text(original.replace("Sở Nội vụ", "Sở Nội vụ tỉnh"), encoding="utf-8")
    rounds.load_round(session, directory, QUESTIONNAIRE_DIR)  # a new name moves no block
    session.commit()
    for out in session.scalars(sa.select(Sheet).where(Sheet.quota_cell_id == sheet.quota_cell_id)):
        sheets.transition(session, out, SheetState.VOID, by=None, actor="test")
    agencies.write_text(original + "SMOI,department,Sở Mới\n", encoding="utf-8")
    rounds.load_round(session, directory, QUESTIONNAIRE_DIR)  # no HĐ-CT sheet out any more
    session.commit()
    assert any(row.key == "SMOI" for row in keying.sheet_form(session, sheet).rows)
