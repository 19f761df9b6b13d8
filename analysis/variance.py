"""Design-based variance of the composite estimates: points, their total and satisfaction.

An agency's score is a fixed-share composite Σ_g a_g M_g of group means, so each response's influence
is centred at its own group's mean (the spread between groups is not sampling error). Strata are the
sampling cells, PSUs the respondents; a response rating several agencies makes their estimates covary,
which the ranks need. The sums come from the vectorised engine of :mod:`analysis.estimation`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from analysis.encoding import _Units
from analysis.estimation import (
    _DomainCore,
    _core,
    _core_order,
    _design,
    _domain_df,
    _psu_covariance,
    _table,
    _variance_and_lonely,
)
from analysis.settings import group_shares

def _satisfaction_inputs(units, sat_groups, sat_ans, sat_pos, cfg, groups) -> tuple[np.ndarray, np.ndarray]:
    """Unit values and weights that make TLHL a composite like the points: each group's share of
    positive answers p_g = Σ positive / Σ answers over its responses is the weighted mean of the responses'
    shares with weights (answers of the response) · w(g) / (answers of the group)."""
    per_cell = np.zeros(units.n_cells)
    per_cell[units.cells_of(sat_groups)] = _share_per_count(sat_groups, "p", "n_answers", cfg, groups)
    answers = sat_ans[0].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(answers > 0, sat_pos[0] / answers, np.nan)
    return y, per_cell[units.unit_cells()] * answers


def _share_per_count(table: pd.DataFrame, value: str, n_col: str, cfg, groups: pd.DataFrame) -> np.ndarray:
    """The qualifying group's share w(g) spread over its *n_col* (responses or answers); 0 for a group
    that does not qualify. Summed over a group's units it gives back w(g)."""
    share = group_shares(table, value, group_weights=cfg.group_weights, min_respondents=cfg.min_respondents,
                         min_group=cfg.min_group, groups=groups)
    n = table[n_col]
    return np.where(share > 0, share / n.where(n > 0, 1), 0.0)


def _columns(core: _DomainCore, cols: slice) -> _DomainCore:
    """The domain core of some of its value columns."""
    return replace(core, wsum=core.wsum[:, cols], mean=core.mean[:, cols], count=core.count[:, cols],
                   wsq=core.wsq[:, cols], rss=core.rss[:, cols], z=core.z[cols], cell_wpos=core.cell_wpos[cols])


@dataclass(frozen=True)
class _CompositeDesign:
    """The design of the composite estimates, built once per round: strata = sampling cells, PSU =
    respondent, and the agency × group domain of every unit (from the units' integer codes)."""

    design: object
    dom: np.ndarray           # per unit: agency × group domain, agency-major
    labels: pd.DataFrame      # agency, group of every domain
    order: np.ndarray         # the units in the engine's order (domain, stratum, PSU)


def _composite_design(units: _Units, stratum_rank: np.ndarray, hidden: np.ndarray,
                      population: np.ndarray | None = None) -> _CompositeDesign:
    """The design from integer codes: the strata by the rank of their label (so they are numbered as
    from the labels), the PSUs by the units' response codes (one per response id).

    The units *hidden* (of groups under ``min_group``) are not part of it at all, neither as rows nor as
    PSUs of their strata: the design is that of the units published, which is what an analyst rebuilds
    from the export. *population* (per unit, NaN where unknown) is the number of respondents of the
    unit's sampling cell in the population: a stratum with a known population N_h and n_h sampled PSUs
    gets the finite population correction 1 − n_h/N_h; one without (or with fewer than n_h) gets none.
    """
    n_gr = len(units.grp_cats)
    kept = ~hidden
    key = units.unit_cells()
    present = np.zeros(units.n_cells, dtype=bool)
    present[key[kept]] = True
    idx = np.flatnonzero(present)
    dom = np.where(kept, (np.cumsum(present) - 1)[key], -1)
    labels = pd.DataFrame({"agency": units.ag_cats.take(idx // n_gr), "group": units.grp_cats.take(idx % n_gr)})
    frame = pd.DataFrame({"stratum": stratum_rank[kept], "response_id": units.resp_u[kept]})
    design = _design(frame, "stratum", "response_id", None)
    if population is not None:
        design = _with_populations(design, frame["stratum"].to_numpy(), population[kept])
    psu = np.zeros(units.n, dtype=np.int64)
    psu[kept] = design.psu  # the hidden units belong to no domain: their PSU is never read
    design = replace(design, n=units.n, psu=psu)
    return _CompositeDesign(design, dom, labels, _core_order(design, dom, len(labels)))


def _with_populations(design, stratum: np.ndarray, population: np.ndarray):
    """*design* with f_h = n_h / N_h for the strata whose population N_h is known and at least n_h."""
    codes = pd.factorize(stratum, sort=True)[0]
    n_pop = np.full(design.n_h.size, np.nan)
    n_pop[codes] = population
    with np.errstate(invalid="ignore", divide="ignore"):
        f_h = np.where(n_pop >= design.n_h, design.n_h / n_pop, 0.0)
        c_h = np.where(design.n_h > 1, (1 - f_h) * design.n_h / (design.n_h - 1), 0.0)
    return replace(design, f_h=f_h, c_h=c_h)



def _composite(cd: _CompositeDesign, y: np.ndarray, w: np.ndarray, lonely_psu: str):
    """Fixed-share composite means per agency and their linearised variance.

    *cd* holds the design and the agency × group domains of the units; *y* and *w* (K × units, in
    the order ``cd.order``, used as work space) the values and the unit weights, which within each
    agency × group sum to the group's
    share w(g) (0 where the group does not qualify). The estimate is Σ_g a_g M_g with a_g the group's
    share of the agency's total and M_g the weighted group mean; a unit's influence is
    a_g · u (y − M_g) / Σ_g u, centred at its own group's mean.

    Returns the agency-level domain core, the design, the agency labels, the degrees of freedom of each
    agency and column (D × K: the PSUs with positive weight for the column minus their strata, R's
    per-domain df), the D × K flags of estimates touching a single-PSU stratum, and the variances (D × K).
    """
    design, dom_tg, labels_tg = cd.design, cd.dom, cd.labels
    # agency-major domains: each agency's cells stay contiguous, and strata (nested in groups) stay
    # contiguous within an agency
    core = _core(design, dom_tg, len(labels_tg), y, w, order=cd.order)
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
    z = core.z * np.take(a_g.T, core.g_dom, axis=1)  # gathered as K × G rows: no strided transpose
    rss = per_agency(core.rss + core.wsum * (np.nan_to_num(core.mean) - np.nan_to_num(score)[agency_of]) ** 2)
    # n counts the responses that enter the estimate: those of groups with a share
    counted = np.where(core.wsum > 0, core.count, 0.0)
    core = replace(core, wsum=share, mean=score, count=per_agency(counted), wsq=per_agency(core.wsq), rss=rss,
                   g_dom=agency_of[core.g_dom], z=z)
    var, lonely = _variance_and_lonely(design, core, n_ag, lonely_psu)
    # a respondent belongs to one group: its cells stay unique PSU × agency pairs
    dfs = np.stack([_domain_df(design, core.g_psu, core.g_dom, n_ag, pos, unique_cells=True)
                    for pos in core.cell_wpos], axis=1)
    return core, design, labels, dfs, lonely, var


def _any_pos(core: _DomainCore, columns: np.ndarray) -> np.ndarray:
    """The cells with positive weight for an estimate combining several columns (for any of them):
    *columns* is D × K, the columns each domain's estimate uses."""
    return (core.cell_wpos & columns.T[:, core.g_dom]).any(axis=0)


def _score_estimates(scores, means, points, criteria, cfg, units, cd, sat_y, sat_w, groups):
    """Design-based SEs of S(t, c), of the points and of the survey-points total.

    S(t, c) = Σ_g a_g M(g, t, c) is a composite of group means with fixed shares a_g = w(g) / Σ w
    over the qualifying groups, so its influence value is a_g (m(r, c) − M(g, t, c)) / n(g, t, c):
    each response is centred at its own group's mean, not at S, and the spread between groups does not
    enter the variance. Strata are the sampling cells (``stratum``), PSUs the respondents; a response
    rating several agencies (HĐ-CT, LĐ-CP) makes their estimates covary. Strata with one PSU follow
    ``cfg.lonely_psu`` and every estimate touching one is reported (``lonely``). Each interval uses
    the degrees of freedom of its own estimate: the PSUs with positive weight for it minus their strata
    (R's per-domain df), so a criterion resting on one group has that group's df, not the agency's.

    The sums come from the vectorised engine of :func:`domain_means` with agency × group domains
    (one pass over the units), rescaled to agency level; no unit-level weight columns are built.
    The units of groups under ``cfg.min_group`` are not in the design (:func:`_composite_design`).
    """
    # unit weight per criterion × (agency, group) cell; cells without a group mean keep weight 0
    cell_w = np.zeros((len(criteria), units.n_cells))
    cell_w[pd.Index(criteria).get_indexer(means["criterion"]), units.cells_of(means)] = \
        _share_per_count(means, "mean", "n", cfg, groups)
    # the criteria and, as a last column, satisfaction: one pass of the engine for both, with the
    # units gathered straight into the engine's order (a weight is a look-up in the small cell table)
    order = cd.order
    cell_u = units.unit_cells().take(order)
    k = len(criteria)
    y = np.empty((k + 1, order.size))
    w = np.empty_like(y)
    for j, c in enumerate(criteria):
        scores[c].to_numpy(dtype=np.float64).take(order, out=y[j])
        cell_w[j].take(cell_u, out=w[j])
        w[j, np.isnan(y[j])] = 0.0  # a unit without a score on c carries no weight for c
    sat_y.take(order, out=y[k])
    sat_w.take(order, out=w[k])
    core_all, design, labels, dfs, lonely_all, var_all = _composite(cd, y, w, cfg.lonely_psu)
    del y, w
    sat = _table(_columns(core_all, slice(k, k + 1)), var_all[:, k:], dfs[:, k:], labels, ["satisfaction"], True,
                 cfg.level, "replace")
    kinds = units.kind_cats.take(units.kind_a[units.ag_cats.get_indexer(labels["agency"])])
    sat = _all_alike_intervals(sat, np.asarray(kinds), cfg.level)
    sat_est = pd.DataFrame({"agency": sat["agency"], "satisfaction_se": 100 * sat["se"],
                            "satisfaction_ci_lo": 100 * sat["ci_lo"], "satisfaction_ci_hi": 100 * sat["ci_hi"],
                            "satisfaction_df": sat["df"], "satisfaction_n": sat["n"],
                            "satisfaction_n_eff": sat["n_eff"], "satisfaction_deff": sat["deff"],
                            "_lonely": lonely_all[:, k]})
    core, var, lonely = _columns(core_all, slice(0, k)), var_all[:, :k], lonely_all[:, :k]
    score = core.mean
    n_ag = len(labels)
    est = _table(core, var, dfs[:, :k], labels, list(criteria), False, cfg.level, "replace")
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
    coef = np.array([[cfg.max_points[kind].get(c, 0.0) for c in criteria] for kind in kinds],
                    dtype=np.float64).reshape(len(kinds), k)
    needed = coef > 0
    total = np.where(np.any(needed & np.isnan(score), axis=1), np.nan, np.nansum(coef * score, axis=1))
    z_total = np.einsum("kg,gk->g", core.z, coef[core.g_dom])
    pos = _any_pos(core, needed)
    cov = _psu_covariance(design, core.g_psu, core.g_dom, z_total, n_ag, cfg.lonely_psu, pos)
    bad = np.isnan(total)
    cov[bad, :] = np.nan
    cov[:, bad] = np.nan
    idx = pd.Index(labels["agency"], name="agency")
    total_est = pd.DataFrame({"est": total, "se": np.sqrt(np.diag(cov))}, index=idx)
    total_df = _domain_df(design, core.g_psu, core.g_dom, n_ag, pos, unique_cells=True)
    tq = np.where(total_df >= 1, stats.t.ppf(0.5 + cfg.level / 2, np.maximum(total_df, 1)), np.nan)
    total_est["ci_lo"] = total_est["est"] - tq * total_est["se"]
    total_est["ci_hi"] = total_est["est"] + tq * total_est["se"]
    total_est["df"] = total_df
    total_est["lonely"] = (lonely & needed).any(axis=1)
    return est, total_est, pd.DataFrame(cov, index=idx, columns=idx), sat_est


def _all_alike_intervals(sat: pd.DataFrame, kinds: np.ndarray, level: float) -> pd.DataFrame:
    """Shares where every answer is positive (or none is): no spread, so the design gives no variance.

    Their SE is not estimable (NaN, never 0) and their Korn–Graubard interval takes the effective sample
    size n / deff_kind, with deff_kind the pooled design effect of the agencies of the same kind whose
    share is strictly between 0 and 1 (Σ V / Σ V_srs), at least 1, and R's ``svyciprop(method="beta")``
    degrees-of-freedom factor (t_{n−1} / t_df)². An agency kind without such an agency gives deff 1.
    """
    out = sat.copy()
    p, n, df = out["est"].to_numpy(), out["n"].to_numpy(dtype=float), out["df"].to_numpy(dtype=float)
    edge = (p == 0) | (p == 1)
    if not edge.any():
        return out
    var = out["se"].to_numpy() ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        v_srs = var / out["deff"].to_numpy()
    inner = ~edge & np.isfinite(v_srs) & (v_srs > 0) & np.isfinite(var)
    frame = pd.DataFrame({"kind": kinds, "v": np.where(inner, var, 0.0), "v_srs": np.where(inner, v_srs, 0.0)})
    pooled = frame.groupby("kind")[["v", "v_srs"]].transform("sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        deff_kind = np.fmax(np.where(pooled["v_srs"] > 0, pooled["v"] / pooled["v_srs"], 1.0), 1.0)
    alpha = 1 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where((df >= 1) & (n > 1), (stats.t.ppf(alpha / 2, np.maximum(n - 1, 1))
                                                / stats.t.ppf(alpha / 2, np.maximum(df, 1))) ** 2, 1.0)
        n_eff = n / deff_kind * ratio
        lo = np.where(p == 1, stats.beta.ppf(alpha / 2, np.maximum(n_eff, 1e-300), 1.0), 0.0)
        hi = np.where(p == 0, stats.beta.ppf(1 - alpha / 2, 1.0, np.maximum(n_eff, 1e-300)), 1.0)
    out.loc[edge, "se"] = np.nan
    out.loc[edge, "ci_lo"] = lo[edge]
    out.loc[edge, "ci_hi"] = hi[edge]
    out.loc[edge, "n_eff"] = n_eff[edge]
    out.loc[edge, "deff"] = deff_kind[edge]
    return out
