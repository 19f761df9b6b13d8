"""The Word report of a citizens' round, read back with python-docx and held against the round's results
(shares with their intervals, target statuses, response rates, phúc tra); the change since an earlier round is
computed for PAR rounds only, so asked with a citizens' round it is refused with the reason in Vietnamese,
never a server error. The PDF is the same Word file converted (tests/results/test_report.py)."""
from __future__ import annotations

import io

import pytest
from docx import Document

from analysis import round_half_away
from survey_service.services import citizens, comparison, report
from survey_service.vietnamese import number
from tests.test_citizens import demo  # noqa: F401  (the simulated citizens' round)


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
    judged = rep.shares[(rep.shares["level"] == "agency") & rep.shares["status"].notna()]
    assert len(judged)
    rows = {tuple(c.text for c in row.cells) for t in doc.tables for row in t.rows}
    for r in judged.itertuples():
        assert (r.domain, r.domain_name, r.measure_name, _pct(r.target), _pct(r.est),
                f"{_pct(r.ci_lo)}–{_pct(r.ci_hi)}", citizens.STATUS_LABELS[r.status]) in rows
    for r in rep.rates.itertuples():
        assert (r.agency, r.agency_name, number(r.issued), number(r.returned),
                _pct(r.rate) + "\u00a0%") in rows
    assert rep.reached and f"{number(rep.confirmed)}/{number(rep.reached)} người liên lạc được" in text
    assert ", ".join(rep.quarantined) in text and rep.definition_note in text
    assert len(doc.inline_shapes) == 1  # the overall chart
    # the results page links the report, and the download is the same Word file
    client = staff_client("analyst")
    link = f"/staff/results/{rnd.code}/report.docx"
    assert f'href="{link}"' in client.get(f"/staff/results/{rnd.code}/").get_data(as_text=True)
    page = client.get(link)
    assert page.status_code == 200 and "3. Theo cơ quan" in _text(Document(io.BytesIO(page.data)))


def test_no_comparison_with_or_of_a_citizens_round(session, runner, staff_client, loaded_round, demo,  # noqa: F811
                                                   tmp_path):
    rnd, _ = demo
    for after, before in ((rnd, loaded_round), (loaded_round, rnd)):
        with pytest.raises(comparison.ComparisonError, match=f"đợt khảo sát người dân \\({rnd.code}\\)"):
            comparison.compare_rounds(session, after, before)
    out = tmp_path / "so-sanh.docx"
    for current, previous in ((loaded_round.code, rnd.code), (rnd.code, loaded_round.code)):
        done = runner.invoke(args=["report", "--round", current, "--previous", previous, "--out", str(out)])
        assert done.exit_code == 1 and "Chưa hỗ trợ so sánh đợt khảo sát người dân" in done.output
        assert "Traceback" not in done.output and not out.exists()
    client = staff_client("analyst")
    for current, previous in ((loaded_round.code, rnd.code), (rnd.code, loaded_round.code)):
        page = client.get(f"/staff/results/{current}/report.docx?previous={previous}")
        assert page.status_code == 422 and "Chưa hỗ trợ so sánh" in page.get_data(as_text=True)
    # the PAR round's page does not offer the citizens' round to compare with
    assert f'value="{rnd.code}"' not in client.get(f"/staff/results/{loaded_round.code}/").get_data(as_text=True)


def test_a_par_report_is_still_written_beside_a_citizens_round(session, loaded_round, demo, tmp_path):  # noqa: F811
    path, = report.write_report(session, loaded_round, [tmp_path / "par.docx"])
    assert "ĐỐI CHIẾU VỚI MỤC TIÊU" not in _text(Document(str(path))) and "III. KẾT QUẢ" in _text(Document(str(path)))
