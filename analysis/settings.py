"""A round's scoring settings: checked once, normalised, and the qualifying-group rule they define.

:func:`validate_settings` turns the plain settings dict (documented in :mod:`analysis.scoring`) into the
configuration every scoring function reads, raising ValueError that names the setting at fault, so that
a wrong methodology file stops before any number is computed. :func:`group_shares` is the one rule for
which respondent groups count towards an agency's value and with what weight; the points, satisfaction,
positive rates, their variances and the published answer weights all use it, and with it the small-group
rule (``min_group``): a group too small to be shown on its own enters no figure.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis._checks import require_columns, require_frame, require_level
from analysis.estimation import LONELY_RULES
from analysis.reliability import DEFAULT_MAX_HALF_WIDTH, DEFAULT_PRECISION

__all__ = ["DEFAULT_LONELY_PSU", "DEFAULT_MIN_GROUP", "DEFAULT_MIN_RESPONDENTS", "LONELY_PSU_RULES",
           "OPTIONAL_SETTINGS_KEYS", "PRESETS", "SETTINGS_KEYS", "coefficient_preset", "group_shares",
           "validate_settings"]

#: minimum respondents of a group about an agency when the settings name none: one response carries no variance
DEFAULT_MIN_RESPONDENTS = 2
#: smallest group (respondents of a form about one agency) a figure may use when the settings name none:
#: any group may
DEFAULT_MIN_GROUP = 1
#: variance of a sampling cell with one respondent: centred at the mean of all respondents (R "adjust")
DEFAULT_LONELY_PSU = "adjust"
#: coefficient presets of a scale (see :func:`coefficient_preset`)
PRESETS = ("linear", "ratio", "top2")
#: variance rules for a sampling cell with a single respondent (R's survey.lonely.psu)
LONELY_PSU_RULES = LONELY_RULES
#: The settings schema, one name per setting: a round's methodology file uses these keys as they are.
SETTINGS_KEYS = ("coefficients", "max_points", "group_weights", "min_respondents", "satisfaction_scale",
                 "positive")
OPTIONAL_SETTINGS_KEYS = ("min_answered_share", "max_half_width", "lonely_psu", "min_group", "level",
                          "excluded_options", "positive_rate_scales", "precision", "min_variance_responses")
#: smallest group whose own variance is estimated when the settings name none: any group of n_min responses
DEFAULT_MIN_VARIANCE_RESPONSES = 1
_PRESETS = PRESETS
_SETTINGS_KEYS = SETTINGS_KEYS


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
    min_group: int = DEFAULT_MIN_GROUP
    #: the precision rules of :func:`analysis.precision_reasons` (``min_n``, ``min_n_eff``, ``min_df``,
    #: ``max_half_width_pct``)
    precision: dict = None


def validate_settings(settings: Mapping[str, Any], *, items: pd.DataFrame | Mapping,
                      scales: Mapping[str, Sequence[str]]) -> _Config:
    """Check a round's settings against the items and scales; raise ValueError naming the setting.

    The keys are :data:`SETTINGS_KEYS` and, optionally, :data:`OPTIONAL_SETTINGS_KEYS` (other keys are
    the caller's and ignored); ``min_answered_share`` is the validity rule's
    (:func:`analysis.answered_enough`). Returns the normalised configuration used by :func:`score_round`
    (coefficients resolved to option → value mappings, excluded options mapped to None).
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
    # a variance from 2 or 3 responses says next to nothing: a group needs min_variance_responses to count at all
    min_var = settings.get("min_variance_responses", DEFAULT_MIN_VARIANCE_RESPONSES)
    if isinstance(min_var, bool) or not isinstance(min_var, (int, np.integer)) or min_var < 1:
        raise ValueError(f"settings['min_variance_responses'] must be an integer >= 1, got {min_var!r}")
    n_min = {**{g: DEFAULT_MIN_RESPONDENTS for gw in kinds_gw.values() for g in gw}, **n_min}
    n_min = {g: max(int(v), int(min_var)) for g, v in n_min.items()}
    precision = _precision(settings.get("precision", {}))
    min_group = settings.get("min_group", DEFAULT_MIN_GROUP)
    if isinstance(min_group, bool) or not isinstance(min_group, (int, np.integer)) or min_group < 1:
        raise ValueError(f"settings['min_group'] must be an integer >= 1, got {min_group!r}")
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
    share = settings.get("min_answered_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ValueError(f"settings['min_answered_share'] must be a number in [0, 1], got {share!r}")
    level = require_level(settings.get("level", 0.95))
    max_half_width = settings.get("max_half_width", DEFAULT_MAX_HALF_WIDTH)
    if isinstance(max_half_width, bool) or not isinstance(max_half_width, (int, float)) \
            or not 0 < max_half_width <= 1:
        raise ValueError(f"settings['max_half_width'] must be a number in (0, 1], got {max_half_width!r}")
    return _Config(coefficients, max_points, group_weights, {g: int(v) for g, v in n_min.items()}, sat,
                   positive, rate_scales, level, float(max_half_width), lonely_psu, int(min_group), precision)


def _precision(spec: Any) -> dict:
    """The ``precision`` setting completed with :data:`analysis.DEFAULT_PRECISION`."""
    if not isinstance(spec, Mapping):
        raise ValueError("settings['precision'] must map min_n, min_n_eff, min_df, max_half_width_pct to numbers")
    unknown = sorted(set(spec) - set(DEFAULT_PRECISION))
    if unknown:
        raise ValueError(f"settings['precision'] has unknown key(s) {unknown}; use {sorted(DEFAULT_PRECISION)}")
    out = {**DEFAULT_PRECISION, **spec}
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                or (key == "max_half_width_pct" and not 0 < value <= 1):
            raise ValueError(f"settings['precision'][{key!r}] must be a number >= 0"
                             + (" in (0, 1]" if key == "max_half_width_pct" else "") + f", got {value!r}")
    return out


def group_shares(table: pd.DataFrame, value: str | None, *, group_weights: Mapping[str, Mapping[str, float]],
                 min_respondents: Mapping[str, int], n_col: str = "n", min_group: int = DEFAULT_MIN_GROUP,
                 groups: pd.DataFrame | None = None) -> np.ndarray:
    """The one qualifying-group rule: w(g) for the rows whose group counts, 0 for the others.

    A row (``agency``, ``agency_kind``, ``group``, *n_col*, *value*) counts when the group has a weight for
    the agency's kind, at least n_min(g) respondents (:data:`DEFAULT_MIN_RESPONDENTS` when the group has
    no entry), if *value* is given, a value, and at least *min_group* respondents about the agency in all
    (*groups*: ``agency, group, respondents``, as :attr:`analysis.ScoreResult.groups` lists them). The last
    condition is the small-group rule: a group too small to be shown on its own enters no figure, not even
    combined with larger groups, since a published combination and the larger groups' own published
    figures would give its value back; the others are renormalised as for a missing group. Every
    combination over groups (points, satisfaction, positive rates) and every weight derived from it use
    this function.
    """
    conf = {(k, g): float(w) for k, gw in group_weights.items() for g, w in gw.items()}
    w = np.array([conf.get((k, g), np.nan) for k, g in zip(table["agency_kind"].astype(str),
                                                              table["group"].astype(str))], dtype=float)
    n_min = table["group"].astype(str).map(lambda g: min_respondents.get(g, DEFAULT_MIN_RESPONDENTS)).to_numpy(float)
    n = table[n_col].to_numpy(dtype=float)
    ok = ~np.isnan(w) & (n >= n_min) & (n > 0)
    if value is not None:
        ok &= table[value].notna().to_numpy()
    if min_group > DEFAULT_MIN_GROUP:
        ok &= _group_respondents(table, groups) >= min_group
    return np.where(ok, w, 0.0)


def _group_respondents(table: pd.DataFrame, groups: pd.DataFrame | None) -> np.ndarray:
    """Respondents of each row's group about its agency (``agency``, ``group``), 0 where *groups* has none."""
    if groups is None:
        raise ValueError("the small-group rule (min_group > 1) needs the groups' respondents")
    keys = pd.MultiIndex.from_arrays([groups["agency"].astype(str), groups["group"].astype(str)])
    rows = pd.MultiIndex.from_arrays([table["agency"].astype(str), table["group"].astype(str)])
    at = keys.get_indexer(rows)
    sizes = np.append(groups["respondents"].to_numpy(dtype=float), 0.0)  # the last slot answers "none" (-1)
    return sizes[at]
