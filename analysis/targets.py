"""Targets with three answers: met, not met, or not enough evidence either way.

A province sets targets such as "satisfaction at least 90 %". A point estimate of 91 % from a few dozen
respondents does not show that the agency met it: the same data are compatible with a true 85 %. So the
verdict is read from one-sided 95 % bounds (the two ends of a two-sided 90 % interval):

* ``dat`` (Đạt): the lower bound is at or above the target;
* ``khong_dat`` (Không đạt): the upper bound is below the target;
* ``chua_du_can_cu`` (Chưa đủ căn cứ): the interval straddles the target.

Satisfaction is a share: its bounds are Wilson's at the Kish effective sample ``n_eff = p(1−p)/SE²``
(the design-based SE folds the weighting and clustering in), which keeps them inside [0, 1] and matches the
textbook answer for a simple random sample (42 of 48: 0.776–0.934). Points are bounded by estimate ± z·SE.
The same bound gives the sample a decision needs (:func:`needed_effective_n`), which the next round's
sample-size recommendation uses (:func:`recommended_sample`, per agency from the round it continues:
:func:`next_round_samples`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.change import combine_baseline

__all__ = ["DAT", "KHONG_DAT", "CHUA_DU_CAN_CU", "INDICATORS", "VERDICTS", "TARGET_LEVEL", "assign_targets",
           "effective_n", "needed_effective_n", "next_round_samples", "round_targets", "with_verdicts",
           "point_bounds", "recommended_sample", "target_verdicts", "wilson_bounds"]

DAT, KHONG_DAT, CHUA_DU_CAN_CU = "dat", "khong_dat", "chua_du_can_cu"
VERDICTS = {DAT: "Đạt", KHONG_DAT: "Không đạt", CHUA_DU_CAN_CU: "Chưa đủ căn cứ"}
#: One-sided level of each bound: a verdict is wrong in at most 5 % of agencies whose truth sits at the target.
TARGET_LEVEL = 0.95
#: Beyond this effective sample a decision is called out of reach (the estimate sits on the target).
MAX_NEEDED = 1_000_000


def _z(level: float) -> float:
    return float(stats.norm.ppf(level))


def wilson_bounds(p, n, level: float = TARGET_LEVEL):
    """One-sided Wilson bounds (each at ``level``) of a share ``p`` observed on ``n`` (effective) units."""
    p, n = np.asarray(p, dtype=float), np.asarray(n, dtype=float)
    z2 = _z(level) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = math.sqrt(z2) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    bad = ~(n > 0) | np.isnan(p)
    return np.where(bad, np.nan, centre - half), np.where(bad, np.nan, centre + half)


def effective_n(p, se, n):
    """Kish effective sample of a share: p(1−p)/SE²; the counted ``n`` where the SE is 0 (p̂ at 0 or 1)."""
    p, se, n = (np.asarray(x, dtype=float) for x in (p, se, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(se > 0, p * (1 - p) / (se * se), n)


def point_bounds(estimate, se, level: float = TARGET_LEVEL):
    """One-sided bounds estimate ∓ z·SE of a mean (points)."""
    estimate, se = np.asarray(estimate, dtype=float), np.asarray(se, dtype=float)
    z = _z(level)
    return estimate - z * se, estimate + z * se


def _verdict(lo: float, hi: float, target: float) -> str | None:
    if np.isnan(lo) or np.isnan(hi) or np.isnan(target):
        return None
    if lo >= target:
        return DAT
    if hi < target:
        return KHONG_DAT
    return CHUA_DU_CAN_CU


def needed_effective_n(p: float, target: float, level: float = TARGET_LEVEL) -> int | None:
    """The smallest effective sample at which a share ``p`` would be told apart from ``target`` (its Wilson
    bound on the far side of the target): e.g. a true 95 % against a 90 % target needs 98. None when p is
    the target (no sample decides) or beyond :data:`MAX_NEEDED`."""
    if not (0 <= p <= 1) or p == target or np.isnan(p):
        return None

    def decided(n: int) -> bool:
        lo, hi = wilson_bounds(p, n, level)
        return bool(lo >= target) if p > target else bool(hi < target)

    if not decided(MAX_NEEDED):
        return None
    lo_n, hi_n = 1, MAX_NEEDED  # decided(hi_n); the bound moves monotonically towards p as n grows
    while lo_n < hi_n:
        mid = (lo_n + hi_n) // 2
        if decided(mid):
            hi_n = mid
        else:
            lo_n = mid + 1
    return lo_n


def recommended_sample(n_eff_needed: float | None, design_effect: float | None) -> int | None:
    """Respondents to plan for: the effective sample a decision needs times the design effect (≥ 1)."""
    if n_eff_needed is None or np.isnan(n_eff_needed):
        return None
    deff = 1.0 if design_effect is None or not np.isfinite(design_effect) else max(1.0, float(design_effect))
    return int(math.ceil(n_eff_needed * deff - 1e-9))


def target_verdicts(estimates: pd.DataFrame, level: float = TARGET_LEVEL) -> pd.DataFrame:
    """The three answers for each row of ``estimates``.

    ``estimates``: ``agency, indicator, scale, estimate, se, n, target`` where ``scale`` is ``share`` (estimate,
    SE and target in %) or ``points``. Adds ``lower, upper`` (one-sided bounds, in the estimate's unit),
    ``verdict`` (:data:`VERDICTS` keys, None without an estimate or a target), ``design_effect`` (n / n_eff,
    shares only), ``n_eff_needed`` (the effective sample a decision needs at the current estimate) and
    ``n_needed`` (respondents at the current design effect; for points, n scaled by (z·SE / distance)²).
    """
    out = estimates.copy()
    est = out["estimate"].to_numpy(dtype=float)
    se = out["se"].to_numpy(dtype=float)
    n = out["n"].to_numpy(dtype=float, na_value=np.nan)
    target = out["target"].to_numpy(dtype=float)
    share = (out["scale"] == "share").to_numpy()
    n_eff = effective_n(est / 100, se / 100, n)
    w_lo, w_hi = wilson_bounds(est / 100, n_eff, level)
    p_lo, p_hi = point_bounds(est, se, level)
    lo = np.where(share, 100 * w_lo, p_lo)
    hi = np.where(share, 100 * w_hi, p_hi)
    out["lower"], out["upper"] = lo, hi
    out["verdict"] = pd.Series([_verdict(a, b, t) for a, b, t in zip(lo, hi, target)], index=out.index,
                               dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        deff = np.where(share & (n_eff > 0), n / n_eff, np.nan)
    out["design_effect"] = deff
    needed_eff, needed = [], []
    z = _z(level)
    for i in range(len(out)):
        if np.isnan(est[i]) or np.isnan(target[i]):
            needed_eff.append(None)
            needed.append(None)
        elif share[i]:
            m = needed_effective_n(est[i] / 100, target[i] / 100, level)
            needed_eff.append(m)
            needed.append(recommended_sample(m, deff[i]))
        else:
            gap = abs(est[i] - target[i])
            ok = gap > 0 and se[i] > 0 and n[i] > 0
            m = int(math.ceil(n[i] * (z * se[i] / gap) ** 2 - 1e-9)) if ok else None
            needed_eff.append(None)
            needed.append(m)
    out["n_eff_needed"] = pd.array(needed_eff, dtype="Int64")
    out["n_needed"] = pd.array(needed, dtype="Int64")
    return out


#: The indicators a target may be set on: the summary's column, its SE column and whether it is a share.
INDICATORS = {
    "satisfaction": ("satisfaction", "satisfaction_se", "share"),
    "survey_points": ("survey_points", "survey_points_se", "points"),
}


def assign_targets(agencies: pd.DataFrame, rules, indicators=tuple(INDICATORS)) -> pd.DataFrame:
    """The target of every agency × indicator from a round's rules: ``agency, indicator, target, label``.

    ``agencies``: ``agency, agency_kind``. A rule is ``{indicator, at_least[, kinds][, agencies][, label]}``;
    the most specific one applies (naming the agency, then its kind, then every agency), so "90 %, but 85 % for
    land and construction" is two rules. ``indicators``: those of the round's kind (a citizens' round adds
    its elements, :mod:`analysis.citizens`).
    """
    rows = []
    for a in agencies[["agency", "agency_kind"]].itertuples(index=False):
        for indicator in indicators:
            best, rank = None, -1
            for rule in rules:
                if rule["indicator"] != indicator:
                    continue
                if a.agency in rule.get("agencies", ()):
                    level = 2
                elif rule.get("agencies"):
                    continue
                elif a.agency_kind in rule.get("kinds", ()):
                    level = 1
                elif rule.get("kinds"):
                    continue
                else:
                    level = 0
                if level > rank:
                    best, rank = rule, level
            if best is not None:
                rows.append((a.agency, indicator, float(best["at_least"]), best.get("label", "")))
    return pd.DataFrame(rows, columns=["agency", "indicator", "target", "label"])


def round_targets(summary: pd.DataFrame, rules, level: float = TARGET_LEVEL) -> pd.DataFrame:
    """:func:`target_verdicts` of every agency × indicator with a target, from a round's summary table
    (``agency, agency_kind, satisfaction, satisfaction_se, survey_points, survey_points_se, n``); an agency the summary
    withholds (``withheld``) has no row: nothing at all is published about it."""
    if "withheld" in summary:
        summary = summary[~summary["withheld"].astype(bool)]
    assigned = assign_targets(summary, rules)
    cols = ["agency", "indicator", "target", "label", "scale", "estimate", "se", "n"]
    if assigned.empty:
        return target_verdicts(pd.DataFrame(columns=cols).astype({"estimate": float, "se": float, "n": float,
                                                                  "target": float}), level)
    by_agency = summary.set_index("agency")
    parts = []
    for indicator, (col, se_col, scale) in INDICATORS.items():
        part = assigned[assigned["indicator"] == indicator].copy()
        part["scale"] = scale
        part["estimate"] = part["agency"].map(by_agency[col]).astype(float)
        part["se"] = part["agency"].map(by_agency[se_col]).astype(float)
        part["n"] = part["agency"].map(by_agency["n"].astype("Float64")).astype(float)
        parts.append(part)
    return target_verdicts(pd.concat(parts, ignore_index=True)[cols], level)


def with_verdicts(summary: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """The summary with each indicator's target and verdict beside it (``satisfaction_target``,
    ``satisfaction_verdict``, ``survey_points_target``, ``survey_points_verdict``), from :func:`round_targets`."""
    out = summary.copy()
    for indicator, (col, _, _) in INDICATORS.items():
        part = targets[targets["indicator"] == indicator].set_index("agency")
        out[f"{col}_target"] = out["agency"].map(part["target"]).astype(float)
        out[f"{col}_verdict"] = out["agency"].map(part["verdict"]).astype(object).where(lambda s: s.notna(), None)
    return out


def next_round_samples(before: pd.DataFrame, baselines: dict[str, list[str]], agencies: pd.DataFrame, rules,
                       level: float = TARGET_LEVEL) -> pd.DataFrame:
    """The sample each agency of a new round needs for a decision on its target, judged from the round it continues.

    ``before``: the earlier round's summary (as :func:`round_targets` reads it, with ``withheld``); ``baselines``:
    new agency → the earlier agencies it continues (several for a merger: their respondent-weighted estimate and
    its SE, :func:`analysis.change.combine_baseline`); ``agencies``: the new round's ``agency, agency_kind,
    population`` (NaN when unknown); ``rules``: the new round's targets. An agency continuing a withheld one
    gets nothing: nothing is published about that one.

    One row per agency with a target and a baseline, for the indicator needing the most respondents:
    ``agency, indicator, target, estimate, design_effect`` (observed in the earlier round), ``n_needed`` (None
    when the estimate sits on the target), ``population`` and ``sample`` (n_needed capped by the population:
    at most a census, which decides without sampling error).
    """
    cols = ["agency", "indicator", "target", "estimate", "design_effect", "n_needed", "population", "sample"]
    prev = before.set_index("agency")
    withheld = prev["withheld"].astype(bool) if "withheld" in prev else pd.Series(False, index=prev.index)
    rows = []
    for a in agencies.itertuples(index=False):
        sources = [s for s in baselines.get(a.agency, []) if s in prev.index]
        if not sources or withheld.loc[sources].any():
            continue
        parts = prev.loc[sources]
        n = parts["n"].astype("Float64").astype(float)
        row = {"agency": a.agency, "agency_kind": a.agency_kind, "n": float(n.sum())}
        for col, se_col, scale in INDICATORS.values():
            se = parts[se_col].astype(float)
            if scale == "share":  # everyone (or no one) satisfied: no spread, an SE of 0 (:func:`effective_n`)
                se = se.where(se.notna() | ~parts[col].isin([0, 100]), 0.0)
            row[col], row[se_col] = combine_baseline(parts[col], se, n)
        rows.append(row)
    summary = pd.DataFrame(rows, columns=["agency", "agency_kind", "n", *[c for v in INDICATORS.values()
                                                                          for c in v[:2]]])
    found = round_targets(summary, rules, level)
    found = found[found["estimate"].notna()]
    if found.empty:
        return pd.DataFrame(columns=cols)
    # the indicator needing the most respondents decides the agency's sample; one out of reach outranks all
    found = found.assign(order=found["n_needed"].astype("Float64").fillna(np.inf).astype(float))
    found = found.sort_values(["agency", "order"], ascending=[True, False]).drop_duplicates("agency")
    population = agencies.set_index("agency")["population"].astype(float)
    found["population"] = found["agency"].map(population)
    needed = found["n_needed"].astype("Float64").astype(float)
    found["sample"] = pd.array(np.fmin(needed, found["population"]).where(needed.notna()), dtype="Int64")
    return found[cols].reset_index(drop=True)
