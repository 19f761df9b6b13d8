"""Sheets read by machine: printed sheets filled and photographed by the simulator, read through the
service, the CLI and the web page; refusals; the clerk's confirmation; the reader as a keyer in the double
entry; images deleted once a sheet is verified."""
from __future__ import annotations

import importlib.util
import io
import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
import zxingcpp

from survey_service.models import KEYER_READER, Keying, Response, SheetScan, SheetState
from survey_service.omr import layout, reader, simulate
from survey_service.services import keying, printing, reading, sheets
from tests.conftest import collect_from_today

REPO = Path(__file__).resolve().parent.parent
KEYS = ["test-sheet-key"]
SECRET = "test-secret"
LDH = "LĐH-CH"
SCAN, PHOTO, PARTIAL = simulate.CONDITIONS[0], simulate.CONDITIONS[2], simulate.CONDITIONS[-1]


@pytest.fixture
def rnd(session, loaded_round):
    collect_from_today(session, loaded_round)
    return loaded_round


def issue(session, rnd, form_code=LDH, count=1):
    plans = sheets.paper_cells(session, rnd, form_code=form_code)
    batch = sheets.issue_sheets(session, rnd, plans[:1], extra=count, actor="test")[:count]
    session.commit()
    return batch


def photos(session, sheet, seed=1, condition=SCAN, only: int | None = None):
    """(JPEG of each page filled in, what was meant per item) for one printed sheet (or its page ``only``)."""
    pdf = printing.sheets_pdf(session, [sheet], base_url="http://x", signing_keys=KEYS)
    pages = reader.images_from_file(pdf)
    plan = reading.sheet_pages(keying.sheet_form(session, sheet))
    rng = random.Random(seed)
    shots, truth = [], {}
    for image, page in list(zip(pages, plan))[only - 1:only] if only else zip(pages, plan):
        filled, meant, _ = simulate.fill(image, page, rng, reader.PDF_DPI / 25.4)
        shots.append(simulate.photograph(filled, rng, condition))
        truth |= meant
    return shots, truth


def first_page_pdf(pdf: bytes) -> bytes:
    """The first page of a PDF as a PDF of its own (poppler's pdfseparate)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "all.pdf").write_bytes(pdf)
        subprocess.run(["pdfseparate", "-f", "1", "-l", "1", f"{tmp}/all.pdf", f"{tmp}/one.pdf"], check=True)
        return Path(tmp, "one.pdf").read_bytes()


def test_printed_page_qr_is_short_signed_and_decodes(session, rnd):
    sheet = issue(session, rnd)[0]
    pdf = printing.sheets_pdf(session, [sheet], base_url="http://x", signing_keys=KEYS)
    page = reader.images_from_file(pdf)[0]
    found = zxingcpp.read_barcodes(page)
    assert [b.text for b in found] == [sheets.page_payload(KEYS, sheet.serial, 1)]
    assert len(found[0].text) <= 26 and sheets.parse_page_payload(KEYS, found[0].text) == (sheet.serial, 1)
    with pytest.raises(sheets.SheetError):
        sheets.parse_page_payload(["another-key"], found[0].text)
    # the key-in screen's scanner opens the sheet from the same QR
    assert sheets.find_sheet(session, found[0].text, KEYS).id == sheet.id


def test_read_confirm_double_entry_and_images_deleted(session, rnd, make_user):
    clerk, other = make_user("clerk", "buudien"), make_user("clerk", "buudien2")
    sheet = issue(session, rnd)[0]
    shots, truth = photos(session, sheet, seed=3)
    results = []
    for n, shot in enumerate(shots, 1):
        results += reading.read_file(session, rnd, f"p{n}.jpg", shot, keys=KEYS, secret=SECRET)
        session.commit()
    assert [r.refused for r in results] == ["", ""] and results[-1].complete
    for result in results:
        for code, value in result.answers.items():
            assert value == reader.REVIEW or value == truth[code], code
    pending = reading.waiting(session, sheet)
    assert all(truth[c] == reader.REVIEW or truth[c] is not None for c in pending.review if c in truth)
    answers = {f"*:{c}": ("-" if truth[c] in (None, reader.REVIEW) else "Góp ý viết tay" if truth[c] == "text"
                          else truth[c]) for c in pending.review}
    if pending.review:
        with pytest.raises(keying.KeyingError):
            reading.confirm(session, sheet, clerk, {})
        session.rollback()
    reading.confirm(session, sheet, clerk, answers)
    session.commit()
    first = session.scalar(sa.select(Keying).where(Keying.sheet_id == sheet.id))
    assert first.keyer == KEYER_READER and first.clerk_id == clerk.id and first.reading
    assert sheet.double_entry and sheet.state is SheetState.KEYED  # the reader's first sheets are all sampled
    assert session.scalar(sa.select(sa.func.count()).where(SheetScan.sheet_id == sheet.id,
                                                           SheetScan.image.is_not(None))) == 2
    # the blind keying by a person, from the paper
    data = {keying.slot_name("*", code): value for code, value in
            ((c, "-" if v is None else v) for c, v in first.answers.get("*", {}).items())}
    form = keying.sheet_form(session, sheet)
    for item in form.questionnaire.scale_items:
        data.setdefault(keying.slot_name("*", item.code), "-")
    keying.key_sheet(session, sheet, other, data)
    session.commit()
    assert sheet.state is SheetState.VERIFIED
    assert session.scalar(sa.select(sa.func.count()).where(SheetScan.sheet_id == sheet.id,
                                                           SheetScan.image.is_not(None))) == 0
    stats = {s.label: s for s in keying.agreement_by_clerk(session, rnd)}
    assert stats["Máy đọc phiếu (ảnh chụp, bản quét)"].rate == 1.0
    response = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    stored = {a.item_code: a.value for a in response.answers}
    assert "-" not in stored.values()  # blanks are absent, never stored as a dash
    for code, meant in truth.items():
        if meant not in (None, reader.REVIEW, "text"):
            assert stored[code] == meant


def test_refusals(session, rnd, monkeypatch):
    sheet, hd = issue(session, rnd)[0], issue(session, rnd, "HĐ-CT")[0]
    shots, _ = photos(session, sheet, seed=5)
    first = reading.read_file(session, rnd, "a.jpg", shots[0], keys=KEYS, secret=SECRET)
    session.commit()
    assert not first[0].refused
    again = reading.read_file(session, rnd, "a.jpg", shots[0], keys=KEYS, secret=SECRET)
    assert "đã được đọc" in again[0].refused
    forged = reading.read_file(session, rnd, "a.jpg", shots[1], keys=["another-key"], secret=SECRET)
    assert "không hợp lệ" in forged[0].refused
    small = cv2.resize(cv2.imdecode(np.frombuffer(shots[1], np.uint8), cv2.IMREAD_COLOR), None, fx=0.27, fy=0.27,
                       interpolation=cv2.INTER_AREA)  # 2.1 px/mm: the markers still found, the bubbles not trusted
    assert "quá nhỏ" in reading.read_file(session, rnd, "s.jpg", reader.encode(small, 95), keys=KEYS,
                                          secret=SECRET)[0].refused
    half, _ = photos(session, sheet, seed=6, condition=PARTIAL, only=2)
    assert "dấu vuông" in reading.read_file(session, rnd, "b.jpg", half[0], keys=KEYS, secret=SECRET)[0].refused
    assert "không phải ảnh" in reading.read_file(session, rnd, "c.jpg", b"not an image", keys=KEYS,
                                                 secret=SECRET)[0].refused
    # a sheet printed to be keyed (the HĐ-CT grid, as before it was printed to be read, or when its agencies
    # need more pages than the markers name) has no markers: its first page, as a scanner's PDF
    with monkeypatch.context() as patch:
        patch.setattr(layout, "MAX_PAGES", 3)
        pdf = printing.sheets_pdf(session, [hd], base_url="http://x", signing_keys=KEYS)
    first_page = first_page_pdf(pdf)
    assert "dấu vuông" in reading.read_file(session, rnd, "hd.pdf", first_page, keys=KEYS, secret=SECRET)[0].refused
    assert session.scalar(sa.select(sa.func.count()).select_from(SheetScan)) == 1


def test_cli_prints_one_json_line_per_page(session, rnd, runner, tmp_path):
    sheet = issue(session, rnd)[0]
    shots, truth = photos(session, sheet, seed=8, condition=PHOTO)
    for n, shot in enumerate(shots):
        (tmp_path / f"p{n}.jpg").write_bytes(shot)
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    result = runner.invoke(args=["sheets", "read", "--round", rnd.code, str(tmp_path / "p0.jpg"),
                                 str(tmp_path / "p1.jpg"), str(tmp_path / "bad.jpg")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("page") for line in lines] == [1, 2, None] and lines[2]["refused"]
    for line in lines[:2]:
        assert line["serial"] == sheet.serial
        for code, value in line["answers"].items():
            assert value in (reader.REVIEW, truth[code])


def test_web_upload_and_confirm(session, rnd, staff_client):
    sheet = issue(session, rnd)[0]
    shots, truth = photos(session, sheet, seed=11, condition=PHOTO)
    client = staff_client("clerk")
    response = client.post(f"/paper/read?round={rnd.code}", data={
        "files": [(io.BytesIO(shots[0]), "p1.jpg"), (io.BytesIO(shots[1]), "p2.jpg")]},
        content_type="multipart/form-data")
    assert response.status_code == 200, response.text
    assert client.post(f"/paper/read?round={rnd.code}", data={}).status_code == 400
    pending = reading.waiting(session, sheet)
    if pending is None:  # nothing uncertain: keyed at once
        assert "Đã đọc và lưu" in response.text
        assert client.get(f"/paper/read/{sheet.serial}").status_code == 409
    else:
        page = client.get(f"/paper/read/{sheet.serial}")
        assert page.status_code == 200 and page.text.count("data:image/jpeg;base64,") == len(pending.review)
        answers = {f"*:{c}": ("-" if truth.get(c) in (None, reader.REVIEW) else "Viết tay" if truth[c] == "text"
                              else truth[c]) for c in pending.review}
        assert client.post(f"/paper/read/{sheet.serial}", data=answers).status_code == 302
    session.expire_all()
    assert sheet.keyings[0].keyer == KEYER_READER


def bench_reading():
    spec = importlib.util.spec_from_file_location("bench_reading", REPO / "bench" / "bench_reading.py")
    bench = sys.modules["bench_reading"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_simulated_photos_subset():
    """A few pages per condition, straight through the pure reader: no wrong automatic answer, every double
    mark sent to the clerk, every page missing half the sheet refused (the full table: bench/bench_reading.py)."""
    table = bench_reading().run_conditions(pages=4, seed=2026, only=[c.name for c in simulate.CONDITIONS])
    for row in table:
        assert row.wrong == 0, row
        assert row.doubles_decided == 0, row
        if row.condition.partial:
            assert row.refused == row.pages
        else:
            assert row.refused == 0 and row.decided > 0


def test_conditions_held_out_from_tuning():
    """Pens, light and paper the reader was not tuned on, where it once answered wrong (light pencil washed
    out of an overexposed photo read as blank, a soft pencil tick taken for an empty ring): every page is
    read right or refused, never half-read, and an overexposed page is refused with its reason."""
    names = ["soft pencil, sheen", "photo 1200 px", "curved, crumpled page", "overexposed"]
    table = {row.condition.name: row for row in bench_reading().run_conditions(pages=6, seed=7, only=names)}
    assert list(table) == names
    for row in table.values():
        assert row.wrong == 0 and row.doubles_decided == 0, row
    assert all(table[name].decided for name in names[:3]), table
    overexposed = table["overexposed"]
    assert overexposed.refused and any("quá sáng" in reason for reason in overexposed.reasons), overexposed.reasons


def test_decisions_learn_from_the_page_and_the_strokes():
    """The limit on an empty ring comes from the page's own empty rings, so a soft pencil tick that once
    passed for a blank on a clean page goes to the clerk; a cross whose strokes leave the ring is a mark
    lighter than a fill, a dot that touches the ring is not."""
    codes = ["4", "3", "2", "1", "K"]
    tick = [0.0284, 0.0844, 0.0264, 0.0237, 0.0306]
    rng = np.random.default_rng(1)
    clean = np.concatenate([0.028 + rng.normal(0, 0.003, 5 * 12), tick])
    noisy = np.concatenate([0.028 + rng.normal(0, 0.02, 5 * 12), tick])
    questions = [slice(i, i + 5) for i in range(0, 65, 5)]
    assert reader.blank_rise(clean, questions) == reader.BLANK_RISE_MIN
    assert reader.blank_rise(noisy, questions) == reader.BLANK_RISE
    none = [0.0] * 5
    assert reader.decide(codes, tick, none, none, reader.BLANK_RISE_MIN).value == reader.REVIEW
    assert reader.decide(codes, tick, none, none, reader.BLANK_RISE).value is None
    cross = [0.03, 0.17, 0.028, 0.025, 0.031]
    assert reader.decide(codes, cross, [0, 0.08, 0, 0, 0], [0, 0.2, 0, 0, 0]).value == "3"
    assert reader.decide(codes, cross, none, [0, 0.2, 0, 0, 0]).value == reader.REVIEW
    dot = [0.03, 0.11, 0.028, 0.025, 0.031]
    assert reader.decide(codes, dot, [0, 0.04, 0, 0, 0], [0, 0.06, 0, 0, 0]).value == reader.REVIEW
    # a stray dot in a ring that a shadow's edge crosses (the paper fitted on the lit side): once read as K
    shaded = [0.013, 0.067, 0.032, 0.025, 0.254]
    assert reader.decide(codes, shaded, none, [0, 0, 0, 0, 0.154]).value == reader.REVIEW
    assert reader.decide(codes, shaded, none, [0, 0, 0, 0, 0.06]).value == "K"
    # an empty ring half in a shadow, whose darkest band around it passes for strokes: once read as 3
    half_shaded = [0.0273, 0.2422, 0.025, 0.0219, 0.031]
    assert reader.decide(codes, half_shaded, [0, 0.035, 0, 0, 0], [0, 0.335, 0, 0, 0]).value == reader.REVIEW
