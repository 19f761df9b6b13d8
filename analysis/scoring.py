"""Survey scoring for the PAR index: answers → item values → criterion points per agency.

Implements the scoring rule of the methodology (§5.5) with every number taken from the round's
settings. Notation: t = target agency, c = criterion (PAR area, e.g. ``"A1"``), g = respondent group
(= form code), r = one sheet about one target, i = item.

    v(r,i)   = coef[scale(i)][option]                    (missing if the option is excluded, e.g. "K")
    m(r,c)   = mean of the valid v(r,i) over items of c   (r skipped for c if it has none)
    M(g,t,c) = mean_r m(r,c),   n(g,t,c) = #sheets
    S(t,c)   = Σ_g w(g)·M(g,t,c) / Σ_g w(g) over configured groups g with n(g,t,c) >= n_min(g)
    Points   = round(MaxPts(c, kind(t)) · S(t,c), 2)      (NaN + flag if no group qualifies)
    Total(t) = round(Σ_c MaxPts(c, kind(t)) · S(t,c), 2)  (the unrounded points, rounded once)

``round`` is half away from zero on the decimal value, as Excel's ROUND (:mod:`analysis.rounding`).

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
``stratum``         optional: the sampling cell of the sheet (its quota cell: form × agency,
                    form × district for LĐ-CP, the form for HĐ-CT); constant per response_id
                    and nested in ``group``. Without it the group is the stratum.
==================  =====================================================================

A sheet that rates several targets (the HĐ-CT matrix, LĐ-CP rating two sở) has rows for each target;
the scoring unit is the pair (``response_id``, ``agency``).

Any row order and plain (object or string) columns give the same result. For speed on tens of
millions of answers, as the service and the benchmark provide them: ``agency``, ``agency_kind``,
``group``, ``item`` and ``option`` as categoricals (their codes are used directly, no hashing of
strings), ``response_id`` as plain integers or a categorical, and the rows of one sheet × target
consecutive (units are then found from runs of rows, hashing one id per run instead of one per
answer). Units are listed in order of first appearance.

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
     "level": 0.95,
     "max_half_width": 0.10,                      # reliability flag, see analysis.reliability
     "lonely_psu": "adjust"}                      # a sampling cell with one sheet (R survey.lonely.psu)

Groups answering about an agency kind for which they have no weight do not enter its points.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from analysis._checks import require_columns, require_frame, require_level
from analysis.estimation import (
    LONELY_RULES,
    _DomainCore,
    _core,
    _design,
    _domain_df,
    _psu_covariance,
    _table,
    _variance_and_lonely,
)
from analysis.reliability import DEFAULT_MAX_HALF_WIDTH, imprecise
from analysis.rounding import round_half_away

__all__ = [
    "ANSWER_COLUMNS",
    "FLAG_LOW_RELIABILITY",
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
#: the confidence interval is too wide, or there is no variance (see :func:`analysis.imprecise`)
FLAG_LOW_RELIABILITY = "tin_cay_thap"
#: minimum respondents of a group about an agency when the settings name none: one sheet carries no variance
DEFAULT_MIN_RESPONDENTS = 2
#: variance of a sampling cell with one respondent: centred at the mean of all respondents (R "adjust")
DEFAULT_LONELY_PSU = "adjust"
#: decimals of published points; rounded half away from zero on the decimal value (Excel ROUND)
POINTS_DECIMALS = 2
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
    max_half_width: float
    lonely_psu: str


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
    if not isinstance(n_min, Mapping):
        raise ValueError("settings['min_respondents'] must map group -> minimum respondents")
    for g, val in n_min.items():
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"settings['min_respondents'][{g!r}] must be an integer >= 1")
    lonely_psu = settings.get("lonely_psu", DEFAULT_LONELY_PSU)
    if lonely_psu not in LONELY_RULES:
        raise ValueError(f"settings['lonely_psu'] must be one of {list(LONELY_RULES)}, got {lonely_psu!r}")
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
    max_half_width = settings.get("max_half_width", DEFAULT_MAX_HALF_WIDTH)
    if isinstance(max_half_width, bool) or not isinstance(max_half_width, (int, float)) \
            or not 0 < max_half_width <= 1:
        raise ValueError(f"settings['max_half_width'] must be a number in (0, 1], got {max_half_width!r}")
    return _Config(coefficients, max_points, group_weights, {g: int(v) for g, v in n_min.items()}, sat,
                   positive, rate_scales, level, float(max_half_width), lonely_psu)


def _codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 = missing) and categories of a column, cheap for categoricals.

    Categorical codes keep their compact dtype (int8 for up to 127 categories) to save memory on
    tens of millions of rows; callers widen them before any arithmetic that could overflow.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), pd.Index(series.cat.categories)
    codes, uniq = pd.factorize(series)
    return np.asarray(codes), pd.Index(uniq)


@dataclass(frozen=True)
class _Cells:
    """Every answer as one integer: its cell in the item × option table (built by :func:`_answer_cells`).

    A row's cell is ``item_code * n_cols + option column`` where the last option column
    (``n_cols - 1``) stands for a missing option. Per-cell look-up tables (value, criterion,
    positive, ...) then turn into per-row arrays with a single ``take``, with no string work and no
    two-dimensional fancy indexing over the rows.
    """

    cell: np.ndarray          # per row: cell code (intp)
    item_cats: pd.Index       # item codes (categories of the item column)
    opt_cats: pd.Index        # option codes (categories of the option column)
    scale_names: list[str]    # sorted scales of the items present
    scale_of_item: np.ndarray  # scale index of every item category
    value: np.ndarray         # per cell: coefficient, NaN for blank/excluded options

    @property
    def n_cols(self) -> int:
        return len(self.opt_cats) + 1

    def per_cell(self, per_item: np.ndarray) -> np.ndarray:
        """Repeat a per-item array over the option columns: one entry per cell."""
        return np.repeat(np.asarray(per_item), self.n_cols)


def _answer_cells(answers: pd.DataFrame, coefficients: Mapping[str, Mapping[str, float | None]],
                  item_scale: Mapping[str, str]) -> _Cells:
    """Cell code and value table of the answers; raise for unknown items and options foreign to a scale.

    Parameters
    ----------
    answers : DataFrame
        Columns ``item`` and ``option`` (strings or categoricals of strings).
    coefficients : dict
        Scale → {option code: coefficient, or None for an excluded option}.
    item_scale : dict
        Item code → scale code.

    Returns
    -------
    _Cells
    """
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
    opt_code, opt_cats = _codes(answers["option"])
    bad = [o for o in opt_cats if not isinstance(o, str)]
    if bad:
        raise TypeError(f"answer option codes must be strings, got {bad[:5]}")
    n_cols = len(opt_cats) + 1  # last column: blank (missing option)
    table = np.full((len(scale_names), n_cols), np.nan)
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

    n_cells = len(item_cats) * n_cols
    # intp, because take() would convert any other index dtype on every look-up
    cell = np.multiply(item_code, n_cols, dtype=np.intp)
    cell += opt_code
    cell[opt_code < 0] += n_cols  # missing option (code -1) -> last column
    # which options occur with which scale: count the cells once, then fold items onto their scale
    seen = np.bincount(cell, minlength=n_cells).reshape(len(item_cats), n_cols) > 0
    present = np.zeros_like(allowed)
    for i, si in enumerate(scale_of_item):
        present[si] |= seen[i]
    wrong = present & ~allowed
    if wrong.any():
        si, oi = np.argwhere(wrong)[0]
        raise ValueError(f"option {opt_cats[oi]!r} is not an option of scale {scale_names[si]!r}")
    value = table[scale_of_item].ravel()
    return _Cells(cell, item_cats, pd.Index(opt_cats), scale_names, scale_of_item, value)


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
    cells = _answer_cells(answers, coefficients, item_scale)
    return pd.Series(cells.value.take(cells.cell), index=answers.index, name="v")


@dataclass(frozen=True)
class _Units:
    """Scoring units (``response_id`` × ``agency``) of the answers, found from runs of rows.

    A *run* is a maximal block of consecutive rows with the same response_id, agency, group and
    agency kind. Answers arrive grouped by sheet, so there are about as many runs as units and all
    hashing happens on one value per run instead of one per answer; unordered input only makes the
    runs shorter (down to one row), never the result different. Units are numbered in order of
    first appearance.
    """

    row_unit: np.ndarray   # unit code of every row (int32 when it fits)
    resp_cats: pd.Index    # distinct response ids
    resp_u: np.ndarray     # per unit: code into resp_cats
    ag_u: np.ndarray       # per unit: agency code
    grp_u: np.ndarray      # per unit: group code
    kind_a: np.ndarray     # per agency code: kind code (-1 = agency without answers)
    ag_cats: pd.Index
    grp_cats: pd.Index
    kind_cats: pd.Index

    @property
    def n(self) -> int:
        return self.ag_u.size

    def bin_sums(self, row_bin: np.ndarray, n_bins: int, weights: np.ndarray | None = None) -> np.ndarray:
        """Sum of *weights* (or count of rows) per bin × unit, as an ``n_bins × n`` array.

        *row_bin* (intp, overwritten) gives every row's bin in ``[0, n_bins)``. One ``bincount``
        over the key ``bin * n + unit``, built in place; each bin × unit total adds its rows in row
        order, as a masked bincount would. Bin-major output so that each bin is a contiguous row.
        """
        key = row_bin
        key *= self.n
        key += self.row_unit
        out = np.bincount(key, weights=weights, minlength=self.n * n_bins)
        return out.reshape(n_bins, self.n)


def _units(answers: pd.DataFrame) -> _Units:
    """Scoring units of the answers with their group and agency kind.

    Parameters
    ----------
    answers : DataFrame
        The ``ANSWER_COLUMNS`` frame, in any row order.

    Returns
    -------
    _Units

    Raises
    ------
    ValueError
        For rows without response_id, agency, group or agency_kind, a group that varies within a
        unit, or a kind that varies within an agency.

    Notes
    -----
    Run starts are rows where the response id or the packed (agency, group, kind) code differs from
    the previous row. Units are then factorized from one (response code, agency) key per run;
    since every unit first appears at a run start, the unit numbering equals factorizing all rows.
    """
    resp = answers["response_id"]
    if isinstance(resp.dtype, np.dtype) and resp.dtype.kind in "iu":
        # plain integer ids: compare them directly, factorize only the run starts below
        resp_key, resp_cats = resp.to_numpy(), None
    else:
        resp_key, resp_cats = _codes(resp)
    ag_code, ag_cats = _codes(answers["agency"])
    if (resp_cats is not None and np.any(resp_key < 0)) or np.any(ag_code < 0):
        raise ValueError("answers has rows without response_id or agency")
    grp_code, grp_cats = _codes(answers["group"])
    kind_code, kind_cats = _codes(answers["agency_kind"])
    if np.any(grp_code < 0) or np.any(kind_code < 0):
        raise ValueError("answers has rows without group or agency_kind")
    n_ag, n_grp, n_kind = len(ag_cats), len(grp_cats), len(kind_cats)

    # (agency, group, kind) as one integer per row so that a single comparison finds the run starts
    dtype = np.int32 if n_ag * n_grp * n_kind < 2**31 else np.int64
    combo = ag_code.astype(dtype)
    combo *= n_grp
    combo += grp_code
    combo *= n_kind
    combo += kind_code
    n = len(answers)
    new_run = np.ones(n, dtype=bool)
    np.not_equal(resp_key[1:], resp_key[:-1], out=new_run[1:])
    new_run[1:] |= combo[1:] != combo[:-1]
    del combo
    starts = np.flatnonzero(new_run)
    del new_run
    lengths = np.diff(np.append(starts, n))

    if resp_cats is None:
        # every id first appears at a run start, so this equals factorizing the whole column
        resp_h, uniq = pd.factorize(resp_key[starts])
        resp_cats = pd.Index(uniq)
    else:
        resp_h = resp_key[starts]
    ag_h = ag_code[starts].astype(np.int64)
    run_unit, unit_keys = pd.factorize(resp_h.astype(np.int64) * np.int64(n_ag) + ag_h)
    run_unit = np.asarray(run_unit, dtype=np.int64)
    unit_keys = np.asarray(unit_keys)
    n_unit = len(unit_keys)
    # group and kind are constant within a run; check them across the runs of a unit / agency
    grp_h = grp_code[starts].astype(np.int64)
    grp_u = np.empty(n_unit, dtype=np.int64)
    grp_u[run_unit] = grp_h
    if np.any(grp_u[run_unit] != grp_h):
        raise ValueError("group must be constant within each (response_id, agency)")
    kind_h = kind_code[starts].astype(np.int64)
    kind_a = np.full(n_ag, -1, dtype=np.int64)
    kind_a[ag_h] = kind_h
    if np.any(kind_a[ag_h] != kind_h):
        raise ValueError("agency_kind must be constant within each agency")
    # one unit code per row, expanded from the runs (int32 halves the memory of this 20M-row array)
    row_unit = np.repeat(run_unit.astype(np.int32 if n_unit < 2**31 else np.int64), lengths)
    return _Units(row_unit, resp_cats, unit_keys // n_ag, unit_keys % n_ag, grp_u, kind_a,
                  ag_cats, grp_cats, kind_cats)


def _criterion_index(item_cats: pd.Index, item_criterion: Mapping[str, str],
                     criteria: Sequence[str] | None) -> tuple[list, np.ndarray]:
    """Criterion names and the criterion index of every item category (-1 = not among the criteria)."""
    crit_names = sorted({item_criterion[i] for i in item_criterion}) if criteria is None else list(criteria)
    crit_index = {c: j for j, c in enumerate(crit_names)}
    crit_of_item = np.array([crit_index.get(item_criterion.get(i), -1) for i in item_cats], dtype=np.int64)
    return crit_names, crit_of_item


def _unit_strata(answers: pd.DataFrame, units: _Units, group: pd.Series) -> np.ndarray:
    """The sampling cell of every unit (the group when *answers* has no ``stratum`` column)."""
    if "stratum" not in answers.columns:
        return group.to_numpy()
    codes, cats = _codes(answers["stratum"])
    if np.any(codes < 0):
        raise ValueError("answers has rows without a stratum")
    per_unit = np.empty(units.n, dtype=np.int64)
    per_unit[units.row_unit[::-1]] = codes[::-1]
    if np.any(per_unit[units.row_unit] != codes):
        raise ValueError("stratum must be constant within each (response_id, agency)")
    pairs = pd.unique(per_unit * np.int64(len(units.grp_cats)) + units.grp_u)
    if pd.Series(pairs // len(units.grp_cats)).duplicated().any():
        raise ValueError("a stratum (sampling cell) must belong to one group (form)")
    return cats.take(per_unit).to_numpy()


def _score_frame(units: _Units, sums: np.ndarray, cnt: np.ndarray, crit_names: Sequence) -> pd.DataFrame:
    """Respondent score frame from value sums and counts per criterion × unit."""
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(cnt > 0, sums / np.where(cnt > 0, cnt, 1), np.nan)
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
    crit_names, crit_of_item = _criterion_index(item_cats, item_criterion, criteria)
    units = _units(answers)
    row_crit = crit_of_item[item_code]
    ok = (row_crit >= 0) & ~np.isnan(v)
    # bin 0 collects the rows without a valid value or criterion; bin j + 1 is criterion j
    n_bins = len(crit_names) + 1
    sums = units.bin_sums(np.where(ok, row_crit + 1, 0).astype(np.intp), n_bins, np.where(ok, v, 0.0))[1:]
    cnt = units.bin_sums(np.where(ok, row_crit + 1, 0).astype(np.intp), n_bins)[1:]
    return _score_frame(units, sums, cnt, crit_names)


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


def group_shares(table: pd.DataFrame, value: str | None, *, group_weights: Mapping[str, Mapping[str, float]],
                 min_respondents: Mapping[str, int], n_col: str = "n") -> np.ndarray:
    """The one qualifying-group rule: w(g) for the rows whose group counts, 0 for the others.

    A row (``agency_kind``, ``group``, *n_col*, *value*) counts when the group has a weight for the
    agency's kind, at least n_min(g) respondents (:data:`DEFAULT_MIN_RESPONDENTS` when the group has
    no entry) and, if *value* is given, a value. Every combination over groups (points,
    satisfaction, positive rates) and every weight derived from it use this function.
    """
    conf = {(k, g): float(w) for k, gw in group_weights.items() for g, w in gw.items()}
    w = np.array([conf.get((k, g), np.nan) for k, g in zip(table["agency_kind"].astype(str),
                                                              table["group"].astype(str))], dtype=float)
    n_min = table["group"].astype(str).map(lambda g: min_respondents.get(g, DEFAULT_MIN_RESPONDENTS)).to_numpy(float)
    n = table[n_col].to_numpy(dtype=float)
    ok = ~np.isnan(w) & (n >= n_min) & (n > 0)
    if value is not None:
        ok &= table[value].notna().to_numpy()
    return np.where(ok, w, 0.0)


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
    full["_wq"] = group_shares(full, value, group_weights=group_weights, min_respondents=min_respondents,
                               n_col=n_col)
    full["_q"] = full["_wq"] > 0
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
        missing_groups, points_exact, points`` (``points_exact`` = max_points · score, unrounded).
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


def _rate_groups(units: _Units, n_ans_u: np.ndarray, n_pos_u: np.ndarray) -> pd.DataFrame:
    """Counts per (agency, group, key): sheets with a valid answer, valid answers, positive answers.

    Parameters
    ----------
    units : _Units
    n_ans_u, n_pos_u : ndarray, shape (n_key, n_units)
        Valid and positive answers of every unit for every key (criterion, or a single row).

    Returns
    -------
    DataFrame
        ``agency, agency_kind, _key, group, n, n_answers, n_positive`` for the cells with answers.
    """
    n_key = n_ans_u.shape[0]
    n_ag, n_gr = len(units.ag_cats), len(units.grp_cats)
    cell_u = units.ag_u * n_gr + units.grp_u

    def per_cell(x):
        """Σ over units per (agency, group) cell for every key, flattened as (cell, key)."""
        sums = np.vstack([np.bincount(cell_u, weights=row, minlength=n_ag * n_gr) for row in x])
        return sums.T.ravel()

    n_ans = per_cell(n_ans_u)
    n_pos = per_cell(n_pos_u)
    n_sheet = per_cell(n_ans_u > 0)
    nz = np.flatnonzero(n_ans)
    key = nz % n_key
    gr = (nz // n_key) % n_gr
    ag = nz // (n_key * n_gr)
    return pd.DataFrame({"agency": units.ag_cats.take(ag),
                         "agency_kind": units.kind_cats.take(units.kind_a[ag]),
                         "_key": key, "group": units.grp_cats.take(gr), "n": n_sheet[nz].round().astype(np.int64),
                         "n_answers": n_ans[nz].round().astype(np.int64),
                         "n_positive": n_pos[nz].round().astype(np.int64)})


def _unit_tables(cells: _Cells, units: _Units, crit_of_item: np.ndarray, n_crit: int, cfg: _Config):
    """Everything scoring needs per unit, from two passes over the answers.

    Returns
    -------
    sums, cnt : ndarray, shape (n_crit, n_units)
        Sum and number of the valid item values per criterion × unit.
    sat_ans, sat_pos : ndarray, shape (1, n_units)
        Valid and positive answers on the satisfaction scale.
    rate_ans, rate_pos : ndarray, shape (n_crit + 1, n_units)
        Valid and positive answers on the positive-rate scales per criterion, and over all items
        (last row).

    Notes
    -----
    Pass 1 sums the values per unit × criterion in row order (so the sums are bit-for-bit those of
    a bincount over the valid rows). Pass 2 counts rows per unit × (bucket, positive) where a
    bucket is a distinct (criterion, satisfaction scale?, rate scale?) combination of the items;
    every count above is an integer sum of bucket rows. (A small loop of contiguous vector adds
    rather than a matrix product: a 9 × 1e6 by 8 × 9 product through BLAS is much slower.)
    """
    n_cols = cells.n_cols
    valid = ~np.isnan(cells.value)
    crit_cell = cells.per_cell(crit_of_item)

    # pass 1: value sums; bin 0 collects blanks, excluded options and items outside the criteria
    bin1 = np.where(valid & (crit_cell >= 0), crit_cell + 1, 0).astype(np.intp)
    value0 = np.where(valid, cells.value, 0.0)
    weights = value0.take(cells.cell)
    # one row-sized key buffer serves both passes: touching fresh memory costs as much as the pass
    key = np.empty(cells.cell.size, dtype=np.intp)
    sums = units.bin_sums(np.take(bin1, cells.cell, out=key), n_crit + 1, weights)[1:]
    del weights

    # pass 2: counts per bucket and positive flag; bin 0 collects rows without a valid value
    scale_of_item = cells.scale_of_item
    sat = np.array([cells.scale_names[s] == cfg.satisfaction_scale for s in scale_of_item], dtype=bool)
    rate = np.array([cells.scale_names[s] in cfg.rate_scales for s in scale_of_item], dtype=bool)
    # bucket = distinct (criterion, sat, rate) triple, packed in one integer: (crit + 1) * 4 + sat * 2 + rate
    triples, bucket_of_item = np.unique((crit_of_item + 1) * 4 + sat * 2 + rate, return_inverse=True)
    b_crit, b_sat, b_rate = triples // 4 - 1, (triples // 2) % 2, triples % 2
    positive = np.zeros((len(scale_of_item), n_cols), dtype=bool)
    for i, si in enumerate(scale_of_item):
        codes = cfg.positive.get(cells.scale_names[si], ())
        positive[i, :-1] = [o in codes for o in cells.opt_cats]
    bin2 = np.where(valid, 1 + 2 * cells.per_cell(bucket_of_item) + positive.ravel(), 0).astype(np.intp)
    n_b = len(triples)
    counts = units.bin_sums(np.take(bin2, cells.cell, out=key), 1 + 2 * n_b)
    del key
    # fold the bucket rows onto the criteria, the satisfaction row and the overall rate row;
    # row 1 + 2b counts the valid non-positive answers of bucket b, row 2 + 2b the positive ones
    n = units.n
    cnt = np.zeros((n_crit, n), dtype=np.int64)
    sat_ans, sat_pos = np.zeros((1, n), dtype=np.int64), np.zeros((1, n), dtype=np.int64)
    rate_ans, rate_pos = np.zeros((n_crit + 1, n), dtype=np.int64), np.zeros((n_crit + 1, n), dtype=np.int64)
    for b in range(n_b):
        pos = counts[2 + 2 * b]
        ans = counts[1 + 2 * b] + pos
        c = b_crit[b]
        if c >= 0:
            cnt[c] += ans
        if b_sat[b]:
            sat_ans[0] += ans
            sat_pos[0] += pos
        if b_rate[b]:
            if c >= 0:
                rate_ans[c] += ans
                rate_pos[c] += pos
            rate_ans[-1] += ans
            rate_pos[-1] += pos
    return sums, cnt, sat_ans, sat_pos, rate_ans, rate_pos


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

    cells = _answer_cells(answers, cfg.coefficients, item_scale)
    units = _units(answers)
    criteria = sorted(set(table["criterion"]))
    _, crit_of_item = _criterion_index(cells.item_cats, item_crit, criteria)
    n_crit = len(criteria)
    sums, cnt, sat_ans, sat_pos, rate_ans, rate_pos = _unit_tables(cells, units, crit_of_item, n_crit, cfg)
    del cells
    scores = _score_frame(units, sums, cnt, criteria)
    scores["stratum"] = _unit_strata(answers, units, scores["group"])
    means = group_means(scores, criteria)
    points = criterion_points(means, cfg)

    # satisfaction (TLHL) and positive rates (TLTC)
    sat_groups = _rate_groups(units, sat_ans, sat_pos).drop(columns="_key")
    sat_groups["p"] = sat_groups["n_positive"] / sat_groups["n_answers"]
    lo, hi = proportion_confint(sat_groups["n_positive"].to_numpy(), sat_groups["n_answers"].to_numpy(),
                                alpha=1 - cfg.level, method="wilson")
    sat_groups["ci_lo"], sat_groups["ci_hi"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    ag_first = pd.unique(units.ag_u)  # agencies in order of first appearance, as scores lists them
    agencies = pd.DataFrame({"agency": units.ag_cats.take(ag_first),
                             "agency_kind": units.kind_cats.take(units.kind_a[ag_first])})
    satisfaction = _combine_rates(agencies, sat_groups, [], cfg, "tlhl")
    cd = _composite_design(scores, units)
    sat_y, sat_w = _satisfaction_inputs(units, sat_groups, sat_ans, sat_pos, cfg)
    estimates, total_est, total_cov, sat_est = _score_estimates(scores, means, points, criteria, cfg, units, cd,
                                                                sat_y, sat_w)
    satisfaction = satisfaction.merge(sat_est, on="agency", how="left")
    low = imprecise(satisfaction["tlhl"], satisfaction["tlhl_se"], satisfaction["tlhl_ci_lo"],
                    satisfaction["tlhl_ci_hi"], 100.0, max_half_width=cfg.max_half_width)
    low |= satisfaction.pop("_lonely").fillna(False).to_numpy(dtype=bool) & satisfaction["tlhl"].notna().to_numpy()
    satisfaction = _add_flag(satisfaction, low, FLAG_LOW_RELIABILITY)

    rate_groups = _rate_groups(units, rate_ans[:-1], rate_pos[:-1])
    rate_groups["criterion"] = np.asarray(criteria, dtype=object)[rate_groups.pop("_key").to_numpy()] \
        if len(rate_groups) else pd.Series(dtype=object)
    all_groups = _rate_groups(units, rate_ans[-1:], rate_pos[-1:]).drop(columns="_key")
    all_groups["criterion"] = "ALL"
    rg = pd.concat([rate_groups, all_groups], ignore_index=True)
    rg["p"] = rg["n_positive"] / rg["n_answers"]
    positive_rates = _combine_rates(agencies, rg, ["criterion"], cfg, "tltc")

    # low reliability: an interval too wide, no variance, or a sampling cell with a single sheet
    low = estimates.loc[imprecise(estimates["est"], estimates["se"], estimates["ci_lo"], estimates["ci_hi"], 1.0,
                                  max_half_width=cfg.max_half_width)
                        | (estimates["lonely"] & estimates["est"].notna()), ["agency", "criterion"]]
    points = _add_flag(points, points.merge(low.assign(_low=True), on=["agency", "criterion"], how="left")["_low"]
                       .fillna(False).to_numpy(dtype=bool), FLAG_LOW_RELIABILITY)
    totals = _totals(points, satisfaction, positive_rates, total_est, cfg.max_half_width)
    flags = pd.concat([
        points.loc[points["flag"] != "", ["agency", "criterion", "flag", "missing_groups"]].assign(indicator="points"),
        satisfaction.loc[satisfaction["flag"] != "", ["agency", "flag", "missing_groups"]].assign(
            indicator="tlhl", criterion=None),
        positive_rates.loc[positive_rates["flag"] != "", ["agency", "criterion", "flag", "missing_groups"]].assign(
            indicator="tltc"),
    ], ignore_index=True)[["agency", "indicator", "criterion", "flag", "missing_groups"]]
    return ScoreResult(scores, means, points, totals, satisfaction, sat_groups, positive_rates, estimates,
                       total_cov, flags)


def _add_flag(frame: pd.DataFrame, where: np.ndarray, flag: str) -> pd.DataFrame:
    """*frame* with *flag* appended to its comma-separated ``flag`` column on the rows *where*."""
    out = frame.copy()
    old = out["flag"].fillna("").astype(str)
    out["flag"] = np.where(where, np.where(old == "", flag, old + "," + flag), old)
    return out


def _satisfaction_inputs(units, sat_groups, sat_ans, sat_pos, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Unit values and weights that make TLHL a composite like the points: each group's share of
    positive answers p_g = Σ positive / Σ answers over its sheets is the weighted mean of the sheets'
    shares with weights (answers of the sheet) · w(g) / (answers of the group)."""
    g = sat_groups.assign(_share=group_shares(sat_groups, "p", group_weights=cfg.group_weights,
                                              min_respondents=cfg.min_respondents))
    n_gr = len(units.grp_cats)
    per_cell = np.zeros(len(units.ag_cats) * n_gr)
    at = units.ag_cats.get_indexer(g["agency"]) * n_gr + units.grp_cats.get_indexer(g["group"])
    per_cell[at] = np.where(g["_share"] > 0, g["_share"] / g["n_answers"].where(g["n_answers"] > 0, 1), 0.0)
    answers = sat_ans[0].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(answers > 0, sat_pos[0] / answers, np.nan)
    return y, per_cell[units.ag_u * n_gr + units.grp_u] * answers


def _columns(core: _DomainCore, cols: slice) -> _DomainCore:
    """The domain core of some of its value columns."""
    return replace(core, wsum=core.wsum[:, cols], mean=core.mean[:, cols], count=core.count[:, cols],
                   wsq=core.wsq[:, cols], rss=core.rss[:, cols], z=core.z[cols], cell_wpos=core.cell_wpos[cols])


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


@dataclass(frozen=True)
class _CompositeDesign:
    """The design of the composite estimates, built once per round: strata = sampling cells, PSU =
    respondent, and the agency × group domain of every unit (from the units' integer codes)."""

    design: object
    dom: np.ndarray           # per unit: agency × group domain, agency-major
    labels: pd.DataFrame      # agency, group of every domain


def _composite_design(scores: pd.DataFrame, units: _Units) -> _CompositeDesign:
    n_gr = len(units.grp_cats)
    key = units.ag_u.astype(np.int64) * n_gr + units.grp_u
    present = np.zeros(len(units.ag_cats) * n_gr, dtype=bool)
    present[key] = True
    idx = np.flatnonzero(present)
    dom = (np.cumsum(present) - 1)[key]
    labels = pd.DataFrame({"agency": units.ag_cats.take(idx // n_gr), "group": units.grp_cats.take(idx % n_gr)})
    return _CompositeDesign(_design(scores, "stratum", "response_id", None), dom, labels)


def _composite(cd: _CompositeDesign, y: np.ndarray, w: np.ndarray, lonely_psu: str):
    """Fixed-share composite means per agency and their linearised variance.

    *cd* holds the design and the agency × group domains of the units; *y* and *w* (K × units) the values and the unit weights, which within each agency × group sum to the group's
    share w(g) (0 where the group does not qualify). The estimate is Σ_g a_g M_g with a_g the group's
    share of the agency's total and M_g the weighted group mean; a unit's influence is
    a_g · u (y − M_g) / Σ_g u, centred at its own group's mean.

    Returns the agency-level domain core, the design, the agency labels, each agency's df, the
    K × D flags of estimates touching a single-PSU stratum, and the variances (D × K).
    """
    design, dom_tg, labels_tg = cd.design, cd.dom, cd.labels
    # agency-major domains: each agency's cells stay contiguous, and strata (nested in groups) stay
    # contiguous within an agency
    core = _core(design, dom_tg, len(labels_tg), y, w)
    agency_of, ag_labels = pd.factorize(labels_tg["agency"], sort=True)
    labels = pd.DataFrame({"agency": ag_labels})
    n_ag = len(labels)

    def per_agency(x):  # D_tg × K -> D_agency × K
        out = np.zeros((n_ag, x.shape[1]))
        np.add.at(out, agency_of, np.nan_to_num(x))
        return out

    share = per_agency(core.wsum)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(share > 0, per_agency(core.wsum * core.mean) / np.where(share > 0, share, 1.0), np.nan)
        a_g = np.where(share[agency_of] > 0, core.wsum / np.where(share > 0, share, 1.0)[agency_of], 0.0)
    z = core.z * a_g[core.g_dom].T
    rss = per_agency(core.rss + core.wsum * (np.nan_to_num(core.mean) - np.nan_to_num(score)[agency_of]) ** 2)
    core = replace(core, wsum=share, mean=score, count=per_agency(core.count), wsq=per_agency(core.wsq), rss=rss,
                   g_dom=agency_of[core.g_dom], z=z)
    var, lonely = _variance_and_lonely(design, core, n_ag, lonely_psu)
    # a respondent belongs to one group: its cells stay unique PSU × agency pairs
    dfs = _domain_df(design, core.g_psu, core.g_dom, n_ag, core.cell_pos, unique_cells=True)
    return core, design, labels, dfs, lonely, var


def _score_estimates(scores, means, points, criteria, cfg, units, cd, sat_y, sat_w):
    """Design-based SEs of S(t, c), of the points and of the survey-points total.

    S(t, c) = Σ_g a_g M(g, t, c) is a composite of group means with fixed shares a_g = w(g) / Σ w
    over the qualifying groups, so its influence value is a_g (m(r, c) − M(g, t, c)) / n(g, t, c):
    each sheet is centred at its own group's mean, not at S, and the spread between groups does not
    enter the variance. Strata are the sampling cells (``stratum``), PSUs the respondents; a sheet
    rating several agencies (HĐ-CT, LĐ-CP) makes their estimates covary. Strata with one PSU follow
    ``cfg.lonely_psu`` and every estimate touching one is reported (``lonely``). Intervals use each
    agency's degrees of freedom (its PSUs minus its strata).

    The sums come from the vectorised engine of :func:`domain_means` with agency × group domains
    (one pass over the units), rescaled to agency level; no unit-level weight columns are built.
    """
    gm = means.assign(_share=group_shares(means, "mean", group_weights=cfg.group_weights,
                                          min_respondents=cfg.min_respondents))
    gm["_unit_w"] = np.where(gm["_share"] > 0, gm["_share"] / gm["n"].where(gm["n"] > 0, 1), 0.0)
    # unit weight per criterion × (agency, group) cell; cells without a group mean keep weight 0
    n_gr = len(units.grp_cats)
    cell_w = np.zeros((len(criteria), len(units.ag_cats) * n_gr))
    at_crit = pd.Index(criteria).get_indexer(gm["criterion"])
    at_cell = units.ag_cats.get_indexer(gm["agency"]) * n_gr + units.grp_cats.get_indexer(gm["group"])
    cell_w[at_crit, at_cell] = gm["_unit_w"].to_numpy()
    cell_u = units.ag_u * n_gr + units.grp_u
    # the criteria and, as a last column, satisfaction: one pass of the engine for both
    k = len(criteria)
    y = np.empty((k + 1, len(scores)))
    w = np.empty_like(y)
    for j, c in enumerate(criteria):
        y[j] = scores[c].to_numpy(dtype=np.float64)
        w[j] = cell_w[j].take(cell_u)
        w[j, np.isnan(y[j])] = 0.0  # a unit without a score on c carries no weight for c
    y[k], w[k] = sat_y, sat_w
    core_all, design, labels, dfs, lonely_all, var_all = _composite(cd, y, w, cfg.lonely_psu)
    del y, w
    sat = _table(_columns(core_all, slice(k, k + 1)), var_all[:, k:], dfs, labels, ["tlhl"], True, cfg.level,
                 "replace")
    sat_est = pd.DataFrame({"agency": sat["agency"], "tlhl_se": 100 * sat["se"], "tlhl_ci_lo": 100 * sat["ci_lo"],
                            "tlhl_ci_hi": 100 * sat["ci_hi"], "tlhl_df": sat["df"], "_lonely": lonely_all[:, k]})
    core, var, lonely = _columns(core_all, slice(0, k)), var_all[:, :k], lonely_all[:, :k]
    score = core.mean
    n_ag = len(labels)
    est = _table(core, var, dfs, labels, list(criteria), False, cfg.level, "replace")
    est["lonely"] = lonely.ravel()
    est = est.rename(columns={"variable": "criterion"})
    est = est.merge(points[["agency", "agency_kind", "criterion", "max_points"]], on=["agency", "criterion"],
                    how="right")
    est["lonely"] = est["lonely"].fillna(False).astype(bool)
    for col in ("est", "se", "ci_lo", "ci_hi"):
        est[f"points_{col}"] = est["max_points"] * est[col]
    est = est.drop(columns=["deff", "cv"]).sort_values(["agency", "criterion"]).reset_index(drop=True)
    est = est[["agency", "agency_kind", "criterion", *[c for c in est.columns
                                                       if c not in ("agency", "agency_kind", "criterion")]]]

    # total: Σ_c MaxPts_c S_c, influence values summed over criteria within each PSU × agency cell
    kind_of = units.kind_cats.take(units.kind_a[units.ag_cats.get_indexer(labels["agency"])])
    coef = np.array([[cfg.max_points[k].get(c, 0.0) for c in criteria] for k in kind_of])
    needed = coef > 0
    total = np.where(np.any(needed & np.isnan(score), axis=1), np.nan, np.nansum(coef * score, axis=1))
    z_total = np.einsum("kg,gk->g", core.z, coef[core.g_dom])
    cov = _psu_covariance(design, core.g_psu, core.g_dom, z_total, n_ag, cfg.lonely_psu)
    bad = np.isnan(total)
    cov[bad, :] = np.nan
    cov[:, bad] = np.nan
    idx = pd.Index(labels["agency"], name="agency")
    total_est = pd.DataFrame({"est": total, "se": np.sqrt(np.diag(cov))}, index=idx)
    tq = np.where(dfs >= 1, stats.t.ppf(0.5 + cfg.level / 2, np.maximum(dfs, 1)), np.nan)
    total_est["ci_lo"] = total_est["est"] - tq * total_est["se"]
    total_est["ci_hi"] = total_est["est"] + tq * total_est["se"]
    total_est["df"] = dfs
    total_est["lonely"] = (lonely & needed).any(axis=1)
    return est, total_est, pd.DataFrame(cov, index=idx, columns=idx), sat_est


def _totals(points, satisfaction, positive_rates, total_est, max_half_width):
    g = points.groupby(["agency", "agency_kind"], sort=True)
    out = pd.DataFrame({
        "survey_points": g["points_exact"].sum(min_count=1),
        "points_available": g["points_exact"].sum(),
        "max_points": g["max_points"].sum(),
        "n_criteria_missing": g["points"].apply(lambda s: int(s.isna().sum())),
    }).reset_index()
    out.loc[out["n_criteria_missing"] > 0, "survey_points"] = np.nan
    # the sum of the unrounded points, rounded once (not a sum of rounded points)
    out["survey_points"] = round_half_away(out["survey_points"], POINTS_DECIMALS)
    out["points_available"] = round_half_away(out["points_available"], POINTS_DECIMALS)
    out["flag"] = np.where(out["n_criteria_missing"] > 0, FLAG_NO_DATA, "")
    out = out.merge(satisfaction[["agency", "tlhl"]], on="agency", how="left")
    overall = positive_rates.loc[positive_rates["criterion"] == "ALL", ["agency", "tltc"]]
    out = out.merge(overall, on="agency", how="left")
    te = total_est.rename(columns=lambda c: f"survey_points_{c}")
    out = out.merge(te, left_on="agency", right_index=True, how="left")
    low = imprecise(out["survey_points_est"], out["survey_points_se"], out["survey_points_ci_lo"],
                    out["survey_points_ci_hi"], out["max_points"], max_half_width=max_half_width)
    low |= out["survey_points_lonely"].fillna(False).to_numpy(dtype=bool)
    out = out.drop(columns=["survey_points_est", "survey_points_lonely"])
    return _add_flag(out, low & out["survey_points"].notna().to_numpy(), FLAG_LOW_RELIABILITY)
