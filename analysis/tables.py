"""The published tables of a scored round: per criterion, per agency, per item, per answer.

:func:`analysis.score_round` computes the estimates; these functions turn them, with the answers
and the round's settings, into the tables a round publishes (criteria, agency summary with ranks,
item distributions, answer weights and their diagnostics). They live here, beside the scoring, so
that every published number is computed in one place and by the same rules (the qualifying-group
rule is :func:`analysis.group_shares`, the small-group rule with it: a group under the settings'
``min_group`` respondents enters no figure, and an agency that has only such groups is withheld: no
figure, no respondent count, no rank).

``answers`` is the long answers frame of :func:`analysis.score_round` (``ANSWER_COLUMNS``) with
further categorical columns: ``criterion`` and ``scale`` of the answer's item, and, where a function
names them, the response (*response*: one id per response, such as ``response_uid``, where
``response_id`` is the respondent, who may give several), the item code as published (*item*, which
differs from ``item`` when the versions of a form disagree) and ``valid`` (counts towards the answered
items). ``agencies`` has one row per agency of the round: ``code, kind, name``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.ranking import rank_intervals
from analysis.scoring import FLAG_LOW_RELIABILITY, FLAG_NO_DATA, FLAG_WITHHELD, ScoreResult
from analysis.settings import _Config, group_shares
from analysis.weighting import weight_diagnostics

__all__ = ["agency_ranks", "answer_weights", "criteria_table", "item_distributions", "option_table",
           "pair_codes", "response_weight_diagnostics", "summary_table"]


def option_table(cfg: _Config) -> pd.DataFrame:
    """scale, option → coefficient value (NaN when excluded) and whether it counts as positive."""
    rows = [(scale, option, np.nan if value is None else value, option in cfg.positive.get(scale, ()))
            for scale, options in cfg.coefficients.items() for option, value in options.items()]
    return pd.DataFrame(rows, columns=["scale", "option", "value", "positive"])


def pair_codes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Code of every distinct (a, b) pair of two integer columns, and the number of pairs."""
    b_code, b_uniq = pd.factorize(b)
    codes, uniq = pd.factorize(a.astype(np.int64) * len(b_uniq) + b_code)
    return codes, len(uniq)


def _row_lookup(rows: pd.DataFrame, table: pd.DataFrame, keys: list[str], column: str) -> np.ndarray:
    """``table[column]`` for every row of ``rows`` matched on ``keys`` (NaN where none matches), as a
    left merge would give; ``rows[keys]`` are categorical. The small table is spread into a dense
    array over the key categories and read with the rows' codes, instead of merging millions of rows."""
    cats = [rows[key].cat.categories for key in keys]
    dense = np.full([len(c) + 1 for c in cats], np.nan)  # the extra last slot answers a missing key (-1)
    at = [c.get_indexer(table[key].astype(str)) for c, key in zip(cats, keys)]
    found = np.logical_and.reduce([i >= 0 for i in at])
    dense[tuple(i[found] for i in at)] = table[column].to_numpy(dtype=float)[found]
    return dense[tuple(rows[key].cat.codes.to_numpy() for key in keys)]


def _withheld_agencies(result: ScoreResult | None) -> list[str]:
    """The agencies with answers whose every group is under ``min_group``."""
    if result is None:
        return []
    groups = _str_keys(result.groups)
    return sorted(set(groups["agency"]) - set(groups.loc[~groups["small"], "agency"]))


def _has_flag(flags: pd.Series, flag: str) -> np.ndarray:
    """Whether each comma-separated flag list holds *flag*."""
    return flags.fillna("").astype(str).map(lambda f: flag in f.split(",")).to_numpy(dtype=bool)


def _str_keys(frame: pd.DataFrame, columns=("agency", "agency_kind", "group")) -> pd.DataFrame:
    frame = frame.copy()
    for col in columns:
        if col in frame:
            frame[col] = frame[col].astype(str)
    return frame


def answer_weights(answers: pd.DataFrame, cfg: _Config, result: ScoreResult | None, *,
                   response: str) -> pd.DataFrame:
    """Every answer's coefficient ``value``, whether it is ``positive`` (1/0, NaN when excluded or blank), its
    group's weight ``group_weight``, the group's share a_g = w(g) / W(t, c) of the criterion's score
    ``group_share`` and, on the satisfaction scale, of the agency's satisfaction ``satisfaction_share`` (0 where
    the group does not count), and its ``weight`` in S(t, c).

    weight = w(g) / W(t, c) / n(g, t, c) / k(r, t, c), where W is the summed weight of the qualifying
    groups, n the group's responses with a valid answer on c and k the response's valid items of c; so
    S(t, c) = Σ weight · value over the answers about t on c, which lets an analyst recompute every
    score from the answers alone. Excluded answers and groups that do not qualify (among them the groups
    under ``min_group`` respondents) have weight 0.
    Aligned to *answers* (one row per answer: millions, so look-ups go through category codes).
    """
    options = option_table(cfg)
    value = _row_lookup(answers, options, ["scale", "option"], "value")
    out = pd.DataFrame({"value": value}, index=answers.index)
    out["positive"] = np.where(np.isnan(value), np.nan, _row_lookup(answers, options, ["scale", "option"], "positive"))
    if result is None or answers.empty:
        out["group_weight"] = np.nan
        out["group_share"] = 0.0
        out["satisfaction_share"] = 0.0
        out["weight"] = 0.0
        return out
    gw = pd.DataFrame([(k, g, w) for k, d in cfg.group_weights.items() for g, w in d.items()],
                      columns=["agency_kind", "group", "group_weight"])
    means = _str_keys(result.group_means)
    means["share"] = group_shares(means, "mean", group_weights=cfg.group_weights,
                                  min_respondents=cfg.min_respondents, min_group=cfg.min_group,
                                  groups=_str_keys(result.groups))
    out["group_weight"] = _row_lookup(answers, gw, ["agency_kind", "group"], "group_weight")
    share = _row_lookup(answers, means, ["agency", "group", "criterion"], "share")
    n_group = _row_lookup(answers, means, ["agency", "group", "criterion"], "n")
    weight_used = _row_lookup(answers, _str_keys(result.points), ["agency", "criterion"], "weight_used")
    valid = ~np.isnan(value)
    # k: valid answers of the same response × agency × criterion
    unit, _ = pair_codes(answers[response].cat.codes.to_numpy(), answers["agency"].cat.codes.to_numpy())
    cell, n_cells = pair_codes(unit, answers["criterion"].cat.codes.to_numpy())
    k = np.bincount(cell, weights=valid, minlength=n_cells)[cell]
    qualifies = valid & (share > 0) & (weight_used > 0)
    with np.errstate(divide="ignore", invalid="ignore"):  # rows that do not qualify get 0 below
        out["group_share"] = np.where(qualifies, share / weight_used, 0.0)
        out["weight"] = np.where(qualifies, share / weight_used / n_group / k, 0.0)
    # satisfaction: the group's share of the agency's TLHL, on the answers of the satisfaction scale
    sat = _str_keys(result.satisfaction_groups)
    sat["share"] = group_shares(sat, "p", group_weights=cfg.group_weights, min_respondents=cfg.min_respondents,
                                min_group=cfg.min_group, groups=_str_keys(result.groups))
    sat["share"] = sat["share"] / sat.groupby("agency")["share"].transform("sum").where(lambda x: x > 0)
    on_scale = (answers["scale"] == cfg.satisfaction_scale).to_numpy(dtype=bool)
    sat_share = np.nan_to_num(_row_lookup(answers, sat, ["agency", "group"], "share"))
    out["satisfaction_share"] = np.where(on_scale, sat_share, 0.0)
    return out


def response_weight_diagnostics(answers: pd.DataFrame, weight: np.ndarray, *, response: str) -> pd.DataFrame:
    """Kish diagnostics of the response weights (Σ of the answer weights of a response) in each agency's
    criterion score: how unequal the weights are, and the effective number of responses they leave."""
    cols = ["agency", "criterion", "n", "sum", "min", "median", "max", "n_eff", "deff_w"]
    used = np.asarray(weight) > 0
    units = answers.loc[used, ["agency", "criterion", response]]
    if units.empty:
        return pd.DataFrame(columns=cols)
    # one integer per agency × criterion × response; the categories are sorted, so these keys sort like
    # the strings would and the responses come out in the same order
    keys = ["agency", "criterion", response]
    sizes = [len(units[k].cat.categories) for k in keys]
    response_w = pd.Series(np.asarray(weight)[used]).groupby(
        np.ravel_multi_index([units[k].cat.codes.to_numpy() for k in keys], sizes)).sum()
    agency, criterion, _ = np.unravel_index(response_w.index.to_numpy(), sizes)
    by = pd.DataFrame({"agency": pd.Categorical.from_codes(agency, dtype=units["agency"].dtype),
                       "criterion": pd.Categorical.from_codes(criterion, dtype=units["criterion"].dtype)})
    diag = weight_diagnostics(pd.Series(response_w.to_numpy()), by=by)
    return _str_keys(diag.rename_axis(["agency", "criterion"]).reset_index(), ("agency", "criterion"))[cols]


def item_distributions(answers: pd.DataFrame, cfg: _Config, *, response: str, item: str,
                       min_group: int) -> pd.DataFrame:
    """Option counts, mean value and positive share per agency × group × item.

    A group of fewer responses about the agency than *min_group* is suppressed, whatever the group: a
    small group's distribution tells who answered what (one LĐ-CP head is one person). Each answer
    gets the integer code of its agency × group × item × criterion × scale cell; the statistics are
    counted per code over the rows and only the few thousand cells become strings.
    """
    a = answers
    cols = ["agency", "group", "item", "criterion", "scale", "n_responses", "n_valid", "mean_value", "positive_pct",
            "counts", "suppressed"]
    if a.empty:
        return pd.DataFrame(columns=cols)
    names = {"agency": "agency", "group": "group", "item": item, "criterion": "criterion", "scale": "scale"}
    codes = [a[col].cat.codes.to_numpy().astype(np.int64) for col in names.values()]
    sizes = [len(a[col].cat.categories) for col in names.values()]
    cell, cell_keys = pd.factorize(np.ravel_multi_index(codes, sizes))
    n_cells = len(cell_keys)
    key_codes = np.unravel_index(cell_keys, sizes)
    out = pd.DataFrame({name: a[col].cat.categories.take(key) for (name, col), key
                        in zip(names.items(), key_codes)})

    options = option_table(cfg)
    value = pd.Series(_row_lookup(a, options, ["scale", "option"], "value"))
    positive = _row_lookup(a, options, ["scale", "option"], "positive") == 1
    out["n_valid"] = np.bincount(cell, weights=a["valid"].to_numpy(), minlength=n_cells).astype(np.int64)
    out["mean_value"] = value.groupby(cell).mean().reindex(range(n_cells)).to_numpy()
    out["positive"] = np.bincount(cell, weights=positive, minlength=n_cells).astype(np.int64)
    # option counts: one column per option code, "" for a blank answer, as sorted codes
    labels = pd.Index([*a["option"].cat.categories, ""])
    option_col = a["option"].cat.codes.to_numpy().astype(np.int64) % len(labels)  # -1 (blank) -> ""
    counts = np.bincount(cell * len(labels) + option_col, minlength=n_cells * len(labels)).reshape(n_cells, -1)
    order = np.argsort(labels.to_numpy(dtype=object), kind="stable")
    out["counts"] = [{labels[j]: int(row[j]) for j in order if row[j]} for row in counts]
    out["positive_pct"] = np.where(out["n_valid"] > 0,
                                   100 * out["positive"] / out["n_valid"].where(out["n_valid"] > 0, 1), np.nan)
    # responses per agency × group: the distinct (agency × group, response) pairs, counted per agency × group
    agency_group = codes[0] * sizes[1] + codes[1]
    n_uid = len(a[response].cat.categories)
    pairs = pd.unique(agency_group * n_uid + a[response].cat.codes.to_numpy())
    responses = np.bincount(pairs // n_uid, minlength=sizes[0] * sizes[1])
    out["n_responses"] = responses[key_codes[0] * sizes[1] + key_codes[1]].astype(np.int64)
    out = out.sort_values(list(names)).reset_index(drop=True)
    out["suppressed"] = out["n_responses"] < min_group
    hidden = out["suppressed"]
    out.loc[hidden, ["mean_value", "positive_pct"]] = np.nan
    out["counts"] = [None if h else c for h, c in zip(hidden, out["counts"])]
    out.loc[hidden, "n_valid"] = 0
    return out[cols]


def agency_ranks(result: ScoreResult, *, draws: int, seed: int, level: float) -> pd.DataFrame:
    """Rank of every agency among those of its kind by survey points, with its Monte-Carlo interval
    (:func:`analysis.rank_intervals` on the totals' covariance), and its rank among the agencies of its kind
    rated by the same groups.

    An agency that lacks a group (too few respondents, or none) has that group's weight spread over the others,
    so its total mixes its respondents differently from an agency that has every group: the rank of the kind
    compares different mixtures. ``groups`` names the agency's mixture (the groups whose share enters its
    points, "+"-joined) and ``rank_same``/``rank_same_lo``/``rank_same_hi`` rank it among the ``n_same``
    agencies of its kind with the same mixture, where the comparison is like for like.

    Returns ``agency, rank, rank_lo, rank_hi, groups, n_same, rank_same, rank_same_lo, rank_same_hi``.
    """
    totals = _str_keys(result.totals).set_index("agency")
    cov = result.total_covariance.copy()
    cov.index = cov.index.astype(str)
    cov.columns = cov.columns.astype(str)
    est = totals["survey_points"]
    # an estimate without a usable variance (a single PSU) cannot be placed in a rank interval
    ok = est.notna() & np.isfinite(pd.Series(np.diag(cov.reindex(index=est.index, columns=est.index)), est.index))
    est = est.where(ok)
    cov = cov.reindex(index=est.index, columns=est.index).fillna(0.0)
    ranked = rank_intervals(est, by=totals["agency_kind"], cov=cov, draws=draws, seed=seed, level=level)
    out = ranked[["rank", "rank_lo", "rank_hi"]].rename_axis("agency")
    mix = totals["groups"].reindex(est.index).astype(object).where(lambda g: g.notna(), "")
    out["groups"] = mix.where(est.notna())  # an agency without a rank has no comparison either
    same = totals["agency_kind"].astype(str) + "|" + mix
    out["n_same"] = same.where(est.notna()).map(same.where(est.notna()).value_counts()).astype("Int64")
    by_same = rank_intervals(est, by=same, cov=cov, draws=draws, seed=seed, level=level)
    out[["rank_same", "rank_same_lo", "rank_same_hi"]] = by_same[["rank", "rank_lo", "rank_hi"]]
    return out.reset_index()


def _grid(agencies: pd.DataFrame, cfg: _Config) -> pd.DataFrame:
    """Every agency × every criterion of its kind's maximum points."""
    rows = [(a.code, a.kind, a.name, c, pts) for a in agencies.itertuples()
            for c, pts in cfg.max_points.get(a.kind, {}).items()]
    return pd.DataFrame(rows, columns=["agency", "agency_kind", "agency_name", "criterion", "max_points"])


def criteria_table(agencies: pd.DataFrame, criterion_names: Mapping[str, str], cfg: _Config,
                   result: ScoreResult | None) -> pd.DataFrame:
    """One row per agency × criterion of its kind: score, points with SE and interval, n, n_eff,
    positive rate and flags; an agency without data gets NaN and ``khong_du_lieu``, never 0, and a
    value only groups under ``min_group`` could give is withheld: NaN, ``khong_cong_bo``, no ``n`` and no
    count of groups (every criterion of an agency that has only such groups)."""
    grid = _grid(agencies, cfg)
    grid["criterion_name"] = grid["criterion"].map(criterion_names)
    if result is None:
        out = grid.assign(score=np.nan, points=np.nan, points_se=np.nan, points_ci_lo=np.nan, points_ci_hi=np.nan,
                          n=0, n_eff=np.nan, df=np.nan, n_groups=0, missing_groups="", tltc=np.nan, flag=FLAG_NO_DATA,
                          reliability="")
    else:
        pts = result.points[["agency", "criterion", "score", "points", "n_groups", "flag", "missing_groups",
                             "reliability"]]
        est = result.estimates[["agency", "criterion", "points_se", "points_ci_lo", "points_ci_hi", "n", "n_eff",
                                "df"]]
        rates = result.positive_rates[["agency", "criterion", "tltc"]]
        out = (grid.merge(_str_keys(pts), on=["agency", "criterion"], how="left")
               .merge(_str_keys(est), on=["agency", "criterion"], how="left")
               .merge(_str_keys(rates), on=["agency", "criterion"], how="left"))
        out["flag"] = out["flag"].fillna(FLAG_NO_DATA)
        out["missing_groups"] = out["missing_groups"].fillna("")
        out["reliability"] = out["reliability"].fillna("")
        out["n"] = out["n"].fillna(0).astype(np.int64)
        out["n_groups"] = out["n_groups"].fillna(0).astype(np.int64)
    # an agency with only small groups is withheld whole: even a criterion its forms do not ask about
    whole = out["agency"].isin(_withheld_agencies(result))
    out.loc[whole, "flag"] = FLAG_WITHHELD
    withheld = _has_flag(out["flag"], FLAG_WITHHELD)
    for col in ("n", "n_groups"):
        out[col] = pd.array(out[col], dtype="Int64")
        out.loc[withheld, col] = pd.NA
    cols = ["agency", "agency_name", "agency_kind", "criterion", "criterion_name", "max_points", "score", "points",
            "points_se", "points_ci_lo", "points_ci_hi", "n", "n_eff", "df", "n_groups", "tltc", "flag",
            "missing_groups", "reliability"]
    return out[cols].reset_index(drop=True)


def _satisfaction_estimates(result: ScoreResult | None) -> pd.DataFrame:
    """TLHL (%) with its design-based interval and flag, per agency with a value."""
    cols = ["agency", "satisfaction", "satisfaction_se", "satisfaction_ci_lo", "satisfaction_ci_hi", "satisfaction_df",
            "_sat_flag", "satisfaction_reliability"]
    if result is None:
        return pd.DataFrame(columns=cols)
    sat = _str_keys(result.satisfaction).rename(columns={"flag": "_sat_flag",
                                                         "reliability": "satisfaction_reliability"})
    return sat.loc[sat["satisfaction"].notna(), cols].reset_index(drop=True)


def summary_table(agencies: pd.DataFrame, answers: pd.DataFrame, cfg: _Config, result: ScoreResult | None,
                  criteria: pd.DataFrame, ranks: pd.DataFrame | None) -> pd.DataFrame:
    """One row per agency: survey points with SE and interval, satisfaction, positive rate, respondents
    ``n``, the smallest n_eff of its criteria, rank and interval and the rank among the agencies rated by the
    same groups (*ranks* of :func:`agency_ranks`),
    the points of each criterion (from *criteria* of :func:`criteria_table`) and every flag of its
    criteria, total and satisfaction.

    ``n`` counts the respondents of the groups that may enter its figures, as ``result.groups`` counts
    them in the scored *answers*: a group under ``min_group`` is not counted, so that its size cannot be
    told from ``n`` and the sizes of the groups shown. ``withheld`` marks an agency whose every group is
    under ``min_group``: it has no figure and no ``n``, only the flag ``khong_cong_bo``."""
    base = agencies.rename(columns={"code": "agency", "kind": "agency_kind", "name": "agency_name"})
    wide = criteria.pivot(index="agency", columns="criterion", values="points")
    wide.columns = [f"points_{c}" for c in wide.columns]
    n_eff_min = criteria.groupby("agency")["n_eff"].min()
    satisfaction = _satisfaction_estimates(result)
    if result is not None:
        totals = _str_keys(result.totals)[["agency", "survey_points", "survey_points_se", "survey_points_ci_lo",
                                           "survey_points_ci_hi", "survey_points_df", "max_points", "tltc", "flag",
                                           "reliability"]]
        totals = totals.rename(columns={"flag": "_total_flag", "reliability": "survey_points_reliability"})
        groups = _str_keys(result.groups)
        shown = groups.loc[~groups["small"]].groupby("agency")["respondents"].sum()
        n = pd.DataFrame({"agency": pd.unique(groups["agency"])})
        n["n"] = n["agency"].map(shown)
    else:
        totals = pd.DataFrame(columns=["agency", "survey_points", "survey_points_se", "survey_points_ci_lo",
                                       "survey_points_ci_hi", "survey_points_df", "max_points", "tltc", "_total_flag",
                                       "survey_points_reliability"])
        n = pd.DataFrame(columns=["agency", "n"])
    if ranks is None:
        ranks = pd.DataFrame(columns=["agency", "rank", "rank_lo", "rank_hi", "groups", "n_same", "rank_same",
                                      "rank_same_lo", "rank_same_hi"])
    out = (base.merge(totals, on="agency", how="left").merge(satisfaction, on="agency", how="left")
           .merge(n, on="agency", how="left").merge(ranks, on="agency", how="left"))
    out["survey_points"] = out["survey_points"].astype(float)
    # an estimate's precision is told only where there is an estimate
    out["survey_points_reliability"] = out["survey_points_reliability"].where(out["survey_points"].notna())
    out["max_points"] = out["agency_kind"].map({k: sum(v.values()) for k, v in cfg.max_points.items()})
    out["withheld"] = out["agency"].isin(_withheld_agencies(result))
    out["n"] = pd.array(out["n"].fillna(0), dtype="Int64")
    out.loc[out["withheld"], "n"] = pd.NA
    out["n_eff_min"] = out["agency"].map(n_eff_min)
    # an agency's flags: those of its criteria but their precision (told per criterion, with its reasons), of
    # its total and of its satisfaction (its missing groups are already told by the criteria)
    sat_flag = out["_sat_flag"].fillna("").map(lambda f: FLAG_LOW_RELIABILITY if FLAG_LOW_RELIABILITY in f else "")
    own = pd.Series((sat_flag + "," + out["_total_flag"].fillna("")).to_numpy(), index=out["agency"])
    of_criteria = criteria.set_index("agency")["flag"].map(
        lambda v: ",".join(f for f in str(v).split(",") if f != FLAG_LOW_RELIABILITY))
    flags = pd.concat([of_criteria, own]).groupby(level=0).agg(
        lambda s: ",".join(sorted({f for v in s for f in str(v).split(",") if f})))
    out["flags"] = out["agency"].map(flags).fillna(FLAG_NO_DATA)
    # a missing total is told: withheld (only small groups) or without data, never blank
    out.loc[out["survey_points"].isna(), "flags"] = out.loc[out["survey_points"].isna(), "flags"].map(
        lambda f: f if FLAG_NO_DATA in f or FLAG_WITHHELD in f else ",".join(filter(None, [f, FLAG_NO_DATA])))
    out.loc[out["withheld"], "flags"] = FLAG_WITHHELD
    out = out.drop(columns=["_total_flag", "_sat_flag"]).join(wide, on="agency")
    for col in ("rank", "rank_lo", "rank_hi", "n_same", "rank_same", "rank_same_lo", "rank_same_hi"):
        out[col] = pd.array(out[col], dtype="Int64")
    return out.reset_index(drop=True)
