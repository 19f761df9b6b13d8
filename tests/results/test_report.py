"""The survey report read as a reader reads it: the Word file through python-docx, the PDF through pdffonts,
pdftotext and a rendered first page; its numbers held against the results export, the three target answers
and the change verdicts recomputed independently (statsmodels' Wilson interval and BH procedure).

Two simulated rounds of the same structure (QNA-2023-DEMO-TRUOC, then QNA-2023-DEMO with every agency's
quality a known step higher) are made once for the module and LibreOffice converts once: its start-up is slow.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import unicodedata
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from docx import Document
from docx.shared import Mm
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from survey_service import create_app
from survey_service.db import Base, get_session
from survey_service.services import exports, report, results, rounds, simulation, users
from survey_service.vietnamese import MISSING, number
from tests.conftest import ARTIFACTS_DIR, PASSWORD, QUESTIONNAIRE_DIR, ROUND_DIR

pytestmark = pytest.mark.skipif(not (shutil.which("soffice") and shutil.which("pdftotext")),
                                reason="LibreOffice (libreoffice-writer-nogui) and poppler-utils are needed")

CURRENT, PREVIOUS = rounds.demo_code("QNA-2023"), rounds.previous_demo_code("QNA-2023")
SHARE = (0.04, 0.12)
#: Of the 106 paper sheets, the share returned (keying through the services is the slow part).
RETURNED = 0.4
QUOC_HIEU = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The two rounds, the report (docx and PDF, through the CLI) and the results export of both rounds."""
    tmp = tmp_path_factory.mktemp("report")
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite'}", "WTF_CSRF_ENABLED": False,
                      "QUESTIONNAIRE_DIR": str(QUESTIONNAIRE_DIR), "SECRET_KEY": "test-secret",
                      "SHEET_SIGNING_KEYS": ["test-sheet-key"], "SESSION_COOKIE_SECURE": False})
    Base.metadata.create_all(app.extensions["db_engine"])
    with app.app_context():
        session = get_session()
        staff = {name: users.create_user(session, name, PASSWORD, role, actor="test")
                 for name, role in (("thuky1", "clerk"), ("thuky2", "clerk"), ("giamsat", "supervisor"),
                                    ("phantich", "analyst"))}
        session.commit()
        today = date.today()
        for code, shift, seed in ((PREVIOUS, simulation.PREVIOUS_SHIFT, 2022), (CURRENT, 0.0, None)):
            rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR, actor="test", simulated_code=code)
            rnd = rounds.get_round(session, code)
            rounds.schedule(session, rnd, today - timedelta(days=7), today + timedelta(days=30), actor="test")
            simulation.simulate(session, rnd, clerks=(staff["thuky1"], staff["thuky2"]),
                                supervisor=staff["giamsat"], today=today,
                                signing_keys=["test-sheet-key"], secret="test-secret", online_share=SHARE,
                                quality_shift=shift, answers_seed=seed, returned_share=RETURNED)
            session.commit()
        out = app.test_cli_runner().invoke(args=["report", "--round", CURRENT, "--previous", PREVIOUS,
                                                 "--out", str(tmp / "r.docx"), "--out", str(tmp / "r.pdf")])
        assert out.exit_code == 0, out.output
        for code in (CURRENT, PREVIOUS):
            exports.export(results.cached_results(session, rounds.get_round(session, code)), tmp / f"{code}.csv")
        yield {"app": app, "dir": tmp, "docx": tmp / "r.docx", "pdf": tmp / "r.pdf"}
    app.extensions["db_engine"].dispose()


def _pdf_text(path, layout=False) -> str:
    args = ["pdftotext", *(["-layout"] if layout else []), str(path), "-"]
    return subprocess.run(args, capture_output=True, check=True).stdout.decode("utf-8")


def _texts(doc):
    """Every paragraph's text: body, tables, headers and footers."""
    yield from (p.text for p in doc.paragraphs)
    for table in doc.tables:
        yield from (cell.text for row in table.rows for cell in row.cells)
    for section in doc.sections:
        for part in (section.header, section.first_page_header, section.footer, section.first_page_footer):
            yield from (p.text for p in part.paragraphs)


def test_word_file_follows_decree_30(made):
    doc = Document(made["docx"])
    section = doc.sections[0]
    assert abs(section.page_width - Mm(210)) < Mm(0.5) and abs(section.page_height - Mm(297)) < Mm(0.5)
    assert Mm(20) <= section.top_margin <= Mm(25) and Mm(20) <= section.bottom_margin <= Mm(25)
    slack = Mm(0.1)  # margins are kept in twentieths of a point: 15 mm is 850 twips, 14.99 mm
    assert Mm(30) - slack <= section.left_margin <= Mm(35) and Mm(15) - slack <= section.right_margin <= Mm(20)
    normal = doc.styles["Normal"]
    assert normal.font.name == "Times New Roman" and 13 <= normal.font.size.pt <= 14
    for name in ("Heading 1", "Heading 2"):
        assert doc.styles[name].font.name == "Times New Roman"
        assert "Theme" not in doc.styles[name].element.xml.split("w:rFonts", 1)[1].split("/>", 1)[0]
    fonts = {run.font.name for p in doc.paragraphs for run in p.runs} - {None}
    assert fonts <= {"Times New Roman"}
    # page numbers from page 2: a PAGE field in the default header, none on the first page
    assert section.different_first_page_header_footer
    assert "PAGE" in section.header._element.xml
    assert "PAGE" not in section.first_page_header._element.xml
    texts = list(_texts(doc))
    assert not [t for t in texts if "{{" in t or "{%" in t or "}}" in t]
    lines = {line for t in texts for line in t.split("\n")}
    assert QUOC_HIEU in lines and "Độc lập - Tự do - Hạnh phúc" in lines
    assert report.SIMULATED_NOTE in [p.text for p in section.footer.paragraphs]
    assert report.SIMULATED_NOTE in [p.text for p in section.first_page_footer.paragraphs]


def test_pdf_embeds_every_font_and_speaks_vietnamese(made):
    listing = subprocess.run(["pdffonts", str(made["pdf"])], capture_output=True, check=True, text=True).stdout
    rows = [line.split() for line in listing.splitlines()[2:] if line.strip()]
    assert rows and all(row[-5] == "yes" for row in rows), listing  # the "emb" column
    assert any("LiberationSerif" in row[0] for row in rows), listing
    text = _pdf_text(made["pdf"])
    assert QUOC_HIEU in text and unicodedata.is_normalized("NFC", text)
    pages = text.split("\f")[:-1]
    assert len(pages) > 3
    # a simulated round's report says so on every page; page numbers from page 2
    assert all(report.SIMULATED_NOTE in page for page in pages)
    assert not re.match(r"\s*1\s*\n", pages[0]) and re.match(r"\s*2\s*\n", pages[1])
    for word in ("ạ", "ậ", "ế", "ệ", "ộ", "ợ", "ự"):
        assert word in text
    out = ARTIFACTS_DIR / "report"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "110", "-f", "1", "-l", "1", "-png", "-singlefile", str(made["pdf"]),
                    str(out / "page-1")], check=True)
    assert (out / "page-1.png").stat().st_size > 20_000


def _export(made, code) -> pd.DataFrame:
    frame = pd.read_csv(made["dir"] / f"{code}.csv", encoding="utf-8-sig")
    return frame.rename(columns={v: k for k, v in exports.SUMMARY_HEADERS.items()})


def _vi(value, digits) -> str:
    """The export's full value rounded half away from zero as the report prints it."""
    if pd.isna(value):
        return MISSING
    scaled = abs(value) * 10 ** digits
    rounded = math.floor(scaled + 0.5 + 1e-9) / 10 ** digits
    return number(math.copysign(rounded, value), digits)


def _interval(lo, hi, digits) -> str:
    return MISSING if pd.isna(lo) or pd.isna(hi) else _vi(lo, digits) + "–" + _vi(hi, digits)


def _rows(text: str, code: str) -> list[str]:
    """The table rows of an agency in pdftotext's layout: its code, then a column gap."""
    return [line for line in text.splitlines() if re.match(rf"\s*{re.escape(code)}\s{{2,}}", line)]


def test_tables_hold_the_export_values(made):
    text = _pdf_text(made["pdf"], layout=True)
    summary = _export(made, CURRENT)
    checked = 0
    for r in summary.itertuples():
        line = _rows(text, r.agency)[0]  # its first table: points and satisfaction
        expected = [_vi(r.survey_points, 2), _interval(r.survey_points_ci_lo, r.survey_points_ci_hi, 2),
                    _vi(r.satisfaction, 1), _interval(r.satisfaction_ci_lo, r.satisfaction_ci_hi, 1)]
        assert all(v in line for v in expected), (r.agency, expected, line)
        checked += not pd.isna(r.survey_points)
    assert len(summary) == 43 and checked >= 30


def _wilson_verdict(p, se, n, target):
    """Recomputed apart from the service: statsmodels' Wilson interval at 90 % on the Kish effective size."""
    n_eff = p * (1 - p) / se ** 2 if se > 0 else n
    lo, hi = proportion_confint(p * n_eff, n_eff, alpha=0.10, method="wilson")
    return "Đạt" if lo >= target else "Không đạt" if hi < target else "Chưa đủ căn cứ"


def test_target_answers_recomputed(made):
    summary = _export(made, CURRENT)
    text = _pdf_text(made["pdf"], layout=True)
    seen = set()
    for r in summary.itertuples():
        if pd.isna(r.satisfaction):
            continue
        target = 85.0 if r.agency in ("STNMT", "SXD") else 90.0
        assert r.satisfaction_target == target
        verdict = _wilson_verdict(r.satisfaction / 100, r.satisfaction_se / 100, r.n, target / 100)
        assert r.satisfaction_verdict == verdict, r.agency
        # a verdict may wrap in its cell: its first two words are on the row's first line
        target_line = [line for line in _rows(text, r.agency) if " ".join(verdict.split()[:2]) in line]
        assert target_line, (r.agency, verdict)
        seen.add(verdict)
    assert len(seen) >= 2


def test_change_verdicts_recomputed_and_the_known_change_recovered(made):
    now, before = _export(made, CURRENT).set_index("agency"), _export(made, PREVIOUS).set_index("agency")
    text = _pdf_text(made["pdf"], layout=True)
    before = before.reindex(now.index)
    # the family: every agency whose difference has a standard error (same code: the rounds share a structure)
    se_all = np.sqrt(now["satisfaction_se"] ** 2 + before["satisfaction_se"] ** 2)
    both = now.index[now["satisfaction"].notna() & before["satisfaction"].notna() & (se_all > 0)]
    diff = now.loc[both, "satisfaction"] - before.loc[both, "satisfaction"]
    se = se_all[both]
    p = 2 * norm.sf(np.abs(diff / se))
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    section = text[text.index("thay đổi so với đợt trước"):]
    for agency, d, adj, rej in zip(both, diff, adjusted, reject):
        verdict = ("Tăng có ý nghĩa" if d > 0 else "Giảm có ý nghĩa") if rej else "Không thay đổi rõ"
        line = _rows(section, agency)[0]
        assert number(adj, 3) in line and verdict.split()[0] in line, (agency, line)  # the verdict may wrap
    # the known change: every agency's quality is PREVIOUS_SHIFT lower before; its true satisfaction follows
    with made["app"].app_context():
        session = get_session()
        rnd = rounds.get_round(session, CURRENT)
        agencies = [a.code for a in rnd.agencies]
        q = rounds.questionnaire_for(session, rnd, "CC-CT")
        scale = q.scales[rnd.methodology["satisfaction_scale"]]
        positive = rnd.methodology["positive"][scale.code]
    quality = dict(zip(agencies, simulation.agency_qualities(len(agencies))))
    truth = pd.Series({a: 100 * (simulation.true_share(scale, positive, quality[a])
                                 - simulation.true_share(scale, positive, quality[a] + simulation.PREVIOUS_SHIFT))
                       for a in both})
    covered = ((diff - 1.96 * se <= truth) & (truth <= diff + 1.96 * se)).mean()
    assert covered >= 0.8, covered
    assert abs((diff - truth).mean()) < 3 * se.mean() / math.sqrt(len(both))


def test_report_download_refuses_clerks_and_bad_requests(made):
    client = made["app"].test_client()
    with made["app"].app_context():
        page = client.get(f"/staff/results/{CURRENT}/")
        assert page.status_code in (302, 401)
        client.post("/staff/login", data={"username": "thuky1", "password": PASSWORD})
        assert client.get(f"/staff/results/{CURRENT}/report.docx").status_code == 403
        client.post("/staff/logout")
        client.post("/staff/login", data={"username": "phantich", "password": PASSWORD})
        page = client.get(f"/staff/results/{CURRENT}/").get_data(as_text=True)
        assert "Tải báo cáo PDF" in page and f'value="{PREVIOUS}"' in page and "Chưa đủ căn cứ" in page
        # the download itself: tests/results/test_browser.py
        assert client.get(f"/staff/results/{CURRENT}/report.odt").status_code == 404
        missing = client.get(f"/staff/results/{CURRENT}/report.docx?previous=XYZ-2020")
        assert missing.status_code == 404
        same = client.get(f"/staff/results/{CURRENT}/report.docx?previous={CURRENT}")
        assert same.status_code == 422 and "Đợt so sánh phải là một đợt khác" in same.get_data(as_text=True)


def test_cli_refuses_bad_input(made, tmp_path):
    runner = made["app"].test_cli_runner()
    bad = runner.invoke(args=["report", "--round", CURRENT, "--out", str(tmp_path / "r.txt")])
    assert bad.exit_code == 1 and "Không hỗ trợ định dạng '.txt'" in bad.output
    unknown = runner.invoke(args=["report", "--round", "XYZ-2020", "--out", str(tmp_path / "r.docx")])
    assert unknown.exit_code == 1 and "Không có đợt khảo sát XYZ-2020" in unknown.output
    real = runner.invoke(args=["round", "load", str(ROUND_DIR)])
    assert real.exit_code == 0, real.output
    mixed = runner.invoke(args=["report", "--round", CURRENT, "--previous", "QNA-2023", "--out",
                                str(tmp_path / "r.docx")])
    assert mixed.exit_code == 1 and "mô phỏng" in mixed.output
    assert not (tmp_path / "r.docx").exists()


def test_the_real_pair_without_answers(made, tmp_path):
    """DNG-2026 against QNA-2023, both loaded and empty: compared through the declared continuity, and no
    conclusion drawn from no data."""
    runner = made["app"].test_cli_runner()
    for code in ("QNA-2023", "DNG-2026"):
        assert runner.invoke(args=["round", "load", str(QUESTIONNAIRE_DIR / "rounds" / code)]).exit_code == 0
    done = runner.invoke(args=["report", "--round", "DNG-2026", "--previous", "QNA-2023", "--out",
                               str(tmp_path / "dng.docx")])
    assert done.exit_code == 0, done.output
    text = "\n".join(p.text for p in Document(tmp_path / "dng.docx").paragraphs)
    assert "3. So sánh với đợt QNA-2023" in text and "danh sách kế tục của đợt" in text
    assert "chưa có phiếu được tính vào kết quả: chưa có kết luận nào" in text
