"""Change since an earlier round, agency by agency, tested rather than read off overlapping intervals.

Two rounds are independent samples, so the variance of a difference is the sum of the two variances:
Δ = θ₂ − θ₁, SE(Δ) = √(SE₁² + SE₂²), a 95 % interval Δ ± z·SE(Δ) and a two-sided p-value. Where the same
people answer both rounds (an agency's own civil servants), their answers correlate positively and the true
variance is V₁ + V₂ − 2·Cov, smaller: the independent SE is then conservative (too wide), never too narrow.

Two intervals that overlap can still hide a clear difference (Schenker & Gentleman 2001): a difference is
judged by its own interval only. With many agencies some differences look large by chance, so the p-values
of one indicator across agencies are adjusted by Benjamini–Hochberg (false discovery rate 5 %, as NAEP does
for its comparisons) before a change is called.

An agency made of several earlier ones (a merger) is compared with their combination: the baseline is the
respondent-weighted mean θ₁ = Σ wᵢ θ₁ᵢ with wᵢ = nᵢ / Σ n, and its variance Σ wᵢ² SE₁ᵢ² (the earlier agencies'
estimates taken as independent and the weights as fixed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["DECLINED", "FDR", "IMPROVED", "NO_CHANGE", "CHANGE_LABELS", "bh_adjust", "combine_baseline",
           "compare", "rank_moved", "round_change", "share_change"]

IMPROVED, DECLINED, NO_CHANGE = "tang", "giam", "khong_ro"
CHANGE_LABELS = {IMPROVED: "Tăng có ý nghĩa", DECLINED: "Giảm có ý nghĩa", NO_CHANGE: "Không thay đổi rõ"}
#: False discovery rate of the Benjamini–Hochberg step across the agencies of one indicator.
FDR = 0.05
CONFIDENCE = 0.95


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (R's ``p.adjust(p, "BH")``); NaN entries stay NaN and are not
    counted in the family."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def combine_baseline(estimates, ses, ns) -> tuple[float, float]:
    """The baseline of an agency that continues several earlier ones: respondent-weighted mean and its SE.

    NaN when any part has no estimate (a baseline missing a predecessor is not the same agency); the SE alone
    is NaN when a part publishes none (every answer, or none, positive), so no change is judged on it."""
    est, se, n = (np.asarray(x, dtype=float) for x in (estimates, ses, ns))
    if len(est) == 0 or np.isnan(est).any() or np.isnan(n).any() or n.sum() <= 0:
        return np.nan, np.nan
    w = n / n.sum()
    return float(w @ est), float(np.sqrt(np.sum(w * w * se * se)))


def compare(pairs: pd.DataFrame, confidence: float = CONFIDENCE, fdr: float = FDR) -> pd.DataFrame:
    """Difference, SE, interval, p-value, BH-adjusted p-value and verdict for each agency × indicator.

    ``pairs``: ``agency, indicator, before, before_se, after, after_se``. The Benjamini–Hochberg family is
    every agency of one indicator with both estimates. ``change`` is one of :data:`CHANGE_LABELS`, None
    when either round has no estimate or SE.
    """
    out = pairs.copy()
    before, after = out["before"].to_numpy(dtype=float), out["after"].to_numpy(dtype=float)
    se = np.sqrt(out["before_se"].to_numpy(dtype=float) ** 2 + out["after_se"].to_numpy(dtype=float) ** 2)
    diff = after - before
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(se > 0, 2 * stats.norm.sf(np.abs(diff) / se), np.nan)
    out["diff"], out["diff_se"] = diff, se
    out["diff_ci_lo"], out["diff_ci_hi"] = diff - z * se, diff + z * se
    out["p_value"] = p
    out["p_adjusted"] = np.nan
    for _, idx in out.groupby("indicator", sort=False).groups.items():
        pos = out.index.get_indexer(idx)
        out.iloc[pos, out.columns.get_loc("p_adjusted")] = bh_adjust(p[pos])
    adj = out["p_adjusted"].to_numpy(dtype=float)
    out["change"] = pd.Series([None if np.isnan(a) else (IMPROVED if d > 0 else DECLINED) if a < fdr else NO_CHANGE
                               for a, d in zip(adj, diff)], index=out.index, dtype=object)
    return out


def rank_moved(before_interval, after_interval) -> bool | None:
    """Whether a rank moved beyond what its uncertainty allows: only when the two rank intervals do not
    meet. A rank that moved within its interval did not move. None when either interval is unknown."""
    (b_lo, b_hi), (a_lo, a_hi) = before_interval, after_interval
    if any(pd.isna(x) for x in (b_lo, b_hi, a_lo, a_hi)):
        return None
    return bool(a_hi < b_lo or a_lo > b_hi)


#: Indicators compared: the summary's estimate and SE columns.
INDICATORS = {"satisfaction": ("satisfaction", "satisfaction_se"),
              "survey_points": ("survey_points", "survey_points_se")}


def round_change(before: pd.DataFrame, after: pd.DataFrame, baselines: dict[str, list[str]],
                 confidence: float = CONFIDENCE, fdr: float = FDR) -> pd.DataFrame:
    """Change of every agency of the later round whose baseline is known, per indicator (:func:`compare`).

    ``before``/``after``: round summaries (``agency, satisfaction, satisfaction_se, survey_points,
    survey_points_se, max_points, n, rank, rank_lo, rank_hi``); ``baselines``: later agency → the earlier
    agencies it continues (several for a merger: :func:`combine_baseline`). Points are compared only between
    agencies of the same maximum; a rank only for an agency that continues exactly one (``rank_moved``,
    :func:`rank_moved`).
    """
    prev = before.set_index("agency")
    now = after.set_index("agency")
    rows = []
    for agency, sources in baselines.items():
        sources = [s for s in sources if s in prev.index]
        if agency not in now.index or not sources:
            continue
        cur = now.loc[agency]
        for indicator, (col, se_col) in INDICATORS.items():
            parts = prev.loc[sources]
            same_scale = indicator != "survey_points" or (parts["max_points"] == cur["max_points"]).all()
            b, b_se = combine_baseline(parts[col], parts[se_col], parts["n"].astype("Float64").astype(float))
            rows.append({"agency": agency, "indicator": indicator, "baseline": " + ".join(sources),
                         "before": b if same_scale else np.nan, "before_se": b_se if same_scale else np.nan,
                         "after": float(cur[col]), "after_se": float(cur[se_col])})
        if len(sources) == 1:
            p = prev.loc[sources[0]]
            rows[-1].update(rank_before=p["rank"], rank_before_lo=p["rank_lo"], rank_before_hi=p["rank_hi"])
    cols = ["agency", "indicator", "baseline", "before", "before_se", "after", "after_se"]
    pairs = pd.DataFrame(rows).reindex(columns=[*cols, "rank_before", "rank_before_lo", "rank_before_hi"])
    out = compare(pairs, confidence, fdr)
    for c in ("rank", "rank_lo", "rank_hi"):
        out[f"{c.replace('rank', 'rank_after')}"] = out["agency"].map(now[c]).where(
            out["indicator"] == "survey_points")
    out["rank_moved"] = pd.Series([rank_moved((r.rank_before_lo, r.rank_before_hi),
                                              (r.rank_after_lo, r.rank_after_hi)) for r in out.itertuples()],
                                  index=out.index, dtype=object)
    return out


def share_change(before: pd.DataFrame, after: pd.DataFrame, baselines: dict[str, list[str]],
                 confidence: float = CONFIDENCE, fdr: float = FDR) -> pd.DataFrame:
    """Change of every agency's shares (a citizens' round: each element and overall) whose baseline is known,
    per measure (:func:`compare`; the measure is the ``indicator``, so each is its own BH family).

    ``before``/``after``: agency rows of the shares (``domain`` the agency, ``measure, est, se, n``; a withheld
    share has no ``est``); ``baselines`` as for :func:`round_change`, a merger's baseline weighted by valid
    answers."""
    prev = before.set_index(["domain", "measure"])
    rows = []
    for r in after.itertuples():
        sources = [s for s in baselines.get(r.domain, []) if (s, r.measure) in prev.index]
        if not sources:
            continue
        parts = prev.loc[[(s, r.measure) for s in sources]]
        b, b_se = combine_baseline(parts["est"], parts["se"], parts["n"])
        rows.append({"agency": r.domain, "indicator": r.measure, "baseline": " + ".join(sources), "before": b,
                     "before_se": b_se, "after": float(r.est), "after_se": float(r.se)})
    return compare(pd.DataFrame(rows, columns=["agency", "indicator", "baseline", "before", "before_se", "after",
                                               "after_se"]), confidence, fdr)
