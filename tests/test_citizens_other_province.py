"""A citizens' round of another province, written from the README and the guides alone (tests/data/rounds/
CTO-HL-2026, Cần Thơ city): checked and loaded, its household frame imported, sampled and signed off at the
command line, its sheets printed for an investigator and keyed, a receipt code spent online, and its results
computed, with nothing of Đà Nẵng, the bundled round's city, in what it prints, shows or exports."""
from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import openpyxl
from docx import Document
import sqlalchemy as sa

from survey_service.models import POOLED_INVESTIGATORS, Agency, Frame, QuotaCell, Response, Sheet
from analysis import fieldcheck
from survey_service.services import ballots, phuctra, portal, rounds
from tests.conftest import PASSWORD
from tests.test_citizens import SECRET, _answers, _key

DATA = Path(__file__).parent / "data"
ROUND_DIR = DATA / "rounds" / "CTO-HL-2026"
HOUSEHOLDS = DATA / "frames" / "CTO-HL-2026-households.csv"
ELSEWHERE = ("Đà Nẵng", "Da Nang", "danang", "DNG")


def _ok(runner, *args, stdin=None):
    result = runner.invoke(args=[str(a) for a in args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_citizens_round_of_cantho_from_the_docs(app, runner, session, make_user, staff_client, tmp_path,
                                                  monkeypatch):
    checked = _ok(runner, "round", "check", ROUND_DIR)
    assert "thành phố Cần Thơ" in checked and "2 mục tiêu" in checked and "5 yếu tố" in checked
    _ok(runner, "round", "load", ROUND_DIR)
    rnd = rounds.get_round(session, "CTO-HL-2026")
    today = rounds.local_today()
    rounds.schedule(session, rnd, today - timedelta(days=3), today + timedelta(days=30), actor="test")
    session.commit()

    # the household frame: imported (Vietnamese headers), drawn, signed off by the observer, setting the paper targets
    assert "4 ô" in _ok(runner, "frames", "import", "--round", rnd.code, "--kind", "households", HOUSEHOLDS)
    frame_id = session.scalar(sa.select(Frame.id).where(Frame.round_id == rnd.id))
    drawn = _ok(runner, "frames", "sample", frame_id, "--margin", "0.2", "--seed", "7")
    assert "58 chính thức" in drawn
    observer = make_user("observer")
    _ok(runner, "frames", "sign-off", frame_id, "--observer", observer.username, "--organisation", "CCB",
        "--password-stdin", stdin=PASSWORD + "\n")
    assert "4 ô" in _ok(runner, "frames", "targets", frame_id, "--form", "ND-HL")

    # paper: sheets printed for an investigator, keyed; their answers go through the ballot box
    make_user("clerk", username="dtv21")
    clerk = make_user("clerk")
    pdf = tmp_path / "phieu.pdf"
    _ok(runner, "sheets", "print", "--round", rnd.code, "--agency", "NINHKIEU", "--investigator", "dtv21",
        "--out", pdf)
    printed = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "thành phố Cần Thơ" in printed and not [w for w in ELSEWHERE if w in printed]
    issued = list(session.scalars(sa.select(Sheet).where(Sheet.investigator == "dtv21").order_by(Sheet.id)))
    assert len(issued) == 16  # NINHKIEU's official sample, for its households
    assert {s.commune for s in issued} == {"NINHKIEU"}
    for n, sheet in enumerate(issued[:8]):
        _key(session, sheet, clerk, G1="5" if n < 6 else "2", C9="4")
    session.commit()
    # households of the wards rate departments too: the sheet names the ward they live in
    refused = runner.invoke(args=["sheets", "print", "--round", rnd.code, "--agency", "SXD", "--commune", "HAICHAU",
                                  "--investigator", "dtv21", "--out", tmp_path / "x.pdf"])
    assert refused.exit_code == 1 and "không có xã, phường mã “HAICHAU”" in refused.output
    for agency, commune, keyed in (("SXD", "NINHKIEU", 3), ("SNNMT", "CAIKHE", 2)):
        _ok(runner, "sheets", "print", "--round", rnd.code, "--agency", agency, "--commune", commune,
            "--investigator", "dtv21", "--out", tmp_path / f"{agency}.pdf")
        for sheet in session.scalars(sa.select(Sheet).join(QuotaCell).join(Agency, Agency.id == QuotaCell.agency_id)
                                     .where(Sheet.commune == commune, Agency.code == agency)
                                     .order_by(Sheet.id).limit(keyed)):
            _key(session, sheet, clerk, G1="4")
    session.commit()

    # phúc tra draws each investigator's sheets per commune where the households live, whatever they rated
    strata = []
    monkeypatch.setattr(fieldcheck, "draw_share", lambda units, share, rng: strata.extend(units) or [])
    phuctra.draw(session, rnd, today=today, secret=SECRET, seed=3, actor="test")
    session.commit()
    assert sorted({(investigator, commune) for _, investigator, commune in strata}) == [
        ("dtv21", "CAIKHE"), ("dtv21", "NINHKIEU")]

    # a receipt code on a result slip of the Department of Justice, spent online
    dossiers = tmp_path / "ho-so.txt"
    dossiers.write_text("\n".join(f"CT-STP-{i}" for i in range(4)) + "\n", encoding="utf-8")
    slips = tmp_path / "phieu-hen.csv"
    _ok(runner, "receipts", "issue", "--round", rnd.code, "--agency", "STP", "--field", "1", "--dossiers", dossiers,
        "--out", slips)
    codes = [line.split(",")[1] for line in slips.read_text(encoding="utf-8").splitlines()[1:]]
    for code in codes:
        access = portal.open_code(session, code, today=today, secret=SECRET, start=True)
        assert [a.code for a in access.rated_agencies] == ["STP"]
        portal.submit(session, access, {"STP": _answers(G1="4")}, portal.new_submission_id(), today=today)
        session.commit()

    # results: every ballot released at the close; the ward's households weigh by the frame
    _ok(runner, "round", "close", rnd.code)
    assert ballots.waiting_count(session, rnd.id) == 0
    named = dict(session.execute(sa.select(Response.commune, sa.func.count()).where(Response.round_id == rnd.id)
                                 .group_by(Response.commune)).all())
    assert named == {"NINHKIEU": 8 + 3, POOLED_INVESTIGATORS: 2, None: 4}  # CAIKHE's 2 < k: pooled
    page = staff_client("analyst").get(f"/staff/results/{rnd.code}", follow_redirects=True)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Toàn thành phố Cần Thơ" in html and "UBND phường Ninh Kiều" in html
    assert "Sở Tư pháp" in html and 'class="verdict verdict-' in html
    assert not [w for w in ELSEWHERE if w in html]
    assert "Theo xã, phường nơi hộ gia đình cư trú" in html and 'id="shares-commune"' in html
    out = tmp_path / "ket-qua.xlsx"
    _ok(runner, "analysis", "run", "--round", rnd.code, "--out", out)
    book = openpyxl.load_workbook(out)
    cells = [str(c) for ws in book for row in ws.iter_rows(values_only=True) for c in row if c is not None]
    assert "thành phố Cần Thơ" in cells and not [w for w in ELSEWHERE if any(w in c for c in cells)]
    # the targets of round.yaml: 80 % overall everywhere, 85 % for the wards' civil servants (YT3)
    header, *rows = book["Ty le hai long"].iter_rows(values_only=True)
    targets = {(r["Cấp"], r["Mã"], r["Mã chỉ số"]): r["Mục tiêu"] for r in (dict(zip(header, row)) for row in rows)}
    assert targets[("agency", "NINHKIEU", "YT3")] == 0.85 and targets[("agency", "STP", "YT3")] is None
    assert targets[("province", None, "overall")] == targets[("agency", "STP", "overall")] == 0.80
    # per commune of residence: NINHKIEU's households, whatever they rated; CAIKHE's pooled two are no domain
    assert targets[("commune", "NINHKIEU", "overall")] == 0.80 and ("commune", "CAIKHE", "overall") not in targets
    docx = tmp_path / "bao-cao.docx"
    _ok(runner, "report", "--round", rnd.code, "--out", docx)
    document = Document(str(docx))
    text = "\n".join([p.text for p in document.paragraphs]
                     + [c.text for t in document.tables for row in t.rows for c in row.cells])
    assert "thành phố Cần Thơ" in text and "Theo xã, phường nơi hộ gia đình cư trú" in text
    assert ("Mục tiêu của đợt: hài lòng chung ≥ 80%, theo Nghị quyết 30c/NQ-CP (2011): trên 80 % đến năm 2020; "
            "công chức trực tiếp giải quyết công việc ≥ 85% (Công chức cấp xã (mẫu thử)).") in text
    assert not [w for w in ELSEWHERE if w in text]
