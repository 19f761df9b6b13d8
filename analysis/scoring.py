"""Survey scoring for the PAR index: answers → item values → criterion points per agency.

Implements the scoring rule of the methodology (§5.5) with every number taken from the round's
settings. Notation: t = target agency, c = criterion (PAR area, e.g. ``"A1"``), g = respondent group
(= form code), r = one sheet about one target, i = item.

    v(r,i)   = coef[scale(i)][option]                    (missing if the option is excluded, e.g. "K")
    m(r,c)   = mean of the valid v(r,i) over items of c   (r skipped for c if it has none)
    M(g,t,c) = mean_r m(r,c),   n(g,t,c) = #sheets
    S(t,c)   = Σ_g w(g)·M(g,t,c) / Σ_g w(g) over configured groups g with n(g,t,c) >= n_min(g)
    Points   = round(MaxPts(c, kind(t)) · S(t,c), 2)      (NaN + flag if no group qualifies)

Input frames
------------
``answers`` — one row per answer (long format):

==================  =====================================================================
``response_id``     sheet identifier (any hashable); the PSU for standard errors
``agency``          code of the target agency the answer is about
``agency_kind``     kind of the target: a key of ``settings["max_points"]`` (e.g. "department",
                    "district", "vertical"); constant per agency
``group``           respondent group = form code (e.g. "CC-CT", "HĐ-CT"); constant per
                    (response_id, agency)
``item``            item code (e.g. "I01", "E18"); must be in ``items``
``option``          chosen option code as a string ("1".."5", "K"); missing/"" = blank
==================  =====================================================================

A sheet that rates several targets (the HĐ-CT matrix, LĐ-CP rating two sở) has rows for each target;
the scoring unit is the pair (``response_id``, ``agency``). Categorical columns are used as is (fast).

``items`` — DataFrame with columns ``item, scale, criterion`` (or a mapping item → (scale, criterion)).

``scales`` — mapping scale code → sequence of its valid option codes ordered worst to best, e.g.
``{"DG4": ["1", "2", "3", "4"], "HL5": ["1", "2", "3", "4", "5"], "CK": ["0", "1"]}``. Options listed
in ``settings["excluded_options"]`` (default ``["K"]``) and blanks are valid but carry no value.

``settings`` — plain dict::

    {"coefficients": {"DG4": "linear", ...},   # preset name, or {option: coefficient or None}
     "max_points": {"department": {"A1": 4, ...}, "district": {...}, "vertical": {...}},
     "group_weights": {"department": {"CC-CT": .30, ...}, ...},
     "min_respondents": {"CC-CT": 3, ..., "HĐ-CT": 1},
     "satisfaction_scale": "HL5",
     "positive": {"DG4": ["3", "4"], "HL5": ["4", "5"], "TS4": ["3", "4"], "CK": ["1"]},
     # optional:
     "excluded_options": ["K"],
     "positive_rate_scales": ["DG4", "TS4", "CK"],   # default: positive scales but satisfaction
     "level": 0.95}

Groups answering about an agency kind for which they have no weight do not enter its points.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from analysis._checks import require_columns, require_frame, require_level
from analysis.estimation import _core, _design, _domains, _psu_covariance, domain_means

__all__ = [
    "ANSWER_COLUMNS",
    "FLAG_MISSING_GROUP",
    "FLAG_NO_DATA",
    "ScoreResult",
    "coefficient_preset",
    "combine_groups",
    "criterion_points",
    "group_means",
    "item_values",
    "respondent_scores",
    "score_round",
    "validate_settings",
]

ANSWER_COLUMNS = ["response_id", "agency", "agency_kind", "group", "item", "option"]
#: a configured group is missing or below n_min: the weights were renormalised over the others
FLAG_MISSING_GROUP = "thieu_du_lieu"
#: no configured group qualifies: the value is NaN (never 0)
FLAG_NO_DATA = "khong_du_lieu"
_PRESETS = ("linear", "ratio", "top2")
_SETTINGS_KEYS = ("coefficients", "max_points", "group_weights", "min_respondents", "satisfaction_scale",
                  "positive")


def coefficient_preset(options: Sequence[str], preset: str) -> dict[str, float]:
    """Coefficients of the ordered options (worst → best) of a scale under a preset rule.

    Parameters
    ----------
    options : sequence of str
        Valid option codes ordered worst to best; option x is the x-th (1-based) of k.
    preset : {"linear", "ratio", "top2"}
        ``linear``: v = (x − 1)/(k − 1); ``ratio``: v = x/k; ``top2``: v = 1 for the best two, else 0.

    Returns
    -------
    dict
        Option code → coefficient.

    Examples
    --------
    >>> coefficient_preset(["1", "2", "3", "4", "5"], "linear")
    {'1': 0.0, '2': 0.25, '3': 0.5, '4': 0.75, '5': 1.0}
    >>> coefficient_preset(["1", "2", "3", "4"], "top2")
    {'1': 0.0, '2': 0.0, '3': 1.0, '4': 1.0}
    """
    opts = list(options)
    if len(opts) < 2 or len(set(opts)) != len(opts):
        raise ValueError(f"a scale needs at least two distinct options, got {opts}")
    k = len(opts)
    if preset == "linear":
        return {o: (x - 1) / (k - 1) for x, o in enumerate(opts, 1)}
    if preset == "ratio":
        return {o: x / k for x, o in enumerate(opts, 1)}
    if preset == "top2":
        return {o: 1.0 if x > k - 2 else 0.0 for x, o in enumerate(opts, 1)}
    raise ValueError(f"unknown coefficient preset {preset!r}; use one of {list(_PRESETS)}")


def _items_table(items: pd.DataFrame | Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    if isinstance(items, Mapping):
        rows = []
        for code, spec in items.items():
            if not (isinstance(spec, Sequence) and len(spec) == 2):
                raise ValueError(f"items[{code!r}] must be (scale, criterion), got {spec!r}")
            rows.append((code, spec[0], spec[1]))
        table = pd.DataFrame(rows, columns=["item", "scale", "criterion"])
    else:
        require_frame(items, "items")
        require_columns(items, ["item", "scale", "criterion"], "items")
        table = items[["item", "scale", "criterion"]].reset_index(drop=True)
    if table["item"].duplicated().any():
        raise ValueError(f"items lists item(s) twice: {sorted(table.loc[table['item'].duplicated(), 'item'])}")
    if table.isna().any().any():
        raise ValueError("items has missing item, scale or criterion codes")
    return table


@dataclass(frozen=True)
class _Config:
    coefficients: dict[str, dict[str, float | None]]
    max_points: dict[str, dict[str, float]]
    group_weights: dict[str, dict[str, float]]
    min_respondents: dict[str, int]
    satisfaction_scale: str
    positive: dict[str, set[str]]
    rate_scales: list[str]
    level: float


def validate_settings(settings: Mapping[str, Any], *, items: pd.DataFrame | Mapping,
                      scales: Mapping[str, Sequence[str]]) -> _Config:
    """Check a round's settings against the items and scales; raise ValueError naming the setting.

    Returns the normalised configuration used by :func:`score_round` (coefficients resolved to
    option → value mappings, excluded options mapped to None).
    """
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    missing = [k for k in _SETTINGS_KEYS if k not in settings]
    if missing:
        raise ValueError(f"settings lacks key(s) {missing}")
    table = _items_table(items)
    if not isinstance(scales, Mapping):
        raise TypeError("scales must be a dict: scale code -> ordered option codes")
    excluded = [str(o) for o in settings.get("excluded_options", ["K"])]

    coefficients: dict[str, dict[str, float | None]] = {}
    for scale in sorted(set(table["scale"])):
        used_by = table.loc[table["scale"] == scale, "item"].iloc[0]
        spec = settings["coefficients"].get(scale)
        if spec is None:
            raise ValueError(f"scale {scale!r} (item {used_by!r}) has no entry in settings['coefficients']")
        if isinstance(spec, str):
            if scale not in scales:
                raise ValueError(f"settings['coefficients'][{scale!r}] is the preset {spec!r} but scales "
                                 f"does not list the options of {scale!r}")
            if spec not in _PRESETS:
                raise ValueError(f"settings['coefficients'][{scale!r}]: unknown preset {spec!r}; use one of "
                                 f"{list(_PRESETS)}")
            coef: dict[str, float | None] = dict(coefficient_preset([str(o) for o in scales[scale]], spec))
        elif isinstance(spec, Mapping):
            if not spec:
                raise ValueError(f"settings['coefficients'][{scale!r}] is empty")
            coef = {str(k): (None if v is None else float(v)) for k, v in spec.items()}
            if any(v is not None and not 0 <= v <= 1 for v in coef.values()):
                raise ValueError(f"settings['coefficients'][{scale!r}] has coefficients outside [0, 1]")
        else:
            raise ValueError(f"settings['coefficients'][{scale!r}] must be a preset name or a mapping")
        for o in excluded:
            coef.setdefault(o, None)
        coefficients[scale] = coef

    kinds_mp, kinds_gw = settings["max_points"], settings["group_weights"]
    if not isinstance(kinds_mp, Mapping) or not kinds_mp:
        raise ValueError("settings['max_points'] must map agency kind -> {criterion: points}")
    if not isinstance(kinds_gw, Mapping) or set(kinds_gw) != set(kinds_mp):
        raise ValueError(f"settings['group_weights'] must have the agency kinds of settings['max_points'] "
                         f"({sorted(kinds_mp)})")
    criteria = set(table["criterion"])
    max_points: dict[str, dict[str, float]] = {}
    for kind, pts in kinds_mp.items():
        if not isinstance(pts, Mapping) or not pts:
            raise ValueError(f"settings['max_points'][{kind!r}] must be a non-empty mapping")
        for crit, val in pts.items():
            if crit not in criteria:
                raise ValueError(f"criterion {crit!r} in settings['max_points'][{kind!r}] has no items")
            if not isinstance(val, (int, float)) or isinstance(val, bool) or val < 0 or not np.isfinite(val):
                raise ValueError(f"settings['max_points'][{kind!r}][{crit!r}] must be a number >= 0")
        max_points[kind] = {c: float(v) for c, v in pts.items()}
    group_weights: dict[str, dict[str, float]] = {}
    for kind, gw in kinds_gw.items():
        if not isinstance(gw, Mapping) or not gw:
            raise ValueError(f"settings['group_weights'][{kind!r}] must be a non-empty mapping")
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or not np.isfinite(v)
               for v in gw.values()):
            raise ValueError(f"settings['group_weights'][{kind!r}] must hold numbers >= 0")
        if sum(gw.values()) <= 0:
            raise ValueError(f"settings['group_weights'][{kind!r}] sums to 0")
        group_weights[kind] = {g: float(v) for g, v in gw.items()}
    n_min = settings["min_respondents"]
    for kind, gw in group_weights.items():
        for g in gw:
            val = n_min.get(g) if isinstance(n_min, Mapping) else None
            if val is None:
                raise ValueError(f"settings['min_respondents'] has no entry for group {g!r}")
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"settings['min_respondents'][{g!r}] must be an integer >= 1")
    sat = settings["satisfaction_scale"]
    positive_raw = settings["positive"]
    if not isinstance(positive_raw, Mapping):
        raise ValueError("settings['positive'] must map scale -> positive option codes")
    positive: dict[str, set[str]] = {}
    for scale, codes in positive_raw.items():
        codes = {str(c) for c in codes}
        if not codes:
            raise ValueError(f"settings['positive'][{scale!r}] is empty")
        if scale in coefficients:
            unknown = codes - {o for o, v in coefficients[scale].items() if v is not None}
            if unknown:
                raise ValueError(f"settings['positive'][{scale!r}] lists unknown options {sorted(unknown)}")
        positive[scale] = codes
    if sat not in positive:
        raise ValueError(f"settings['satisfaction_scale'] {sat!r} has no entry in settings['positive']")
    rate_scales = list(settings.get("positive_rate_scales", [s for s in positive if s != sat]))
    for s in rate_scales:
        if s not in positive:
            raise ValueError(f"settings['positive_rate_scales'] lists {s!r}, which has no entry in "
                             "settings['positive']")
    level = require_level(settings.get("level", 0.95))
    return _Config(coefficients, max_points, group_weights, {g: int(v) for g, v in n_min.items()}, sat,
                   positive, rate_scales, level)


def _codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 = missing) and categories of a column, cheap for categoricals."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return np.asarray(series.cat.codes, dtype=np.int64), pd.Index(series.cat.categories)
    codes, uniq = pd.factorize(series)
    return np.asarray(codes, dtype=np.int64), pd.Index(uniq)


def item_values(answers: pd.DataFrame, coefficients: Mapping[str, Mapping[str, float | None]],
                item_scale: Mapping[str, str]) -> pd.Series:
    """Numeric value v of every answer from its item's scale coefficients.

    Parameters
    ----------
    answers : DataFrame
        Columns ``item`` and ``option`` (option codes as strings; missing or "" = blank).
    coefficients : dict
        Scale → {option code: coefficient, or None for an excluded option such as "K"}.
    item_scale : dict
        Item code → scale code.

    Returns
    -------
    Series
        Float values aligned to ``answers.index`` (NaN for blank or excluded answers), named ``"v"``.

    Raises
    ------
    ValueError
        For an item without a scale, a scale without coefficients, or an option the scale lacks.

    Examples
    --------
    >>> a = pd.DataFrame({"item": ["q1", "q1", "q1"], "option": ["4", "K", None]})
    >>> item_values(a, {"DG4": {"1": 0, "2": 1/3, "3": 2/3, "4": 1, "K": None}}, {"q1": "DG4"}).tolist()
    [1.0, nan, nan]
    """
    require_frame(answers, "answers")
    require_columns(answers, ["item", "option"], "answers")
    v, _, _ = _values(answers, coefficients, item_scale)
    return pd.Series(v, index=answers.index, name="v")


def _values(answers, coefficients, item_scale):
    """Values, item codes and item categories of the answers (vectorised table look-up)."""
    item_code, item_cats = _codes(answers["item"])
    if np.any(item_code < 0):
        raise ValueError("answers has rows without an item code")
    unknown = [i for i in item_cats if i not in item_scale]
    if unknown:
        raise ValueError(f"answers has item(s) not in the item table: {unknown[:10]}")
    scale_names = sorted({item_scale[i] for i in item_cats})
    for s in scale_names:
        if s not in coefficients:
            raise ValueError(f"scale {s!r} has no coefficients")
    scale_of_item = np.array([scale_names.index(item_scale[i]) for i in item_cats], dtype=np.int64)
    opt = answers["option"]
    opt_code, opt_cats = _codes(opt)
    bad = [o for o in opt_cats if not isinstance(o, str)]
    if bad:
        raise TypeError(f"answer option codes must be strings, got {bad[:5]}")
    table = np.full((len(scale_names), len(opt_cats) + 1), np.nan)  # last column: blank
    allowed = np.zeros_like(table, dtype=bool)
    allowed[:, -1] = True
    for si, s in enumerate(scale_names):
        for oi, o in enumerate(opt_cats):
            if o.strip() == "":
                allowed[si, oi] = True
            elif o in coefficients[s]:
                allowed[si, oi] = True
                coef = coefficients[s][o]
                table[si, oi] = np.nan if coef is None else coef
    row_scale = scale_of_item[item_code]
    col = np.where(opt_code < 0, len(opt_cats), opt_code)
    present = np.bincount(row_scale * table.shape[1] + col, minlength=table.size).reshape(table.shape) > 0
    wrong = present & ~allowed
    if wrong.any():
        si, oi = np.argwhere(wrong)[0]
        raise ValueError(f"option {opt_cats[oi]!r} is not an option of scale {scale_names[si]!r}")
    return table[row_scale, col], item_code, item_cats


def respondent_scores(answers: pd.DataFrame, values: pd.Series, item_criterion: Mapping[str, str],
                      criteria: Sequence[str] | None = None) -> pd.DataFrame:
    """Score m(r, c) of every sheet × target on every criterion.

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
        column per criterion (NaN when the sheet has no valid item of the criterion).

    Notes
    -----
    m(r, c) = mean of the valid item values of criterion c on sheet r.
    """
    require_frame(answers, "answers")
    require_columns(answers, ANSWER_COLUMNS, "answers")
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (len(answers),):
        raise ValueError("values must be aligned to answers")
    item_code, item_cats = _codes(answers["item"])
    return _respondent_scores(answers, v, item_code, item_cats, item_criterion, criteria)[0]


def _respondent_scores(answers, v, item_code, item_cats, item_criterion, criteria):
    crit_names = sorted({item_criterion[i] for i in item_criterion}) if criteria is None else list(criteria)
    crit_index = {c: j for j, c in enumerate(crit_names)}
    crit_of_item = np.array([crit_index.get(item_criterion.get(i), -1) for i in item_cats], dtype=np.int64)
    row_crit = crit_of_item[item_code]
    resp_code, resp_cats = _codes(answers["response_id"])
    ag_code, ag_cats = _codes(answers["agency"])
    if np.any(resp_code < 0) or np.any(ag_code < 0):
        raise ValueError("answers has rows without response_id or agency")
    unit, unit_keys = pd.factorize(resp_code * np.int64(len(ag_cats)) + ag_code)
    unit = np.asarray(unit)
    n_unit = len(unit_keys)
    grp_code, grp_cats = _codes(answers["group"])
    kind_code, kind_cats = _codes(answers["agency_kind"])
    if np.any(grp_code < 0) or np.any(kind_code < 0):
        raise ValueError("answers has rows without group or agency_kind")
    grp_u = np.empty(n_unit, dtype=np.int64)
    grp_u[unit] = grp_code
    if np.any(grp_u[unit] != grp_code):
        raise ValueError("group must be constant within each (response_id, agency)")
    kind_a = np.full(len(ag_cats), -1, dtype=np.int64)
    kind_a[ag_code] = kind_code
    if np.any(kind_a[ag_code] != kind_code):
        raise ValueError("agency_kind must be constant within each agency")
    n_crit = len(crit_names)
    ok = (row_crit >= 0) & ~np.isnan(v)
    key = unit[ok] * n_crit + row_crit[ok]
    sums = np.bincount(key, weights=v[ok], minlength=n_unit * n_crit).reshape(n_unit, n_crit)
    cnt = np.bincount(key, minlength=n_unit * n_crit).reshape(n_unit, n_crit)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(cnt > 0, sums / np.where(cnt > 0, cnt, 1), np.nan)
    unit_keys = np.asarray(unit_keys)
    ag_u = unit_keys % len(ag_cats)
    frame = pd.DataFrame({
        "response_id": resp_cats.take(unit_keys // len(ag_cats)),
        "agency": ag_cats.take(ag_u),
        "agency_kind": kind_cats.take(kind_a[ag_u]),
        "group": grp_cats.take(grp_u),
    })
    for j, c in enumerate(crit_names):
        frame[c] = score[:, j]
    extra = {"unit": unit, "row_crit": row_crit, "crit_names": crit_names, "ag_u": ag_u, "grp_u": grp_u,
             "kind_a": kind_a, "ag_cats": ag_cats, "grp_cats": grp_cats, "kind_cats": kind_cats}
    return frame, extra


def group_means(scores: pd.DataFrame, criteria: Sequence[str]) -> pd.DataFrame:
    """M(g, t, c) and n(g, t, c) from respondent scores.

    Returns
    -------
    DataFrame
        Columns ``agency, agency_kind, group, criterion, mean, n`` for every observed
        (agency, group) and criterion; ``mean`` is NaN when n = 0.
    """
    keys = ["agency", "agency_kind", "group"]
    g = scores.groupby(keys, sort=True, observed=True)[list(criteria)]
    means = g.mean().melt(ignore_index=False, var_name="criterion", value_name="mean")
    counts = g.count().melt(ignore_index=False, var_name="criterion", value_name="n")
    out = means.reset_index()
    out["n"] = counts["n"].to_numpy().astype(np.int64)
    return out.sort_values(["agency", "criterion", "group"], kind="stable").reset_index(drop=True)


def combine_groups(table: pd.DataFrame, value: str, *, group_weights: Mapping[str, Mapping[str, float]],
                   min_respondents: Mapping[str, int], keys: Sequence[str], n_col: str = "n") -> pd.DataFrame:
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

    Returns
    -------
    DataFrame
        ``agency, agency_kind, *keys, value, n_groups, weight_used, flag, missing_groups``; *value*
        is NaN with flag ``khong_du_lieu`` when no group qualifies, flag ``thieu_du_lieu`` when some
        configured group with positive weight does not qualify (weights renormalised), else "".
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
    full["_nmin"] = full["group"].map(min_respondents).astype(float)
    full["_q"] = (full[n_col] >= full["_nmin"]) & full[value].notna()
    full["_wq"] = np.where(full["_q"], full["_w"], 0.0)
    full["_wx"] = np.where(full["_q"], full["_w"] * full[value].fillna(0.0), 0.0)
    full["_miss"] = np.where(~full["_q"] & (full["_w"] > 0), full["group"].astype(str), "")
    agg = full.groupby(idx, sort=True, observed=True, dropna=False).agg(
        _wq=("_wq", "sum"), _wx=("_wx", "sum"), n_groups=("_q", "sum"),
        missing_groups=("_miss", lambda s: ",".join(sorted(x for x in s if isinstance(x, str) and x))))
    out = agg.reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out[value] = np.where(out["_wq"] > 0, out["_wx"] / out["_wq"].where(out["_wq"] > 0, 1.0), np.nan)
    out["weight_used"] = out["_wq"]
    out["n_groups"] = out["n_groups"].astype(np.int64)
    out["flag"] = np.where(out["_wq"] <= 0, FLAG_NO_DATA,
                           np.where(out["missing_groups"] != "", FLAG_MISSING_GROUP, ""))
    return out[[*idx, value, "n_groups", "weight_used", "flag", "missing_groups"]]


def criterion_points(means: pd.DataFrame, cfg: _Config) -> pd.DataFrame:
    """S(t, c) and Points(t, c) for every agency and every criterion of its kind's max points."""
    agencies = means[["agency", "agency_kind"]].drop_duplicates()
    grid = pd.DataFrame([(k, c, p) for k, pts in cfg.max_points.items() for c, p in pts.items()],
                        columns=["agency_kind", "criterion", "max_points"])
    full = agencies.merge(grid, on="agency_kind")
    gm = full[["agency", "agency_kind", "criterion"]].merge(
        means, on=["agency", "agency_kind", "criterion"], how="left")
    gm["group"] = gm["group"].fillna("")
    gm["n"] = gm["n"].fillna(0)
    comb = combine_groups(gm, "mean", group_weights=cfg.group_weights, min_respondents=cfg.min_respondents,
                          keys=["criterion"])
    out = full.merge(comb.rename(columns={"mean": "score"}), on=["agency", "agency_kind", "criterion"],
                     how="left")
    out["flag"] = out["flag"].fillna(FLAG_NO_DATA)
    out["points"] = np.round(out["max_points"] * out["score"], 2)
    return out.sort_values(["agency", "criterion"]).reset_index(drop=True)


@dataclass(frozen=True)
class ScoreResult:
    """Everything :func:`score_round` computes, as plain frames.

    Attributes
    ----------
    respondent_scores : one row per (response_id, agency), one column per criterion (m(r, c)).
    group_means : ``agency, agency_kind, group, criterion, mean, n``.
    points : ``agency, agency_kind, criterion, max_points, score, n_groups, weight_used, flag,
        missing_groups, points``.
    totals : ``agency, agency_kind, survey_points, points_available, max_points, n_criteria_missing,
        flag, tlhl, tltc, survey_points_se, survey_points_ci_lo, survey_points_ci_hi``.
    satisfaction : TLHL (%) per agency: ``agency, agency_kind, tlhl, n_groups, weight_used, flag,
        missing_groups``.
    satisfaction_groups : per agency × group: ``n`` (sheets), ``n_answers``, ``n_positive``, ``p``,
        Wilson ``ci_lo``/``ci_hi``.
    positive_rates : TLTC (%) per agency × criterion and overall (criterion ``"ALL"``).
    estimates : per agency × criterion, the weighted score with design-based ``se``, ``ci_lo``,
        ``ci_hi``, ``n``, ``n_eff``, ``df`` and the same for points (``points_se`` ...).
    total_covariance : covariance matrix of the agencies' survey points (for :func:`rank_intervals`).
    flags : ``agency, indicator, criterion, flag, missing_groups`` for every flagged value.
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


def _rate_groups(extra, v, key_code, n_key, mask, positive_row) -> pd.DataFrame:
    """Counts per (agency, group, key): sheets with a valid answer, valid answers, positive answers.

    Answers are first counted per (sheet × target, key), then the small unit table is aggregated.
    """
    unit = extra["unit"]
    n_unit = extra["ag_u"].size
    ok = mask & ~np.isnan(v)
    unit_key = unit[ok] * np.int64(n_key) + key_code[ok]
    n_ans_u = np.bincount(unit_key, minlength=n_unit * n_key)
    n_pos_u = np.bincount(unit_key, weights=positive_row[ok], minlength=n_unit * n_key)
    n_ag, n_gr = len(extra["ag_cats"]), len(extra["grp_cats"])
    cell_u = (np.repeat(extra["ag_u"] * n_gr + extra["grp_u"], n_key) * n_key
              + np.tile(np.arange(n_key), n_unit))
    size = n_ag * n_gr * n_key
    n_ans = np.bincount(cell_u, weights=n_ans_u, minlength=size)
    n_pos = np.bincount(cell_u, weights=n_pos_u, minlength=size)
    n_sheet = np.bincount(cell_u, weights=n_ans_u > 0, minlength=size)
    nz = np.flatnonzero(n_ans)
    key = nz % n_key
    gr = (nz // n_key) % n_gr
    ag = nz // (n_key * n_gr)
    return pd.DataFrame({"agency": extra["ag_cats"].take(ag),
                         "agency_kind": extra["kind_cats"].take(extra["kind_a"][ag]),
                         "_key": key, "group": extra["grp_cats"].take(gr), "n": n_sheet[nz].round().astype(np.int64),
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
    among valid ones, over groups with at least n_min sheets; TLTC the same over the positive-rate
    scales, per criterion and overall. Group-level Wilson intervals use unweighted counts.

    Standard errors: S(t, c) equals a Hájek mean of m(r, c) with unit weights w(g)/n(g,t,c) for the
    qualifying groups (0 otherwise), so :func:`domain_means` with strata = group and PSU =
    response_id gives its linearised SE, treating the group weights as fixed. The survey-points
    total Σ_c MaxPts_c · S(t, c) is linear in those means; its variance and the covariance between
    agencies (non-zero when a sheet rates several agencies) use the summed PSU influence values.
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

    v, item_code, item_cats = _values(answers, cfg.coefficients, item_scale)
    criteria = sorted(set(table["criterion"]))
    scores, extra = _respondent_scores(answers, v, item_code, item_cats, item_crit, criteria)
    means = group_means(scores, criteria)
    points = criterion_points(means, cfg)

    # satisfaction (TLHL) and positive rates (TLTC)
    opt_code, opt_cats = _codes(answers["option"])
    scale_names = sorted(set(table["scale"]))
    scale_of_item = np.array([scale_names.index(item_scale[i]) for i in item_cats])
    row_scale = scale_of_item[item_code]
    pos_table = np.zeros((len(scale_names), len(opt_cats) + 1), dtype=bool)
    for si, s in enumerate(scale_names):
        for oi, o in enumerate(opt_cats):
            pos_table[si, oi] = o in cfg.positive.get(s, ())
    positive_row = pos_table[row_scale, np.where(opt_code < 0, len(opt_cats), opt_code)]
    sat_mask = np.zeros(len(answers), dtype=bool)
    if cfg.satisfaction_scale in scale_names:
        sat_mask = row_scale == scale_names.index(cfg.satisfaction_scale)
    sat_groups = _rate_groups(extra, v, np.zeros(len(answers), dtype=np.int64), 1, sat_mask,
                              positive_row).drop(columns="_key")
    sat_groups["p"] = sat_groups["n_positive"] / sat_groups["n_answers"]
    lo, hi = proportion_confint(sat_groups["n_positive"].to_numpy(), sat_groups["n_answers"].to_numpy(),
                                alpha=1 - cfg.level, method="wilson")
    sat_groups["ci_lo"], sat_groups["ci_hi"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    agencies = scores[["agency", "agency_kind"]].drop_duplicates()
    satisfaction = _combine_rates(agencies, sat_groups, [], cfg, "tlhl")

    rate_idx = [scale_names.index(s) for s in cfg.rate_scales if s in scale_names]
    rate_mask = np.isin(row_scale, rate_idx)
    row_crit = extra["row_crit"]
    rate_groups = _rate_groups(extra, v, np.maximum(row_crit, 0), len(criteria), rate_mask & (row_crit >= 0),
                               positive_row)
    rate_groups["criterion"] = np.asarray(criteria, dtype=object)[rate_groups.pop("_key").to_numpy()] \
        if len(rate_groups) else pd.Series(dtype=object)
    all_groups = _rate_groups(extra, v, np.zeros(len(answers), dtype=np.int64), 1, rate_mask,
                              positive_row).drop(columns="_key")
    all_groups["criterion"] = "ALL"
    rg = pd.concat([rate_groups, all_groups], ignore_index=True)
    rg["p"] = rg["n_positive"] / rg["n_answers"]
    positive_rates = _combine_rates(agencies, rg, ["criterion"], cfg, "tltc")

    estimates, total_est, total_cov = _score_estimates(scores, means, points, criteria, cfg)
    totals = _totals(points, satisfaction, positive_rates, total_est)
    flags = pd.concat([
        points.loc[points["flag"] != "", ["agency", "criterion", "flag", "missing_groups"]].assign(indicator="points"),
        satisfaction.loc[satisfaction["flag"] != "", ["agency", "flag", "missing_groups"]].assign(
            indicator="tlhl", criterion=None),
        positive_rates.loc[positive_rates["flag"] != "", ["agency", "criterion", "flag", "missing_groups"]].assign(
            indicator="tltc"),
    ], ignore_index=True)[["agency", "indicator", "criterion", "flag", "missing_groups"]]
    return ScoreResult(scores, means, points, totals, satisfaction, sat_groups, positive_rates, estimates,
                       total_cov, flags)


def _combine_rates(agencies, groups, keys, cfg, name):
    """Weighted rate in % over qualifying groups for every agency (and key) of the frame."""
    if keys:  # every criterion of the agency's kind, plus the overall rate
        grid = pd.DataFrame([(k, c) for k, pts in cfg.max_points.items() for c in [*pts, "ALL"]],
                            columns=["agency_kind", "criterion"])
        base = agencies.merge(grid, on="agency_kind")
    else:
        base = agencies
    full = base.merge(groups, on=["agency", "agency_kind", *keys], how="left")
    full["group"] = full["group"].fillna("")
    full["n"] = full["n"].fillna(0)
    out = combine_groups(full, "p", group_weights=cfg.group_weights, min_respondents=cfg.min_respondents,
                         keys=keys)
    out[name] = 100 * out.pop("p")
    cols = ["agency", "agency_kind", *keys, name, "n_groups", "weight_used", "flag", "missing_groups"]
    return out[cols].reset_index(drop=True)


def _score_estimates(scores, means, points, criteria, cfg):
    """Design-based SEs of S(t, c), of the points and of the survey-points total."""
    frame = scores[["response_id", "agency", "agency_kind", "group", *criteria]].copy()
    q = points[["agency", "criterion", "weight_used"]]
    gm = means.merge(q, on=["agency", "criterion"], how="left")
    gw = pd.DataFrame([(k, g, w) for k, d in cfg.group_weights.items() for g, w in d.items()],
                      columns=["agency_kind", "group", "_w"])
    gm = gm.merge(gw, on=["agency_kind", "group"], how="left")
    nmin = gm["group"].map(cfg.min_respondents).astype(float)
    gm["_unit_w"] = np.where((gm["n"] >= nmin) & (gm["n"] > 0) & gm["_w"].notna(),
                             gm["_w"] / gm["n"].where(gm["n"] > 0, 1), 0.0)
    wide = gm.pivot_table(index=["agency", "group"], columns="criterion", values="_unit_w", observed=True)
    wcols = []
    keys = pd.MultiIndex.from_frame(frame[["agency", "group"]])
    for c in criteria:
        col = f"_w_{c}"
        frame[col] = wide[c].reindex(keys).fillna(0.0).to_numpy() if c in wide else 0.0
        frame.loc[frame[c].isna(), col] = 0.0
        wcols.append(col)
    est = domain_means(frame, criteria, "agency", wcols, strata="group", psu="response_id", level=cfg.level,
                       deff="replace")
    est = est.rename(columns={"variable": "criterion"})
    est = est.merge(points[["agency", "agency_kind", "criterion", "max_points"]], on=["agency", "criterion"],
                    how="right")
    for col in ("est", "se", "ci_lo", "ci_hi"):
        est[f"points_{col}"] = est["max_points"] * est[col]
    est = est.drop(columns=["deff", "cv"]).sort_values(["agency", "criterion"]).reset_index(drop=True)
    est = est[["agency", "agency_kind", "criterion", *[c for c in est.columns
                                                       if c not in ("agency", "agency_kind", "criterion")]]]

    # total: Σ_c MaxPts_c S_c, influence values summed over criteria within each PSU × agency cell
    design = _design(frame, "group", "response_id", None)
    dom, labels = _domains(frame, ["agency"])
    y = np.vstack([frame[c].to_numpy(dtype=np.float64) for c in criteria])
    w = np.vstack([frame[c].to_numpy(dtype=np.float64) for c in wcols])
    core = _core(design, dom, len(labels), y, w)
    kind_of = frame.groupby("agency", sort=True)["agency_kind"].first().reindex(labels["agency"])
    coef = np.array([[cfg.max_points[k].get(c, 0.0) for c in criteria] for k in kind_of])
    mean = core.mean  # D × K
    needed = coef > 0
    total = np.where(np.any(needed & np.isnan(mean), axis=1), np.nan, np.nansum(coef * mean, axis=1))
    z_total = np.einsum("kg,gk->g", core.z, coef[core.g_dom])
    cov = _psu_covariance(design, core.g_psu, core.g_dom, z_total, len(labels))
    bad = np.isnan(total)
    cov[bad, :] = np.nan
    cov[:, bad] = np.nan
    idx = pd.Index(labels["agency"], name="agency")
    total_est = pd.DataFrame({"est": total, "se": np.sqrt(np.diag(cov))}, index=idx)
    from scipy import stats
    tq = stats.t.ppf(0.5 + cfg.level / 2, design.df) if design.df >= 1 else np.nan
    total_est["ci_lo"] = total_est["est"] - tq * total_est["se"]
    total_est["ci_hi"] = total_est["est"] + tq * total_est["se"]
    return est, total_est, pd.DataFrame(cov, index=idx, columns=idx)


def _totals(points, satisfaction, positive_rates, total_est):
    g = points.groupby(["agency", "agency_kind"], sort=True)
    out = pd.DataFrame({
        "survey_points": g["points"].sum(min_count=1),
        "points_available": g["points"].sum(),
        "max_points": g["max_points"].sum(),
        "n_criteria_missing": g["points"].apply(lambda s: int(s.isna().sum())),
    }).reset_index()
    out.loc[out["n_criteria_missing"] > 0, "survey_points"] = np.nan
    out["flag"] = np.where(out["n_criteria_missing"] > 0, FLAG_NO_DATA, "")
    out = out.merge(satisfaction[["agency", "tlhl"]], on="agency", how="left")
    overall = positive_rates.loc[positive_rates["criterion"] == "ALL", ["agency", "tltc"]]
    out = out.merge(overall, on="agency", how="left")
    te = total_est.rename(columns=lambda c: f"survey_points_{c}").drop(columns="survey_points_est")
    return out.merge(te, left_on="agency", right_index=True, how="left")
