"""The real pair of bundled rounds (QNA-2023 → DNG-2026) compared through the continuity DNG-2026 declares,
targets on the results, and the response rates the report prints, on SQLite and PostgreSQL."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa

from analysis import change, targets
from survey_service.models import QuotaCell
from survey_service.services import comparison, invitations, quotas, report, results, rounds, users
from tests.conftest import QUESTIONNAIRE_DIR, collect_from_today

DNG_DIR = QUESTIONNAIRE_DIR / "rounds" / "DNG-2026"


@pytest.fixture
def pair(session, loaded_round, builder):
    """QNA-2023 with imported answers (better for SNV than for SLĐTBXH), DNG-2026 loaded beside it."""
    rows = []
    for agency, value in (("SNV", "4"), ("SLDTBXH", "2"), ("STP", "3")):
        rows += [builder.row("CC-CT", agency, value) for _ in range(6)]
    collect_from_today(session, loaded_round)
    builder.load(rows)
    rounds.load_round(session, DNG_DIR, QUESTIONNAIRE_DIR)
    session.commit()
    return loaded_round, rounds.get_round(session, "DNG-2026")


def test_merged_agency_is_compared_with_its_combined_baseline(session, pair):
    qna, dng = pair
    mapping, how = comparison.baselines(dng, qna)
    assert how == "continues"
    assert mapping["SNV"] == ["SNV", "SLDTBXH"] and mapping["STP"] == ["STP"]
    found = comparison.compare_rounds(session, dng, qna)
    before = results.cached_results(session, qna).summary.set_index("agency")
    snv = found.table[(found.table["agency"] == "SNV") & (found.table["indicator"] == "satisfaction")].iloc[0]
    parts = before.loc[["SNV", "SLDTBXH"]]
    w = parts["n"].astype(float) / parts["n"].astype(float).sum()
    assert snv["baseline"] == "SNV + SLDTBXH"
    assert snv["before"] == pytest.approx(float((w * parts["satisfaction"]).sum()))
    # SNV's six answers are all positive: it publishes no SE, so neither does the merged baseline
    assert math.isnan(parts.loc["SNV", "satisfaction_se"]) and math.isnan(snv["before_se"])
    # DNG-2026 has no answers yet: no difference, no verdict, never a 0
    assert math.isnan(snv["diff"]) and snv["change"] is None
    # a round compared with itself, or with a later one, is refused
    with pytest.raises(comparison.ComparisonError, match="một đợt khác"):
        comparison.compare_rounds(session, qna, qna)
    with pytest.raises(comparison.ComparisonError, match="không diễn ra trước"):
        comparison.compare_rounds(session, qna, dng)


def test_targets_on_results_and_api(session, pair, client, make_user):
    qna, _ = pair
    res = results.cached_results(session, qna)
    t = res.targets.set_index(["agency", "indicator"])
    assert t.loc[("SXD", "satisfaction"), "target"] == 85 and t.loc[("SNV", "satisfaction"), "target"] == 90
    # six answers of "4" (satisfied) on every item: 100 % of 6 cannot show ≥ 90 %
    snv = t.loc[("SNV", "satisfaction")]
    assert snv["estimate"] == 100 and snv["verdict"] == "chua_du_can_cu" and snv["n_needed"] > 6
    token = users.issue_api_token(session, make_user("analyst"))
    session.commit()
    data = client.get(f"/api/v1/rounds/{qna.code}/results", headers={"Authorization": f"Bearer {token}"}).get_json()
    agency = next(a for a in data["agencies"] if a["agency"] == "SNV")
    assert agency["targets"][0]["verdict"] == "chua_du_can_cu"
    assert agency["targets"][0]["verdict_label"] == "Chưa đủ căn cứ"
    assert next(a for a in data["agencies"] if a["agency"] == "SLDTBXH")["targets"][0]["verdict"] == "khong_dat"


def test_response_rates_by_channel(session, pair):
    qna, _ = pair
    cell = session.scalar(sa.select(QuotaCell).where(QuotaCell.round_id == qna.id, QuotaCell.form_code == "CC-CT"))
    invitations.issue_codes(session, cell, 8, actor="test")
    session.commit()
    rates = {r.channel: r for r in report.channel_rates(session, qna)}
    assert rates["online"].issued == 8 and rates["online"].complete == 0 and rates["online"].rr1 == 0
    assert rates["paper"].issued == 0 and math.isnan(rates["paper"].rr1)
    assert change.CHANGE_LABELS[change.NO_CHANGE] == "Không thay đổi rõ"


def test_plan_shows_the_sample_a_decision_on_the_target_needs(session, mixed_pair, staff_client):
    qna, dng = mixed_pair
    assert comparison.continued_round(session, dng) == qna
    assert comparison.continued_round(session, qna) is None  # QNA-2023 continues nothing
    snv = next(c for c in quotas.cells(session, dng) if c.agency is not None and c.agency.code == "SNV")
    snv.staff_count = 2000
    session.commit()
    # DNG's SNV merges QNA's SNV and SLĐTBXH: 11 of 12 satisfied (91.7 %) against DNG's 90 % target
    before = results.cached_results(session, qna).summary.set_index("agency").loc[["SNV", "SLDTBXH"]]
    w = before["n"].astype(float) / 12
    p = float((w * before["satisfaction"]).sum())
    se = float(np.sqrt((w ** 2 * before["satisfaction_se"].fillna(0) ** 2).sum()))
    n_eff = (p / 100) * (1 - p / 100) / (se / 100) ** 2
    needed = targets.recommended_sample(targets.needed_effective_n(p / 100, 0.9), 12 / n_eff)
    found = comparison.decision_sizes(session, dng)["SNV"]
    assert p == pytest.approx(100 * 11 / 12) and needed > 100
    assert found.previous == "QNA-2023" and found.sample == needed
    assert "91,7" in found.reason and "90,0" in found.reason and "khảo sát toàn bộ" not in found.reason
    assert set(comparison.decision_sizes(session, dng)) == {"SNV"}  # nothing else of DNG continues answered agencies
    snv.staff_count = 40  # fewer staff than the decision needs: a census
    session.commit()
    assert comparison.decision_sizes(session, dng)["SNV"].sample == 40
    assert "khảo sát toàn bộ 40 người" in comparison.decision_sizes(session, dng)["SNV"].reason

    client = staff_client("supervisor")
    page = client.get(f"/staff/progress/{dng.code}/quotas")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Để kết luận" in text and "theo đợt QNA-2023" in text
    assert "khảo sát toàn bộ 40 người" in text
    collect_from_today(session, dng)
    session.commit()
    done = client.post(f"/staff/progress/{dng.code}/quotas/recommended", data={"basis": "decision"})
    assert done.status_code == 302
    session.expire_all()
    assert session.get(QuotaCell, snv.id).target == 40
    # a round continuing nothing has no such sample: its page has no column and the button changes nothing
    before = {c.id: c.target for c in quotas.cells(session, qna)}
    assert "Để kết luận" not in client.get(f"/staff/progress/{qna.code}/quotas").get_data(as_text=True)
    assert client.post(f"/staff/progress/{qna.code}/quotas/recommended", data={"basis": "decision"}).status_code == 302
    session.expire_all()
    assert {c.id: c.target for c in quotas.cells(session, qna)} == before
