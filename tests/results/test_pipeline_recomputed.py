"""The published numbers of a round, from the database to the tables, against an independent recomputation.

Sheets go in through the import service; the test reads the stored answers back with plain SQL and
recomputes, with pandas and the definitions of the README's "Scoring" section only, every criterion score
S(t, c), its points rounded as Excel's ROUND does, the total as the unrounded points summed and rounded
once, the standard errors of the fixed-share composite (strata = the responses' quota cells, PSU = the
respondent), and the ranks (ties share the best rank). A group (form × agency rated) of fewer respondents
than the round's ``min_breakdown`` counts for nothing: the two departments rated by every form here have
such groups (two LĐH-CH leaders, four council members) beside larger ones. Two agencies answer so that
every one of their
points and their total are exact decimal ties, where rounding half to even on the binary float would
publish other figures.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from survey_service.models import Agency, Answer, QuotaCell, Response
from survey_service.services import results
from tests.conftest import ROUND_DIR

# points of an agency whose CC-CT sheets (its only group) answer one value per criterion on every sheet:
# with 8 sheets and linear DG4 coefficients k/3, 3 · Σk/24 (A2, A4, A6) and 5 · Σk/24 (A5, Σk a multiple
# of 3) are multiples of 1/8; A8 is answered on its HL5 item only (k/4), 4 · Σk/32. Σk per criterion:
TIE_SUMS = {"A1": 9, "A2": 5, "A3": 15, "A4": 9, "A5": 3, "A6": 13, "A7": 12, "A8": 17}
# ... which give these exact points, and Excel's ROUND(x, 2) of them (Python's round() gives 0.62, 1.12,
# 0.62, 1.62, 2.12 and a total of 12.12)
TIE_POINTS = {"A1": (1.5, 1.5), "A2": (0.625, 0.63), "A3": (2.5, 2.5), "A4": (1.125, 1.13),
              "A5": (0.625, 0.63), "A6": (1.625, 1.63), "A7": (2.0, 2.0), "A8": (2.125, 2.13)}
TIE_TOTAL = (12.125, 12.13)   # the rounded points add up to 12.15


def excel_round(x: float, digits: int = 2) -> float:
    """Excel's ROUND: the value to 15 significant digits, rounded half away from zero."""
    if not np.isfinite(x):
        return x
    return float(Decimal(format(x, ".15g")).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _spread(total: int, n: int, top: int, rng) -> list[int]:
    """n integers in 0..top adding up to *total*, in random order."""
    values = [0] * n
    for _ in range(total):
        values[rng.choice([i for i in range(n) if values[i] < top])] += 1
    return values


def _tie_sheets(builder, agency: str, rng) -> list[dict]:
    q = builder.forms["CC-CT"]
    items = {}
    for item in q.scale_items:
        items.setdefault(item.criterion, []).append(item)
    per_sheet = {c: _spread(s, 8, 4 if c == "A8" else 3, rng) for c, s in TIE_SUMS.items()}
    rows = []
    for sheet in range(8):
        answers = {}
        for crit, its in items.items():
            for item in its:
                if crit == "A8" and item.scale != "HL5":
                    answers[item.code] = "K"
                else:
                    answers[item.code] = str(per_sheet[crit][sheet] + 1)   # option "k + 1" scores k/(K − 1)
        rows.append(builder.row("CC-CT", agency, **answers))
    return rows


def _random_row(builder, form, agency, rng, **extra) -> dict:
    q = builder.forms[form]
    answers = {}
    for item in q.scale_items:
        codes = q.scales[item.scale].codes
        answers[item.code] = str(rng.choice(codes))   # "K" (don't know) included
    return builder.row(form, agency, **answers, **extra)


def _rows(builder) -> list[dict]:
    rng = np.random.default_rng(20231001)
    rows = (_tie_sheets(builder, "SNV", np.random.default_rng(1))
            + _tie_sheets(builder, "STP", np.random.default_rng(2)))
    for agency in ("STC", "SKHDT"):
        rows += [_random_row(builder, "CC-CT", agency, rng) for _ in range(6)]
        rows += [_random_row(builder, "LĐH-CH", agency, rng) for _ in range(2)]
    # division heads rate both departments that supervise their division: one PSU, two agencies
    for p, district in enumerate(("TAMKY", "TAMKY", "HOIAN", "HOIAN", "HOIAN")):
        rows += [_random_row(builder, "LĐ-CP", dep, rng, division="TCKH", district=district,
                             respondent=f"p{p}") for dep in ("STC", "SKHDT")]
    # matrix sheets rating both departments
    for h in range(4):
        rows += [_random_row(builder, "HĐ-CT", dep, rng, respondent=f"h{h}") for dep in ("STC", "SKHDT")]
    return rows


def _stored(session, loaded_round) -> pd.DataFrame:
    """Every stored answer with its response's form, quota cell and respondent (plain SQL, no service)."""
    stmt = (sa.select(Response.id.label("response"), Response.form_code.label("form"),
                      Response.quota_cell_id.label("cell"), Response.respondent_key.label("respondent"),
                      Response.surplus, Agency.code.label("agency"), Agency.kind.label("kind"),
                      Answer.item_code.label("item"), Answer.value, QuotaCell.staff_count.label("population"))
            .join(Answer, Answer.response_id == Response.id).join(Agency, Agency.id == Answer.agency_id)
            .join(QuotaCell, QuotaCell.id == Response.quota_cell_id)
            .where(Response.round_id == loaded_round.id))
    return pd.DataFrame(session.execute(stmt).all())


def _recompute(builder, stored: pd.DataFrame, method: dict, min_breakdown: int):
    """S, points, SEs, totals and ranks from the stored answers, the round's methodology file and its
    smallest group that may be used."""
    # item -> (scale, criterion) and option x of a k-option scale -> linear coefficient (x − 1)/(k − 1)
    meta, coef, rated = {}, {}, {}
    for form, q in builder.forms.items():
        rated[form] = len(q.scale_items)
        for item in q.scale_items:
            meta[(form, item.code)] = (item.scale, item.criterion)
            valid = q.scales[item.scale].valid_codes
            assert method["coefficients"][item.scale] == "linear"
            coef[item.scale] = {c: (int(c) - 1) / (len(valid) - 1) for c in valid}
    a = stored[[(f, i) in meta for f, i in zip(stored["form"], stored["item"])]].copy()
    a["scale"] = [meta[(f, i)][0] for f, i in zip(a["form"], a["item"])]
    a["criterion"] = [meta[(f, i)][1] for f, i in zip(a["form"], a["item"])]
    a["v"] = [coef[s].get(v, np.nan) for s, v in zip(a["scale"], a["value"])]
    # a sheet counts for an agency when at least half of its form's rated items are answered
    share = a.groupby(["response", "agency"])["v"].agg(lambda v: v.notna().sum())
    need = (a.groupby(["response", "agency"])["form"].first().map(rated)
            * method["min_answered_share"])
    assert (share >= need).all()   # every sheet of this test is valid
    # m(r, c): mean over the sheet's valid items of c
    m = (a.groupby(["response", "respondent", "cell", "form", "agency", "kind", "criterion"])["v"].mean()
         .dropna().rename("m").reset_index())
    m["M"] = m.groupby(["form", "agency", "criterion"])["m"].transform("mean")
    m["n"] = m.groupby(["form", "agency", "criterion"])["m"].transform("size")
    m["w"] = [method["group_weights"][k].get(f, 0.0) for k, f in zip(m["kind"], m["form"])]
    respondents = a.groupby(["form", "agency"])["respondent"].nunique()
    m["respondents"] = [respondents[(f, t)] for f, t in zip(m["form"], m["agency"])]
    m["qualifies"] = ((m["n"] >= m["form"].map(method["min_respondents"])) & (m["w"] > 0)
                      & (m["respondents"] >= min_breakdown))
    q = m[m["qualifies"]].copy()
    groups = q.drop_duplicates(["form", "agency", "criterion"])
    wsum = groups.groupby(["agency", "criterion"])["w"].sum()
    S = (groups["w"] * groups["M"]).groupby([groups["agency"], groups["criterion"]]).sum() / wsum
    # the composite's influence: a_g (m − M_g)/n_g, summed per respondent within its quota cell
    q["a"] = q["w"] / [wsum[(t, c)] for t, c in zip(q["agency"], q["criterion"])]
    q["z"] = q["a"] * (q["m"] - q["M"]) / q["n"]
    kind = stored.drop_duplicates("agency").set_index("agency")["kind"]
    q["max"] = [method["max_points"][kind[t]][c] for t, c in zip(q["agency"], q["criterion"])]
    # the design is that of the groups published: a group under min_breakdown leaves it with its respondents
    psus = m.loc[m["respondents"] >= min_breakdown, ["cell", "respondent"]].drop_duplicates()
    assert (psus.groupby("cell").size() >= 2).all()   # no single-respondent cell in this test
    # finite population correction 1 − n_h/N_h where staff_counts.csv gives the cell's staff N_h
    population = stored.drop_duplicates("cell").set_index("cell")["population"].astype(float)
    sampled = psus.groupby("cell").size()
    fpc = (1 - sampled / population.reindex(sampled.index)).fillna(1.0)
    assert (fpc < 1).all()   # every cell of this test has its staff count

    def se(frame, value):
        z = frame.pivot_table(index=["cell", "respondent"], columns="key", values=value, aggfunc="sum")
        z = z.reindex(pd.MultiIndex.from_frame(psus)).fillna(0.0)
        var = sum(fpc[cell] * len(b) / (len(b) - 1) * ((b - b.mean()) ** 2).sum()
                  for cell, b in z.groupby(level="cell"))
        return np.sqrt(var)

    q["key"] = list(zip(q["agency"], q["criterion"]))
    q["zp"] = q["z"] * q["max"]
    points_se = se(q, "zp")
    q["key"] = q["agency"]
    total_se = se(q, "zp")
    points = pd.DataFrame({"score": S})
    points["max"] = [method["max_points"][kind[t]][c] for t, c in points.index]
    points["exact"] = points["max"] * points["score"]
    points["points"] = points["exact"].map(excel_round)
    points["points_se"] = [points_se[k] for k in points.index]
    totals = points.groupby(level="agency")["exact"].sum().to_frame("exact")
    totals = totals[points["score"].notna().groupby(level="agency").all()]
    totals["survey_points"] = totals["exact"].map(excel_round)
    totals["survey_points_se"] = total_se[totals.index]
    totals["kind"] = kind[totals.index]
    totals["rank"] = totals.groupby("kind")["survey_points"].rank(method="min", ascending=False).astype(int)
    return points, totals


@pytest.fixture
def published(builder, session, loaded_round):
    builder.load(_rows(builder))
    stored = _stored(session, loaded_round)
    assert not stored["surplus"].any()   # within the quotas: every sheet is counted
    method = yaml.safe_load((ROUND_DIR / "methodology.yaml").read_text(encoding="utf-8"))
    settings = yaml.safe_load((ROUND_DIR / "round.yaml").read_text(encoding="utf-8"))["settings"]
    min_breakdown = settings["min_breakdown"]
    return results.round_results(session, loaded_round), _recompute(builder, stored, method, min_breakdown)


def test_points_scores_and_their_standard_errors(published):
    res, (points, _) = published
    crit = res.criteria.set_index(["agency", "criterion"]).loc[points.index]
    np.testing.assert_allclose(crit["score"], points["score"], rtol=1e-13)
    assert crit["points"].tolist() == points["points"].tolist()
    np.testing.assert_allclose(crit["points_se"], points["points_se"], rtol=1e-9)
    # agencies without an answer stay empty, never 0
    assert res.criteria.set_index(["agency", "criterion"]).drop(points.index)["points"].isna().all()


def test_totals_are_the_unrounded_points_rounded_once_with_the_composite_se(published):
    res, (points, totals) = published
    summary = res.summary.set_index("agency").loc[totals.index]
    assert summary["survey_points"].tolist() == totals["survey_points"].tolist()
    np.testing.assert_allclose(summary["survey_points_se"], totals["survey_points_se"], rtol=1e-9)
    # the groups of the two rated departments covary through the sheets that rate both
    assert totals.loc["STC", "survey_points_se"] > 0


def test_exact_ties_round_as_excel_does(published):
    res, (points, totals) = published
    crit = res.criteria.set_index(["agency", "criterion"])
    summary = res.summary.set_index("agency")
    for agency in ("SNV", "STP"):
        for c, (exact, rounded) in TIE_POINTS.items():
            assert points.loc[(agency, c), "exact"] == pytest.approx(exact, abs=1e-12)
            assert crit.loc[(agency, c), "points"] == rounded == excel_round(exact)
        assert totals.loc[agency, "exact"] == pytest.approx(TIE_TOTAL[0], abs=1e-12)
        assert summary.loc[agency, "survey_points"] == TIE_TOTAL[1]
        rounded_sum = round(sum(r for _, r in TIE_POINTS.values()), 2)
        assert rounded_sum == 12.15 != summary.loc[agency, "survey_points"]


def test_ranks_within_the_kind_with_ties_sharing_the_best_rank(published):
    res, (_, totals) = published
    summary = res.summary.set_index("agency")
    assert summary.loc[totals.index, "rank"].astype(int).tolist() == totals["rank"].tolist()
    assert summary.loc["SNV", "rank"] == summary.loc["STP", "rank"]   # equal published totals
    assert summary.drop(totals.index)["rank"].isna().all()
    assert sorted(totals["rank"]) != list(range(1, len(totals) + 1))   # a tie really occurs
