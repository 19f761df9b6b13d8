"""The Word report of a citizens' round, read back with python-docx and held against the round's results
(shares with their intervals, target statuses, response rates, phúc tra) and, compared with an earlier
citizens' round, against the change recomputed independently (scipy's normal, statsmodels' BH procedure); a
comparison between a citizens' round and a PAR round is refused with the reason in Vietnamese, never a server
error. The PDF is the same Word file converted (tests/results/test_report.py)."""
from __future__ import annotations

import io
from datetime import date

import numpy as np
import pytest
from docx import Document
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from analysis import round_half_away
from analysis import change
from analysis.targets import VERDICTS
from survey_service.services import citizens, comparison, report, rounds, simulation
from survey_service.vietnamese import number
from tests.conftest import QUESTIONNAIRE_DIR
from tests.test_citizens import citizens_round, demo  # noqa: F401  (the bundled round; its simulation)


def _text(doc) -> str:
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


def _pct(value) -> str:
    return number(round_half_away(100 * value, 1), 1)


def test_the_report_of_a_citizens_round(session, runner, staff_client, demo, tmp_path):  # noqa: F811
    rnd, _ = demo
    out = tmp_path / "bao-cao.docx"
    done = runner.invoke(args=["report", "--round", rnd.code, "--out", str(out)])
    assert done.exit_code == 0, done.output
    doc = Document(str(out))
    text = _text(doc)
    assert "không phải ý kiến của người dân thật" in text
    assert all(report.SIMULATED_NOTE in "".join(p.text for p in s.footer.paragraphs) for s in doc.sections)
    rep = citizens.report(session, rnd, quarantined=citizens.quarantined(session, rnd))
    # every published share with its interval, per element and overall, at every level
    shown = rep.shares[~rep.shares["withheld"]]
    assert len(shown) > 20
    for r in shown.itertuples():
        assert f"{_pct(r.est)} ({_pct(r.ci_lo)}–{_pct(r.ci_hi)})" in text, (r.level, r.domain, r.measure)
    # the target statuses of the agencies, the response rates and phúc tra
    judged = rep.shares[(rep.shares["level"] == "agency") & rep.shares["verdict"].notna()]
    assert len(judged)
    rows = {tuple(c.text for c in row.cells) for t in doc.tables for row in t.rows}
    for r in judged.itertuples():
        assert (r.domain, r.domain_name, r.measure_name, _pct(r.target), _pct(r.est),
                f"{_pct(r.ci_lo)}–{_pct(r.ci_hi)}", VERDICTS[r.verdict]) in rows
    for r in rep.rates.itertuples():
        assert (r.agency, r.agency_name, number(r.issued), number(r.returned),
                _pct(r.rate) + "\u00a0%") in rows
    assert rep.reached and f"{number(rep.confirmed)}/{number(rep.reached)} người liên lạc được" in text
    assert ", ".join(rep.quarantined) in text and rep.definition_note in text
    assert len(doc.inline_shapes) == 1  # the overall chart
    # the results page links the report, and the download is the same Word file
    client = staff_client("analyst")
    link = f"/staff/results/{rnd.code}/report.docx"
    assert f'action="{link}"' in client.get(f"/staff/results/{rnd.code}/").get_data(as_text=True)
    page = client.get(link + "?previous=")
    assert page.status_code == 200 and "3. Theo cơ quan" in _text(Document(io.BytesIO(page.data)))


def test_change_since_an_earlier_citizens_round_not_a_par_round(app, session, runner, staff_client, make_user,
                                                                loaded_round, demo, tmp_path):  # noqa: F811
    rnd, _ = demo
    refused = f"Không so sánh đợt khảo sát người dân {rnd.code} với đợt chỉ số cải cách hành chính QNA-2023"
    for after, before in ((rnd, loaded_round), (loaded_round, rnd)):
        with pytest.raises(comparison.ComparisonError, match=refused):
            comparison.compare_rounds(session, after, before)
    out = tmp_path / "so-sanh.docx"
    client = staff_client("analyst")
    for current, previous in ((loaded_round.code, rnd.code), (rnd.code, loaded_round.code)):
        done = runner.invoke(args=["report", "--round", current, "--previous", previous, "--out", str(out)])
        assert done.exit_code == 1 and refused in done.output
        assert "Traceback" not in done.output and not out.exists()
        page = client.get(f"/staff/results/{current}/report.docx?previous={previous}")
        assert page.status_code == 422 and refused in page.get_data(as_text=True)
    # the PAR round's page does not offer the citizens' round to compare with
    assert f'value="{rnd.code}"' not in client.get(f"/staff/results/{loaded_round.code}/").get_data(as_text=True)
    # an earlier citizens' round of the same agencies, simulated a known step worse
    code = rounds.previous_demo_code("DNG-HL-2026")
    rounds.load_round(session, tmp_path / "DNG-HL-2026", QUESTIONNAIRE_DIR, actor="test", simulated_code=code)
    earlier = rounds.get_round(session, code)
    rounds.schedule(session, earlier, rnd.opens_on, rnd.closes_on, actor="test")
    simulation.simulate(session, earlier, clerks=(make_user("clerk"), make_user("clerk")),
                        supervisor=make_user("supervisor"), today=date.today(),
                        signing_keys=app.config["SHEET_SIGNING_KEYS"], secret=app.config["SECRET_KEY"],
                        quality_shift=simulation.PREVIOUS_SHIFT, answers_seed=2022, observer=make_user("observer"),
                        auditor=make_user("auditor"))
    session.commit()
    done = runner.invoke(args=["report", "--round", rnd.code, "--previous", code, "--out", str(out)])
    assert done.exit_code == 0, done.output
    # the citizens' page offers the earlier citizens' round, not the PAR round
    page = client.get(f"/staff/results/{rnd.code}/").get_data(as_text=True)
    assert f'value="{code}"' in page and f'value="{loaded_round.code}"' not in page
    rows = {tuple(c.text for c in row.cells) for t in Document(str(out)).tables for row in t.rows}
    shares = [citizens.report(session, r, quarantined=citizens.quarantined(session, r)).shares.query(
        "level == 'agency'").set_index(["domain", "measure"]) for r in (earlier, rnd)]
    pairs = shares[0][["est", "se"]].join(shares[1][["est", "se", "domain_name"]], suffixes=("_1", "_2"))
    pairs = pairs.dropna(subset=["est_1", "est_2"]).reset_index()
    pairs["diff"] = pairs["est_2"] - pairs["est_1"]
    pairs["diff_se"] = np.hypot(pairs["se_1"], pairs["se_2"])
    pairs["p"] = 2 * norm.sf(pairs["diff"].abs() / pairs["diff_se"])
    pairs["p_bh"] = pairs.groupby("measure")["p"].transform(lambda p: multipletests(p, method="fdr_bh")[1])
    assert len(pairs) >= 20
    verdicts = set()
    for r in pairs.itertuples():
        verdict = (change.NO_CHANGE if r.p_bh >= change.FDR else change.IMPROVED if r.diff > 0 else change.DECLINED)
        verdicts.add(verdict)
        z = norm.ppf(0.975) * r.diff_se
        assert (r.domain, r.domain_name, r.domain, _pct(r.est_1), _pct(r.est_2), _pct(r.diff),
                f"{_pct(r.diff - z)}–{_pct(r.diff + z)}", number(r.p_bh, 3), change.CHANGE_LABELS[verdict]) in rows
    assert change.IMPROVED in verdicts  # the earlier round was simulated a known step worse


def test_the_report_of_a_citizens_round_before_any_response(session, citizens_round, tmp_path):  # noqa: F811
    path, = report.write_report(session, citizens_round, [tmp_path / "r.docx"])
    text = _text(Document(str(path)))
    assert "Đợt khảo sát chưa có tỷ lệ được công bố" in text and "chưa phúc tra người trả lời nào" in text
