"""Survey scoring for the PAR index: answers → item values → criterion points per agency.

Implements the scoring rule of the methodology (§5.5) with every number taken from the round's
settings. Notation: t = target agency, c = criterion (PAR area, e.g. ``"A1"``), g = respondent group
(= form code), r = one response about one target, i = item.

    v(r,i)   = coef[scale(i)][option]                    (missing if the option is excluded, e.g. "K")
    m(r,c)   = mean of the valid v(r,i) over items of c   (r skipped for c if it has none)
    M(g,t,c) = mean_r m(r,c),   n(g,t,c) = #responses
    S(t,c)   = Σ_g w(g)·M(g,t,c) / Σ_g w(g) over configured groups g with n(g,t,c) >= n_min(g)
               and N(g,t) >= min_group   (N(g,t) = respondents of group g about t)
    Points   = round(MaxPts(c, kind(t)) · S(t,c), 2)      (NaN + flag if no group qualifies)
    Total(t) = round(Σ_c MaxPts(c, kind(t)) · S(t,c), 2)  (the unrounded points, rounded once)

Small groups (``min_group``, the round's smallest group that may be shown): a group of fewer respondents
about an agency than ``min_group`` enters none of the agency's figures (points, satisfaction, positive
rates, their variances, answer weights, response counts), whatever the other groups: combined with larger
groups, their own published figures would give its value back. Such a group is left out like a missing
one (the other groups' weights renormalised, flag ``thieu_du_lieu``); a value that only groups under
``min_group`` could give is NaN with flag ``khong_cong_bo`` (withheld), never estimated from them.

``round`` is half away from zero on the decimal value, as Excel's ROUND (:mod:`analysis.rounding`).

The settings are checked in :mod:`analysis.settings` (which also holds the qualifying-group rule),
the answers turned into integer codes and per-unit sums in :mod:`analysis.encoding`, and the
variances computed in :mod:`analysis.variance`; this module combines them into the estimates.

Input frames
------------
``answers`` — one row per answer (long format):

==================  =====================================================================
``response_id``     response identifier (any hashable); the PSU for standard errors
``agency``          code of the target agency the answer is about
``agency_kind``     kind of the target: a key of ``settings["max_points"]`` (e.g. "department",
                    "district", "vertical"); constant per agency
``group``           respondent group = form code (e.g. "CC-CT", "HĐ-CT"); constant per
                    (response_id, agency)
``item``            item code (e.g. "I01", "E18"); must be in ``items``
``option``          chosen option code as a string ("1".."5", "K"); missing/"" = blank
``stratum``         optional: the sampling cell of the response (its quota cell: form × agency,
                    form × district for LĐ-CP, the form for HĐ-CT); constant per response_id
                    and nested in ``group``. Without it the group is the stratum.
``population``      optional: the number of people of the response's sampling cell (e.g. the
                    staff of the form × agency); NaN where unknown. A cell with a known
                    population N_h ≥ n_h (its respondents) gets the finite population
                    correction 1 − n_h/N_h; one without gets none (its variance is that of a
                    sample with replacement, larger than the truth).
==================  =====================================================================

A response that rates several targets (the HĐ-CT matrix, LĐ-CP rating two sở) has rows for each target;
the scoring unit is the pair (``response_id``, ``agency``).

Any row order and plain (object or string) columns give the same result. For speed on tens of
millions of answers, as the service and the benchmark provide them: ``agency``, ``agency_kind``,
``group``, ``item`` and ``option`` as categoricals (their codes are used directly, no hashing of
strings), ``response_id`` as plain integers or a categorical, and the rows of one response × target
consecutive (units are then found from runs of rows, hashing one id per run instead of one per
answer). Units are listed in order of first appearance.

``items`` — DataFrame with columns ``item, scale, criterion`` (or a mapping item → (scale, criterion)).

``scales`` — mapping scale code → sequence of its valid option codes ordered worst to best, e.g.
``{"DG4": ["1", "2", "3", "4"], "HL5": ["1", "2", "3", "4", "5"], "CK": ["0", "1"]}``. Options listed
in ``settings["excluded_options"]`` (default ``["K"]``) and blanks are valid but carry no value.

``settings`` — plain dict, with the keys a round's ``methodology.yaml`` uses (the service passes that
file as it is; :data:`analysis.SETTINGS_KEYS` and :data:`analysis.OPTIONAL_SETTINGS_KEYS`)::

    {"coefficients": {"DG4": "linear", ...},   # preset name, or {option: coefficient or None}
     "max_points": {"department": {"A1": 4, ...}, "district": {...}, "vertical": {...}},
     "group_weights": {"department": {"CC-CT": .30, ...}, ...},
     "min_respondents": {"CC-CT": 3, ..., "HĐ-CT": 1},
     "satisfaction_scale": "HL5",
     "positive": {"DG4": ["3", "4"], "HL5": ["4", "5"], "TS4": ["3", "4"], "CK": ["1"]},
     # optional:
     "excluded_options": ["K"],
     "positive_rate_scales": ["DG4", "TS4", "CK"],   # default: positive scales but satisfaction
     "level": 0.95,
     "max_half_width": 0.10,                      # reliability flag, see analysis.reliability
     "lonely_psu": "adjust",                      # a sampling cell with one response (R survey.lonely.psu)
     "min_answered_share": 0.5,                   # the validity rule, see analysis.answered_enough
     "min_group": 5}                              # smallest group that may enter a figure (default 1)

Groups answering about an agency kind for which they have no weight do not enter its points.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from analysis._checks import require_columns, require_frame
from analysis.encoding import (
    ANSWER_COLUMNS,
    _answer_cells,
    _cell_counts,
    _codes,
    _criterion_index,
    _mean_of,
    _unit_strata,
    _unit_tables,
    _units,
    _Units,
)
from analysis.reliability import precision_reasons
from analysis.rounding import round_half_away
from analysis.settings import DEFAULT_MIN_GROUP, _Config, _items_table, group_shares, validate_settings
from analysis.variance import _composite_design, _satisfaction_inputs, _score_estimates

__all__ = [
    "FLAG_LOW_RELIABILITY",
    "FLAG_MISSING_GROUP",
    "FLAG_NO_DATA",
    "FLAG_WITHHELD",
    "ScoreResult",
    "combine_groups",
    "criterion_points",
    "group_means",
    "respondent_scores",
    "score_round",
]

#: a configured group is missing or below n_min: the weights were renormalised over the others
FLAG_MISSING_GROUP = "thieu_du_lieu"
#: no configured group qualifies: the value is NaN (never 0)
FLAG_NO_DATA = "khong_du_lieu"
#: the confidence interval is too wide, or there is no variance (see :func:`analysis.imprecise`)
FLAG_LOW_RELIABILITY = "tin_cay_thap"
#: only groups under ``min_group`` respondents could give the value: NaN, withheld (never 0)
FLAG_WITHHELD = "khong_cong_bo"
#: decimals of published points; rounded half away from zero on the decimal value (Excel ROUND)
POINTS_DECIMALS = 2


def _score_frame(units: _Units, score: np.ndarray, crit_names: Sequence) -> pd.DataFrame:
    """Respondent score frame from the scores per criterion × unit."""
    frame = pd.DataFrame({
        "response_id": units.resp_cats.take(units.resp_u),
        "agency": units.ag_cats.take(units.ag_u),
        "agency_kind": units.kind_cats.take(units.kind_a[units.ag_u]),
        "group": units.grp_cats.take(units.grp_u),
    })
    for j, c in enumerate(crit_names):
        frame[c] = score[j]
    return frame


def respondent_scores(answers: pd.DataFrame, values: pd.Series, item_criterion: Mapping[str, str],
                      criteria: Sequence[str] | None = None) -> pd.DataFrame:
    """Score m(r, c) of every response × target on every criterion.

    Parameters
    ----------
    answers : DataFrame
        The ``ANSWER_COLUMNS`` frame (``option`` not used).
    values : Series
        Item values aligned to *answers* (from :func:`item_values`).
    item_criterion : dict
        Item code → criterion code.
    criteria : sequence, optional
        Criterion columns to output (default: all criteria of the items, sorted).

    Returns
    -------
    DataFrame
        One row per (response_id, agency): ``response_id, agency, agency_kind, group`` and one float
        column per criterion (NaN when the response has no valid item of the criterion).

    Notes
    -----
    m(r, c) = mean of the valid item values of criterion c on response r.
    """
    require_frame(answers, "answers")
    require_columns(answers, ANSWER_COLUMNS, "answers")
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (len(answers),):
        raise ValueError("values must be aligned to answers")
    item_code, item_cats = _codes(answers["item"])
    crit_names, crit_of_item = _criterion_index(item_cats, item_criterion, criteria)
    units = _units(answers)
    row_crit = crit_of_item[item_code]
    ok = (row_crit >= 0) & ~np.isnan(v)
    # bin 0 collects the rows without a valid value or criterion; bin j + 1 is criterion j
    n_bins = len(crit_names) + 1
    sums = units.bin_sums(np.where(ok, row_crit + 1, 0).astype(np.intp), n_bins, np.where(ok, v, 0.0))[1:]
    cnt = units.bin_sums(np.where(ok, row_crit + 1, 0).astype(np.intp), n_bins)[1:]
    return _score_frame(units, _mean_of(sums, cnt), crit_names)


def group_means(scores: pd.DataFrame, criteria: Sequence[str]) -> pd.DataFrame:
    """M(g, t, c) and n(g, t, c) from respondent scores.

    Returns
    -------
    DataFrame
        Columns ``agency, agency_kind, group, criterion, mean, n`` for every observed
        (agency, group) and criterion; ``mean`` is NaN when n = 0.
    """
    keys = ["agency", "agency_kind", "group"]
    codes = [pd.factorize(scores[k], sort=True)[0].astype(np.int64) for k in keys]
    labelled = np.logical_and.reduce([c >= 0 for c in codes])
    if not labelled.all():  # rows without a label belong to no group
        scores, codes = scores[labelled], [c[labelled] for c in codes]
    return _group_means(scores, criteria, _sorted_key(codes, [c.max(initial=-1) + 1 for c in codes]))


def _sorted_key(codes: Sequence[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    """One integer per row that sorts like the rows' (agency, agency_kind, group) labels, from each
    label's rank among its column's sorted labels."""
    key = np.zeros(codes[0].size, dtype=np.int64)
    for c, size in zip(codes, sizes):
        key = key * np.int64(size) + c
    return key


def _group_means(scores: pd.DataFrame, criteria: Sequence[str], key: np.ndarray) -> pd.DataFrame:
    """:func:`group_means` grouped on *key* (:func:`_sorted_key`): the same sums in the same row order
    as grouping on the three label columns, without hashing a million strings three times."""
    labels = ["agency", "agency_kind", "group"]
    g = scores[list(criteria)].groupby(key, sort=True)
    _, first = np.unique(key, return_index=True)
    index = pd.MultiIndex.from_frame(scores[labels].iloc[first].reset_index(drop=True))
    means = g.mean().set_axis(index).melt(ignore_index=False, var_name="criterion", value_name="mean")
    counts = g.count().set_axis(index).melt(ignore_index=False, var_name="criterion", value_name="n")
    out = means.reset_index()
    out["n"] = counts["n"].to_numpy().astype(np.int64)
    return out.sort_values(["agency", "criterion", "group"], kind="stable").reset_index(drop=True)


def combine_groups(table: pd.DataFrame, value: str, *, group_weights: Mapping[str, Mapping[str, float]],
                   min_respondents: Mapping[str, int], keys: Sequence[str], n_col: str = "n",
                   min_group: int = DEFAULT_MIN_GROUP, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Weighted combination Σ_g w(g)·x(g) / Σ_g w(g) over the configured groups that qualify.

    Parameters
    ----------
    table : DataFrame
        One row per (``agency``, ``agency_kind``, *keys*..., ``group``) with columns *value* and *n_col*.
    value : str
        Column to combine.
    group_weights : dict
        Agency kind → {group: weight}. Groups without a weight for the kind are ignored.
    min_respondents : dict
        Group → n_min; a group qualifies when n >= n_min.
    keys : sequence of str
        Further key columns (e.g. ``["criterion"]``), besides ``agency`` and ``agency_kind``.
    min_group, groups : int, DataFrame
        The small-group rule of :func:`analysis.group_shares`: a group of fewer than *min_group*
        respondents about the agency (*groups*: ``agency, group, respondents``) does not qualify.

    Returns
    -------
    DataFrame
        ``agency, agency_kind, *keys, value, n_groups, weight_used, flag, missing_groups``; *value*
        is NaN with flag ``khong_du_lieu`` when no group qualifies, ``khong_cong_bo`` when only groups
        under *min_group* would, flag ``thieu_du_lieu`` when some configured group with positive weight
        does not qualify (weights renormalised), else "".
    """
    idx = ["agency", "agency_kind", *keys]
    frame = table[[*idx, "group", value, n_col]]
    # expand to every configured group of the agency's kind (missing groups have n = 0)
    conf = pd.DataFrame([(k, g, w) for k, gw in group_weights.items() for g, w in gw.items()],
                        columns=["agency_kind", "group", "_w"])
    base = frame[idx].drop_duplicates()
    full = base.merge(conf, on="agency_kind", how="inner")
    full = full.merge(frame, on=[*idx, "group"], how="left")
    full[n_col] = full[n_col].fillna(0)
    full["_wq"] = group_shares(full, value, group_weights=group_weights, min_respondents=min_respondents,
                               n_col=n_col, min_group=min_group, groups=groups)
    # what the groups would give without the small-group rule: tells a withheld value from a missing one
    full["_wa"] = full["_wq"] if min_group <= DEFAULT_MIN_GROUP else group_shares(
        full, value, group_weights=group_weights, min_respondents=min_respondents, n_col=n_col)
    full["_q"] = full["_wq"] > 0
    full["_wx"] = np.where(full["_q"], full["_w"] * full[value].fillna(0.0), 0.0)
    full["_miss"] = np.where(~full["_q"] & (full["_w"] > 0), full["group"].astype(str), "")
    agg = full.groupby(idx, sort=True, observed=True, dropna=False).agg(
        _wq=("_wq", "sum"), _wa=("_wa", "sum"), _wx=("_wx", "sum"), n_groups=("_q", "sum"),
        missing_groups=("_miss", lambda s: ",".join(sorted(x for x in s if isinstance(x, str) and x))))
    out = agg.reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out[value] = np.where(out["_wq"] > 0, out["_wx"] / out["_wq"].where(out["_wq"] > 0, 1.0), np.nan)
    out["weight_used"] = out["_wq"]
    out["n_groups"] = out["n_groups"].astype(np.int64)
    out["flag"] = np.where(out["_wq"] <= 0, np.where(out["_wa"] > 0, FLAG_WITHHELD, FLAG_NO_DATA),
                           np.where(out["missing_groups"] != "", FLAG_MISSING_GROUP, ""))
    return out[[*idx, value, "n_groups", "weight_used", "flag", "missing_groups"]]


def criterion_points(means: pd.DataFrame, cfg: _Config, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """S(t, c) and Points(t, c) for every agency and every criterion of its kind's max points (*groups*:
    the respondents of each group about each agency, needed when ``cfg.min_group`` is above 1)."""
    agencies = means[["agency", "agency_kind"]].drop_duplicates()
    grid = pd.DataFrame([(k, c, p) for k, pts in cfg.max_points.items() for c, p in pts.items()],
                        columns=["agency_kind", "criterion", "max_points"])
    full = agencies.merge(grid, on="agency_kind")
    gm = full[["agency", "agency_kind", "criterion"]].merge(
        means, on=["agency", "agency_kind", "criterion"], how="left")
    gm["group"] = gm["group"].fillna("")
    gm["n"] = gm["n"].fillna(0)
    comb = combine_groups(gm, "mean", group_weights=cfg.group_weights, min_respondents=cfg.min_respondents,
                          keys=["criterion"], min_group=cfg.min_group, groups=groups)
    out = full.merge(comb.rename(columns={"mean": "score"}), on=["agency", "agency_kind", "criterion"],
                     how="left")
    out["flag"] = out["flag"].fillna(FLAG_NO_DATA)
    out["points_exact"] = out["max_points"] * out["score"]
    out["points"] = round_half_away(out["points_exact"], POINTS_DECIMALS)
    return out.sort_values(["agency", "criterion"]).reset_index(drop=True)


@dataclass(frozen=True)
class ScoreResult:
    """Everything :func:`score_round` computes, as plain frames.

    Attributes
    ----------
    respondent_scores : one row per (response_id, agency), one column per criterion (m(r, c)).
    group_means : ``agency, agency_kind, group, criterion, mean, n``.
    points : ``agency, agency_kind, criterion, max_points, score, n_groups, weight_used, flag,
        missing_groups, reliability, points_exact, points`` (``points_exact`` = max_points · score, unrounded;
        ``reliability`` the precision reasons of :func:`analysis.precision_reasons`, "" for none).
    totals : ``agency, agency_kind, survey_points, points_available, max_points, n_criteria_missing,
        flag, satisfaction, tltc, survey_points_se, survey_points_ci_lo, survey_points_ci_hi, survey_points_df,
        reliability`` (the precision reasons) and ``groups`` (the groups whose share enters the points, "+"-joined).
    satisfaction : TLHL (%) per agency: ``agency, agency_kind, satisfaction, n_groups, weight_used, flag,
        missing_groups``, its ``satisfaction_se`` (NaN when every answer agrees), ``satisfaction_ci_lo``,
        ``satisfaction_ci_hi``, ``satisfaction_df``, ``satisfaction_n``, ``satisfaction_n_eff``, ``satisfaction_deff``
        and ``reliability``.
    satisfaction_groups : per agency × group: ``n`` (responses), ``n_answers``, ``n_positive``, ``p``,
        Wilson ``ci_lo``/``ci_hi``.
    positive_rates : TLTC (%) per agency × criterion and overall (criterion ``"ALL"``).
    estimates : per agency × criterion, the weighted score with design-based ``se``, ``ci_lo``,
        ``ci_hi``, ``n``, ``n_eff``, ``df`` and the same for points (``points_se`` ...).
    total_covariance : covariance matrix of the agencies' survey points (for :func:`rank_intervals`).
    flags : ``agency, indicator, criterion, flag, missing_groups`` for every flagged value.
    groups : per agency × group with answers: ``respondents`` (units) and ``small`` (fewer than the
        settings' ``min_group``: the group enters no figure).
    cells : per sampling cell (stratum) of the design: ``stratum, group, respondents, population, fraction``
        (the finite population correction is 1 − fraction; fraction 0 where the population is unknown).
    """

    respondent_scores: pd.DataFrame
    group_means: pd.DataFrame
    points: pd.DataFrame
    totals: pd.DataFrame
    satisfaction: pd.DataFrame
    satisfaction_groups: pd.DataFrame
    positive_rates: pd.DataFrame
    estimates: pd.DataFrame
    total_covariance: pd.DataFrame
    flags: pd.DataFrame
    groups: pd.DataFrame
    cells: pd.DataFrame = None


def _rate_groups(units: _Units, cell_counts: np.ndarray) -> pd.DataFrame:
    """Counts per (agency, group, key): responses with a valid answer, valid answers, positive answers.

    Parameters
    ----------
    units : _Units
    cell_counts : ndarray, shape (3, n_key, n_cells)
        Valid answers, positive answers and responses with a valid answer per key (criterion, or a
        single row) and agency × group cell (:func:`analysis.encoding._cell_counts`).

    Returns
    -------
    DataFrame
        ``agency, agency_kind, _key, group, n, n_answers, n_positive`` for the cells with answers.
    """
    n_key = cell_counts.shape[1]
    n_gr = len(units.grp_cats)
    # flattened as (cell, key)
    n_ans, n_pos, n_resp = (x.T.ravel() for x in cell_counts)
    nz = np.flatnonzero(n_ans)
    key = nz % n_key
    gr = (nz // n_key) % n_gr
    ag = nz // (n_key * n_gr)
    return pd.DataFrame({"agency": units.ag_cats.take(ag),
                         "agency_kind": units.kind_cats.take(units.kind_a[ag]),
                         "_key": key, "group": units.grp_cats.take(gr), "n": n_resp[nz].round().astype(np.int64),
                         "n_answers": n_ans[nz].round().astype(np.int64),
                         "n_positive": n_pos[nz].round().astype(np.int64)})


def score_round(answers: pd.DataFrame, *, items: pd.DataFrame | Mapping, scales: Mapping[str, Sequence[str]],
                settings: Mapping[str, Any]) -> ScoreResult:
    """Score one survey round: points, satisfaction and positive rates per agency, with uncertainty.

    Parameters
    ----------
    answers : DataFrame
        Long answers frame with ``ANSWER_COLUMNS`` (see the module docstring).
    items : DataFrame or dict
        Item → scale and criterion (``item, scale, criterion`` columns).
    scales : dict
        Scale → valid option codes ordered worst to best.
    settings : dict
        The round's settings (see the module docstring).

    Returns
    -------
    ScoreResult

    Notes
    -----
    Points follow §5.5 of the methodology (see the module docstring). TLHL(t) =
    100 · Σ_g w(g) p(g,t) / Σ_g w(g) with p the share of positive answers of the satisfaction scale
    among valid ones, over groups with at least n_min responses; TLTC the same over the positive-rate
    scales, per criterion and overall. Group-level Wilson intervals use unweighted counts. A group of
    fewer than ``min_group`` respondents about an agency counts for none of these (see the module
    docstring); ``groups`` of the result lists every group's respondents.

    Standard errors (:mod:`analysis.variance`): S(t, c) is the fixed-share composite of the qualifying
    groups' means, linearised with each response centred at its own group's mean; strata are the sampling
    cells (``stratum``), PSUs the respondents. The survey-points total Σ_c MaxPts_c · S(t, c) is linear
    in those means; its variance and the covariance between agencies (non-zero when a response rates
    several agencies) use the summed PSU influence values.
    """
    require_frame(answers, "answers")
    require_columns(answers, ANSWER_COLUMNS, "answers")
    cfg = validate_settings(settings, items=items, scales=scales)
    table = _items_table(items)
    item_scale = dict(zip(table["item"], table["scale"]))
    item_crit = dict(zip(table["item"], table["criterion"]))
    kinds = set(_codes(answers["agency_kind"])[1])
    unknown = kinds - set(cfg.max_points)
    if unknown:
        raise ValueError(f"answers has agency kind(s) {sorted(map(str, unknown))} not in settings['max_points']")

    cells = _answer_cells(answers, cfg.coefficients, item_scale)
    units = _units(answers)
    criteria = sorted(set(table["criterion"]))
    _, crit_of_item = _criterion_index(cells.item_cats, item_crit, criteria)
    n_crit = len(criteria)
    score, sat_ans, sat_pos, rate_cells = _unit_tables(cells, units, crit_of_item, n_crit, cfg)
    del cells
    scores = _score_frame(units, score, criteria)
    del score
    scores["stratum"], stratum_rank = _unit_strata(answers, units)
    # the units' (agency, kind, group) as one integer that sorts like the labels
    ranks = [pd.factorize(cats, sort=True)[0].astype(np.int64) for cats in (units.ag_cats, units.kind_cats,
                                                                             units.grp_cats)]
    means = _group_means(scores, criteria, _sorted_key(
        [ranks[0][units.ag_u], ranks[1][units.kind_a[units.ag_u]], ranks[2][units.grp_u]],
        [len(r) for r in ranks]))
    groups, hidden = _group_sizes(units, cfg.min_group)
    points = criterion_points(means, cfg, groups)

    # satisfaction (TLHL) and positive rates (TLTC)
    sat_groups = _rate_groups(units, _cell_counts(units.unit_cells(), units.n_cells, sat_ans, sat_pos)
                              ).drop(columns="_key")
    sat_groups["p"] = sat_groups["n_positive"] / sat_groups["n_answers"]
    lo, hi = proportion_confint(sat_groups["n_positive"].to_numpy(), sat_groups["n_answers"].to_numpy(),
                                alpha=1 - cfg.level, method="wilson")
    sat_groups["ci_lo"], sat_groups["ci_hi"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    ag_first = pd.unique(units.ag_u)  # agencies in order of first appearance, as scores lists them
    agencies = pd.DataFrame({"agency": units.ag_cats.take(ag_first),
                             "agency_kind": units.kind_cats.take(units.kind_a[ag_first])})
    satisfaction = _combine_rates(agencies, sat_groups, [], cfg, "satisfaction", groups)
    population = _unit_population(answers, units)
    cd = _composite_design(units, stratum_rank, hidden, population)
    cells = _sampling_cells(scores["stratum"].to_numpy(), units, hidden, population, cd)
    sat_y, sat_w = _satisfaction_inputs(units, sat_groups, sat_ans, sat_pos, cfg, groups)
    estimates, total_est, total_cov, sat_est = _score_estimates(scores, means, points, criteria, cfg, units, cd,
                                                                sat_y, sat_w, groups)
    satisfaction = satisfaction.merge(sat_est, on="agency", how="left")
    prec = cfg.precision
    rules = {"min_n": prec["min_n"], "min_n_eff": prec["min_n_eff"], "min_df": prec["min_df"]}
    satisfaction["reliability"] = precision_reasons(
        satisfaction["satisfaction"], satisfaction["satisfaction_se"], satisfaction["satisfaction_ci_lo"],
        satisfaction["satisfaction_ci_hi"], 100.0,
        n=satisfaction["satisfaction_n"], n_eff=satisfaction["satisfaction_n_eff"], df=satisfaction["satisfaction_df"],
        lonely=satisfaction.pop("_lonely").fillna(False).to_numpy(dtype=bool),
        max_half_width=prec["max_half_width_pct"], **rules)
    satisfaction = _add_flag(satisfaction, satisfaction["reliability"] != "", FLAG_LOW_RELIABILITY)

    rate_groups = _rate_groups(units, rate_cells[:, :-1])
    rate_groups["criterion"] = np.asarray(criteria, dtype=object)[rate_groups.pop("_key").to_numpy()] \
        if len(rate_groups) else pd.Series(dtype=object)
    all_groups = _rate_groups(units, rate_cells[:, -1:]).drop(columns="_key")
    all_groups["criterion"] = "ALL"
    rg = pd.concat([rate_groups, all_groups], ignore_index=True)
    rg["p"] = rg["n_positive"] / rg["n_answers"]
    positive_rates = _combine_rates(agencies, rg, ["criterion"], cfg, "tltc", groups)

    # low reliability, with its reasons: few responses, a small effective sample, few degrees of freedom (or a
    # sampling cell with a single response), an interval too wide
    estimates["reliability"] = precision_reasons(
        estimates["est"], estimates["se"], estimates["ci_lo"], estimates["ci_hi"], 1.0, n=estimates["n"],
        n_eff=estimates["n_eff"], df=estimates["df"], lonely=estimates["lonely"].to_numpy(dtype=bool),
        max_half_width=cfg.max_half_width, **rules)
    points = points.merge(estimates[["agency", "criterion", "reliability"]], on=["agency", "criterion"], how="left")
    points["reliability"] = points["reliability"].fillna("")
    points = _add_flag(points, points["reliability"].to_numpy() != "", FLAG_LOW_RELIABILITY)
    total_est["n"] = estimates.groupby("agency", observed=True)["n"].max().reindex(total_est.index)
    totals = _totals(points, satisfaction, positive_rates, total_est, cfg.max_half_width, rules)
    # the mixture of each agency's points: the groups whose share enters some criterion
    counted = means[group_shares(means, "mean", group_weights=cfg.group_weights, min_respondents=cfg.min_respondents,
                                 min_group=cfg.min_group, groups=groups) > 0]
    mixture = counted.groupby("agency", observed=True)["group"].agg(lambda g: "+".join(sorted(set(map(str, g)))))
    totals["groups"] = totals["agency"].map(mixture).astype(object).where(lambda g: g.notna(), "")
    flags = pd.concat([
        points.loc[points["flag"] != "", ["agency", "criterion", "flag", "missing_groups"]].assign(indicator="points"),
        satisfaction.loc[satisfaction["flag"] != "", ["agency", "flag", "missing_groups"]].assign(
            indicator="satisfaction", criterion=None),
        positive_rates.loc[positive_rates["flag"] != "", ["agency", "criterion", "flag", "missing_groups"]].assign(
            indicator="tltc"),
    ], ignore_index=True)[["agency", "indicator", "criterion", "flag", "missing_groups"]]
    return ScoreResult(scores, means, points, totals, satisfaction, sat_groups, positive_rates, estimates,
                       total_cov, flags, groups, cells)


def _unit_population(answers: pd.DataFrame, units: _Units) -> np.ndarray | None:
    """The population of every unit's sampling cell (``population`` column, NaN where unknown), or None."""
    if "population" not in answers.columns:
        return None
    pop = pd.to_numeric(answers["population"], errors="coerce").to_numpy(dtype=np.float64)
    if np.any(pop[~np.isnan(pop)] <= 0):
        raise ValueError("answers has a population of 0 or less")
    per_unit = np.full(units.n, np.nan)
    per_unit[units.row_unit[::-1]] = pop[::-1]
    if not np.array_equal(per_unit[units.row_unit], pop, equal_nan=True):
        raise ValueError("population must be constant within each (response_id, agency)")
    return per_unit


def _sampling_cells(stratum: np.ndarray, units: _Units, hidden: np.ndarray, population: np.ndarray | None,
                    cd) -> pd.DataFrame:
    """Per sampling cell of the design: its group, the respondents published (PSUs), the population where
    known and the sampling fraction the variance uses (0 without a usable population)."""
    kept = ~hidden
    frame = pd.DataFrame({"stratum": stratum[kept], "group": units.grp_cats.take(units.grp_u[kept]),
                          "response_id": units.resp_u[kept],
                          "population": np.nan if population is None else population[kept]})
    out = frame.groupby("stratum", sort=True).agg(group=("group", "first"), respondents=("response_id", "nunique"),
                                                  population=("population", "first")).reset_index()
    out["fraction"] = cd.design.f_h  # the design numbers its strata as the sorted labels
    return out


def _group_sizes(units: _Units, min_group: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Respondents (units) of every agency × group with answers, whether the group is under *min_group*,
    and, per unit, whether its group is."""
    cells = units.unit_cells()
    counts = np.bincount(cells, minlength=units.n_cells)
    present = np.flatnonzero(counts)
    n_gr = len(units.grp_cats)
    agency = present // n_gr
    groups = pd.DataFrame({"agency": units.ag_cats.take(agency),
                           "agency_kind": units.kind_cats.take(units.kind_a[agency]),
                           "group": units.grp_cats.take(present % n_gr),
                           "respondents": counts[present].astype(np.int64)})
    groups["small"] = groups["respondents"] < min_group
    return groups, (counts < min_group)[cells]


def _add_flag(frame: pd.DataFrame, where: np.ndarray, flag: str) -> pd.DataFrame:
    """*frame* with *flag* appended to its comma-separated ``flag`` column on the rows *where*."""
    out = frame.copy()
    old = out["flag"].fillna("").astype(str)
    out["flag"] = np.where(where, np.where(old == "", flag, old + "," + flag), old)
    return out


def _combine_rates(agencies, rates, keys, cfg, name, groups):
    """Weighted rate in % over qualifying groups for every agency (and key) of the frame (*rates*: per
    agency × group (× key); *groups*: the respondents of each group, for the small-group rule)."""
    if keys:  # every criterion of the agency's kind, plus the overall rate
        grid = pd.DataFrame([(k, c) for k, pts in cfg.max_points.items() for c in [*pts, "ALL"]],
                            columns=["agency_kind", "criterion"])
        base = agencies.merge(grid, on="agency_kind")
    else:
        base = agencies
    full = base.merge(rates, on=["agency", "agency_kind", *keys], how="left")
    full["group"] = full["group"].fillna("")
    full["n"] = full["n"].fillna(0)
    out = combine_groups(full, "p", group_weights=cfg.group_weights, min_respondents=cfg.min_respondents,
                         keys=keys, min_group=cfg.min_group, groups=groups)
    out[name] = 100 * out.pop("p")
    cols = ["agency", "agency_kind", *keys, name, "n_groups", "weight_used", "flag", "missing_groups"]
    return out[cols].reset_index(drop=True)


def _totals(points, satisfaction, positive_rates, total_est, max_half_width, rules):
    # a criterion missing because only small groups answered it is withheld, not without data
    no_data = points["points"].isna() & ~points["flag"].map(lambda f: FLAG_WITHHELD in str(f).split(","))
    g = points.assign(_no_data=no_data).groupby(["agency", "agency_kind"], sort=True)
    out = pd.DataFrame({
        "survey_points": g["points_exact"].sum(min_count=1),
        "points_available": g["points_exact"].sum(),
        "max_points": g["max_points"].sum(),
        "n_criteria_missing": g["points"].apply(lambda s: int(s.isna().sum())),
        "_no_data": g["_no_data"].any(),
    }).reset_index()
    out.loc[out["n_criteria_missing"] > 0, "survey_points"] = np.nan
    # the sum of the unrounded points, rounded once (not a sum of rounded points)
    out["survey_points"] = round_half_away(out["survey_points"], POINTS_DECIMALS)
    out["points_available"] = round_half_away(out["points_available"], POINTS_DECIMALS)
    out["flag"] = np.where(out.pop("_no_data"), FLAG_NO_DATA,
                           np.where(out["n_criteria_missing"] > 0, FLAG_WITHHELD, ""))
    out = out.merge(satisfaction[["agency", "satisfaction"]], on="agency", how="left")
    overall = positive_rates.loc[positive_rates["criterion"] == "ALL", ["agency", "tltc"]]
    out = out.merge(overall, on="agency", how="left")
    te = total_est.rename(columns=lambda c: f"survey_points_{c}")
    out = out.merge(te, left_on="agency", right_index=True, how="left")
    reasons = precision_reasons(
        out["survey_points_est"].where(out["survey_points"].notna()), out["survey_points_se"],
        out["survey_points_ci_lo"], out["survey_points_ci_hi"], out["max_points"], n=out["survey_points_n"],
        n_eff=np.nan, df=out["survey_points_df"], lonely=out["survey_points_lonely"].fillna(False).to_numpy(dtype=bool),
        max_half_width=max_half_width, **rules)
    out = out.drop(columns=["survey_points_est", "survey_points_lonely", "survey_points_n"])
    out["reliability"] = reasons
    return _add_flag(out, reasons != "", FLAG_LOW_RELIABILITY)
