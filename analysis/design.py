"""A survey design object as survey statisticians know it from R's ``svydesign`` (Lumley) and svy.

``Design(frame, weight=, strata=, psu=, fpc=)`` holds the weights and the sampling structure (one
column per stage for a multistage design); ``poststratify``, ``rake``, ``calibrate`` and ``trim`` return
new designs whose variance knows the calibration; ``mean``, ``total``, ``ratio`` and ``quantile`` return
one row per domain with ``est, se, ci_lo, ci_hi, n, df`` (and ``n_eff``, ``deff`` for means);
``covariance`` and ``contrast`` compare domains; ``jackknife`` and ``bootstrap`` turn the design into a
replicate-weight design in which every calibration is redone in each replicate, and
``Design.from_replicates`` builds one from replicate weights a user already has (R ``svrepdesign``).

Variance (Taylor linearisation), as R's ``svyrecvar``: the influence values of an estimate are
first projected on the calibration, then summed within PSUs; stratum h contributes
(1 − f_h) · n_h/(n_h − 1) · Σ_p (Z_hp − Z̄_h)². In a multistage design (R ``multistage``) each later
stage adds the same sum over its units within each unit of the stage before, times the product of
the earlier stages' sampling fractions n/N.

* Post-stratification (R ``postStratify``): z ← z − w · Σ_{g} (z·w₀/w) / Σ_g w₀ within each
  post-stratum g, with w₀ the weights before and w those after.
* Raking (R ``rake``): the same centring, margin after margin, iterated ten times (R's iterated
  projection; it is not one joint regression on all margins), with the unweighted mean of z/w in
  each category.
* Calibration (R ``calibrate``, any ``calfun``): z ← z − w · x'β̂, β̂ the w₀-weighted least-squares
  fit of z/w on the calibration variables x.
* Domains follow R's convention: rows outside the domain stay in the design with influence 0
  before the projection, so n_h counts every PSU of the stratum. The degrees of freedom of a domain
  are those of R's ``degf(subset(design, domain))``: the PSUs the domain touches minus their strata.
* A stratum with one PSU (``lonely_psu``, R's ``survey.lonely.psu`` as ``onestrat`` of survey 4.1
  computes it): ``"certainty"`` and ``"remove"`` add nothing; ``"adjust"`` adds the PSU's total
  uncentred, (1 − f_h) Z²; ``"average"`` scales the other strata by #strata / #strata with more than
  one PSU, counting for a domain of an uncalibrated design only the strata the domain touches (R's
  ``svyby`` works on the domain's subset, which drops the others); ``"fail"`` raises.

Replicate weights: JK1 deletes one PSU at a time (R ``as.svrepdesign(type="JK1")``, scale
(1 − f)(P − 1)/P); the bootstrap is Rao and Wu's rescaled bootstrap within strata (R
``type="subbootstrap"``: n_h − 1 PSUs drawn with replacement, multiplier n_h/(n_h − 1), scale 1/(R − 1)).
V = scale · Σ_r rscales_r (θ_r − θ̄)², centred at the replicates' mean, or at the full-sample estimate with
``mse=True``.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from analysis import weighting
from analysis._checks import (
    as_column_list,
    numeric_values,
    require_columns,
    require_frame,
    require_level,
    require_no_missing,
    require_positive_int,
    weight_values,
)
from analysis.estimation import _beta_ci, _Design, _design, _domain_df, _domains, _logit_ci

__all__ = ["LONELY_PSU", "REPLICATE_TYPES", "Design"]

LONELY_PSU = ("certainty", "remove", "adjust", "average", "fail")
#: replicate weight types of :meth:`Design.from_replicates` (R ``svrepdesign(type=)``)
REPLICATE_TYPES = ("JK1", "JKn", "JK2", "BRR", "Fay", "bootstrap", "successive-difference", "ACS", "other")
#: sweeps of R's iterated projection for raked designs (fixed in ``svyrecvar``)
RAKE_PROJECTION_SWEEPS = 10
#: largest influence block (rows × columns) built at once when only standard errors are needed
_BLOCK = 2**24


@dataclass(frozen=True)
class _Step:
    """One calibration: ``kind`` "post" (one post-stratification) or "rake" (several margins)."""

    kind: str
    columns: tuple            # post: the cell columns; rake: one column per margin
    targets: tuple            # post: (totals,); rake: the margin Series, in order
    options: tuple            # rake: (tol, max_iter, bounds)
    codes: tuple              # per margin (one for post): category code of every row
    sizes: tuple              # per margin: number of categories
    before: np.ndarray        # weights before the step (R's "oldweights")
    after: np.ndarray         # weights after the step
    matrix: np.ndarray | None = None   # cal: the model matrix of the calibration variables


@dataclass(frozen=True)
class _Replicates:
    kind: str
    base: np.ndarray          # n × R replicate weights before any calibration
    weights: np.ndarray       # n × R replicate weights after the design's calibrations
    scale: float
    mse: bool
    df: int
    rscales: np.ndarray       # one multiplier per replicate (R's rscales)


@dataclass(frozen=True)
class _Stage:
    """The units of one sampling stage within their strata, for the variance."""

    units: sp.csr_array       # units × rows: the rows of each unit
    strata: sp.csr_array      # strata × rows: the rows of each stratum
    row_stratum: np.ndarray   # stratum of every row
    unit_stratum: np.ndarray  # stratum of every unit
    n_h: np.ndarray           # units sampled per stratum
    f_h: np.ndarray           # sampling fraction per stratum (0 without fpc)
    mult: np.ndarray          # per stratum: product of the earlier stages' sampling fractions (R's n/N)
    group: np.ndarray         # per stratum: the unit of the stage before that holds it (0 at the first)
    n_groups: int

    @property
    def lonely(self) -> np.ndarray:
        """Strata with one unit that are not sampled with certainty: the lonely-PSU rule applies."""
        return (self.n_h == 1) & (1 - self.f_h >= 1e-7)


class Design:
    """A survey design: weights, strata, PSUs, finite population correction, calibration.

    Parameters
    ----------
    frame : DataFrame
        One row per unit.
    weight : column name, optional
        Sampling weights; when omitted, the inverse of the sampling fractions of *fpc* (as R's
        ``svydesign``), or 1.0 without it.
    strata, psu : column name, optional
        Strata and primary sampling units (PSU ids nested within strata); every row is a PSU and
        there is one stratum when omitted.
    fpc : column name, optional
        Population number of PSUs of the row's stratum, or the sampling fraction when <= 1.
    lonely_psu : {"certainty", "remove", "adjust", "average", "fail"}
        Variance rule for strata with a single PSU (see the module docstring).

    A multistage design (R ``svydesign(id=~dnum+snum, fpc=~fpc1+fpc2)``) gives *psu* and *fpc*, and
    optionally *strata*, as lists with one column per stage: ``psu=["dnum", "snum"], fpc=["fpc1",
    "fpc2"]``. The units of a stage are nested in those of the stage before. Without *fpc* only the
    first stage enters the variance (R's ultimate cluster); with it, every stage needs its fpc.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 6.0], "h": ["a", "a", "b", "b"], "w": [2.0, 2.0, 3.0, 3.0]})
    >>> d = Design(df, weight="w", strata="h")
    >>> d.mean("y")[["est", "se"]].round(4).to_dict("records")
    [{'est': 3.3, 'se': 0.922}]
    >>> float(d.total("y")["est"].iloc[0])
    33.0
    """

    def __init__(self, frame: pd.DataFrame, weight: Hashable | None = None, strata=None, psu=None, fpc=None, *,
                 lonely_psu: str = "certainty"):
        require_frame(frame)
        if lonely_psu not in LONELY_PSU:
            raise ValueError(f"lonely_psu must be one of {list(LONELY_PSU)}, got {lonely_psu!r}")
        self._frame = frame
        self._w = weight_values(frame, weight).copy()
        self._base_w = self._w
        psus, stratas, fpcs = _per_stage(psu, "psu"), _per_stage(strata, "strata"), _per_stage(fpc, "fpc")
        if len(stratas) > max(len(psus), 1) or len(fpcs) > max(len(psus), 1):
            raise ValueError("strata and fpc take at most one column per stage of psu")
        first = (stratas or [None])[0], (psus or [None])[0], (fpcs or [None])[0]
        self._d: _Design = _design(frame, *first)
        self._stages: tuple[_Stage, ...] = _stages(frame, self._d, psus, stratas, fpcs)
        if weight is None and fpcs:
            # R's svydesign without weights: the inverse of the product of the stages' sampling fractions
            self._w = 1 / np.prod([st.f_h[st.row_stratum] for st in self._stages[:len(fpcs)]], axis=0)
            self._base_w = self._w
        self._steps: tuple[_Step, ...] = ()
        self._rep: _Replicates | None = None
        self._agg = None     # cells of the single calibration for the sums-only variance (False: not usable)
        self.lonely_psu = lonely_psu

    # ----------------------------------------------------------------------------------------------
    # the design itself
    # ----------------------------------------------------------------------------------------------
    @property
    def weights(self) -> pd.Series:
        """The current (calibrated) weights, aligned to the frame."""
        return pd.Series(self._w, index=self._frame.index, name="weight")

    @property
    def df(self) -> int:
        """Degrees of freedom of the whole design: #PSU − #strata (replicates: rank − 1)."""
        return self._rep.df if self._rep is not None else self._domain_df(np.ones(len(self._frame), bool))

    def _derive(self, **changes) -> Design:
        new = object.__new__(Design)
        new.__dict__.update(self.__dict__)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

    # ----------------------------------------------------------------------------------------------
    # calibration
    # ----------------------------------------------------------------------------------------------
    def poststratify(self, cells: Hashable | Sequence[Hashable], totals: pd.Series) -> Design:
        """Post-stratify to population *totals* per cell (R ``postStratify``); calibration-aware SEs.

        *totals* is indexed by the cell (a MultiIndex for several columns), as for
        :func:`analysis.poststratify`.
        """
        cols = tuple(as_column_list(cells, "cells"))
        step = self._post_step(cols, totals, self._w)
        return self._with_step(step)

    def rake(self, margins: Mapping[Hashable, pd.Series], *, tol: float = 1e-8, max_iter: int = 1000,
             bounds: tuple[float, float] | None = None) -> Design:
        """Rake to population *margins* (IPF, as :func:`analysis.rake`); R ``rake``'s variance."""
        if not isinstance(margins, Mapping) or not margins:
            raise TypeError("margins must be a non-empty dict: column name -> Series of population totals")
        step = self._rake_step(tuple(margins), tuple(margins.values()), (tol, max_iter, bounds), self._w)
        return self._with_step(step)

    def calibrate(self, terms: Sequence[Hashable], population, *, calfun: str = "linear",
                  bounds: tuple[float, float] | None = None, intercept: bool = True, max_iter: int = 50,
                  epsilon: float = 1e-7) -> Design:
        """Calibrate to population totals (R ``calibrate``): GREG (``calfun="linear"``), ``"raking"`` or
        ``"logit"``, optionally with bounds on g = w/w0; the arguments are those of
        :func:`analysis.weighting.calibrate`.

        The variance projects every influence value on the calibration variables, as R does for any
        ``calfun``: z ← z − w · x'β̂, β̂ the w0-weighted least-squares fit of z/w on x.
        """
        mm = weighting.model_matrix(self._frame, terms, intercept=intercept)
        population = weighting._population_vector(population, list(mm.columns))
        step = self._cal_step(tuple(mm.columns), mm.to_numpy(), population, (calfun, bounds, max_iter, epsilon),
                              self._w)
        return self._with_step(step)

    def trim(self, *, upper: float | None = None, lower: float | None = None, strict: bool = True) -> Design:
        """Trim the weights (as :func:`analysis.trim`) and redo the design's calibrations on the trimmed
        weights, so that every calibration total still holds and the variance stays consistent."""
        trimmed = weighting.trim(pd.Series(self._w), upper=upper, lower=lower, strict=strict).to_numpy()
        new = self._derive(_w=trimmed, _base_w=trimmed, _steps=())
        for step in self._steps:
            new = new._with_step(new._replay(step, new._w))
        if self._rep is not None:
            clipped = np.column_stack([weighting.trim(pd.Series(self._rep.weights[:, r]), upper=upper, lower=lower,
                                                      strict=strict).to_numpy()
                                       for r in range(self._rep.weights.shape[1])])
            rep = replace(self._rep, base=clipped, weights=clipped)
            new = new._derive(_rep=rep)
            new = new._derive(_rep=replace(rep, weights=new._calibrate_replicates(clipped, self._steps)))
        return new

    def _with_step(self, step: _Step) -> Design:
        new = self._derive(_w=step.after, _steps=(*self._steps, step), _agg=None)
        if self._rep is not None:
            new = new._derive(_rep=replace(self._rep, weights=self._calibrate_replicates(self._rep.weights, (step,))))
        return new

    def _replay(self, step: _Step, w: np.ndarray) -> _Step:
        if step.kind == "post":
            return self._post_step(step.columns, step.targets[0], w)
        if step.kind == "cal":
            return self._cal_step(step.columns, step.matrix, step.targets[0], step.options, w)
        return self._rake_step(step.columns, step.targets, step.options, w)

    def _calibrate_replicates(self, weights: np.ndarray, steps: Sequence[_Step]) -> np.ndarray:
        out = weights.copy()
        for r in range(out.shape[1]):
            for step in steps:
                out[:, r] = self._replay(step, out[:, r]).after
        return out

    def _post_step(self, cols: tuple, totals: pd.Series, w: np.ndarray) -> _Step:
        if not cols:
            raise ValueError("cells must name at least one column")
        frame = self._frame[list(cols)].assign(__w=w)
        after = weighting.poststratify(frame, list(cols), totals, "__w").to_numpy()
        codes, size = _cell_codes(self._frame, list(cols))
        return _Step("post", cols, (totals,), (), (codes,), (size,), w, after)

    @staticmethod
    def _cal_step(names: tuple, mm: np.ndarray, population: np.ndarray, options: tuple, w: np.ndarray) -> _Step:
        calfun, bounds, max_iter, epsilon = options
        g = weighting.calibration_g(mm, w, population, calfun=calfun, bounds=bounds, max_iter=max_iter,
                                    epsilon=epsilon)
        return _Step("cal", names, (population,), options, (), (), w, w * g, mm)

    def _rake_step(self, cols: tuple, targets: tuple, options: tuple, w: np.ndarray) -> _Step:
        tol, max_iter, bounds = options
        frame = self._frame[list(cols)].assign(__w=w)
        after = weighting.rake(frame, dict(zip(cols, targets)), "__w", tol=tol, max_iter=max_iter,
                               bounds=bounds).to_numpy()
        coded = [_cell_codes(self._frame, [c]) for c in cols]
        return _Step("rake", cols, targets, options, tuple(c for c, _ in coded), tuple(s for _, s in coded),
                     w, after)

    def _project(self, x: np.ndarray) -> np.ndarray:
        """Influence values (n × J) after the calibrations' projections (R ``svyrecvar``)."""
        for step in self._steps:
            if step.kind == "post":
                x = _center(x, step.codes[0], step.sizes[0], step.after, step.before)
            elif step.kind == "cal":
                x = _regression_residual(x, step.matrix, step.before, step.after)
            else:
                for _ in range(RAKE_PROJECTION_SWEEPS):
                    for codes, size in zip(step.codes, step.sizes):
                        x = _center(x, codes, size, step.after, None)
        return x

    # ----------------------------------------------------------------------------------------------
    # replicate weights
    # ----------------------------------------------------------------------------------------------
    @classmethod
    def from_replicates(cls, frame: pd.DataFrame, weight: Hashable | None, replicates: Sequence[Hashable], *,
                        type: str, scale: float | None = None, rscales=None, rho: float | None = None,
                        mse: bool = False, combined_weights: bool = True) -> Design:
        """A design from replicate weights one already has (R ``svrepdesign``), e.g. a statistics office's.

        Parameters
        ----------
        frame : DataFrame
            One row per unit, with the replicate weight columns.
        weight : column name, optional
            The full-sample weights (1.0 when omitted).
        replicates : list of column names
            One column per replicate.
        type : {"JK1", "JKn", "JK2", "BRR", "Fay", "bootstrap", "successive-difference", "ACS", "other"}
            Sets R's defaults: BRR scale 1/R; Fay 1/(R (1 − rho)²) (*rho* required); successive
            difference and ACS 4/R, JK2 1 (these fix scale and rscales); bootstrap
            1/(R − 1); JK1 (R − 1)/R (with combined weights; else 1/the first replicate's largest
            multiplier); JKn needs *rscales* (n_h − 1)/n_h of each replicate's stratum with combined
            weights, else 1/each replicate's largest multiplier; other: *scale* and *rscales* or 1.
        scale, rscales :
            V = scale · Σ_r rscales_r (θ_r − θ̄)², θ̄ the mean of the replicates with rscales_r > 0, or
            the full-sample estimate with *mse*. BRR and Fay fix the scale themselves.
            A finite population correction goes into *rscales*: R's ``fpc=`` multiplies them by 1 − f.
        combined_weights : bool
            True: the columns are the replicates' weights; False: multipliers of *weight*.

        The design's degrees of freedom are the rank of the replicate weights minus one (R ``degf``);
        calibrating the design recalibrates every replicate.
        """
        if type not in REPLICATE_TYPES:
            raise ValueError(f"type must be one of {list(REPLICATE_TYPES)}, got {type!r}")
        design = cls(frame, weight=weight)
        cols = as_column_list(replicates, "replicates")
        require_columns(frame, cols)
        require_no_missing(frame, cols, "replicate weight")
        if len(cols) < 2:
            raise ValueError("a replicate design needs at least two replicate weight columns")
        reps = np.column_stack([numeric_values(frame[c], str(c)) for c in cols])
        if not np.all(np.isfinite(reps)):
            raise ValueError("replicate weights must be finite numbers")
        n_rep = reps.shape[1]
        if type in ("BRR", "Fay", "JK2", "successive-difference", "ACS") and scale is not None:
            raise ValueError(f"type={type!r} sets its own scale; use type='other' to give one")
        if type in ("JK2", "successive-difference", "ACS") and rscales is not None:
            raise ValueError(f"type={type!r} sets its own rscales (1); use type='other' to give them")
        if (type == "Fay") != (rho is not None):
            raise ValueError("rho is Fay's perturbation factor: give it with type='Fay' (0 <= rho < 1) only")
        if type == "BRR":
            scale = 1 / n_rep
        elif type in ("successive-difference", "ACS"):
            scale = 4 / n_rep
        elif type == "Fay":
            if not 0 <= rho < 1:
                raise ValueError(f"rho must be in [0, 1), got {rho!r}")
            scale = 1 / (n_rep * (1 - rho) ** 2)
        elif type == "bootstrap" and scale is None:
            scale = 1 / (n_rep - 1)
        elif type == "JK1" and scale is None:
            scale = (n_rep - 1) / n_rep if combined_weights else 1 / reps[:, 0].max()
        elif type == "JKn" and rscales is None:
            if combined_weights:
                raise ValueError("JKn with combined weights needs rscales: (n_h - 1)/n_h of each replicate's stratum")
            rscales = 1 / reps.max(axis=0)
        scale = 1.0 if scale is None else float(scale)
        rscales = np.ones(n_rep) if rscales is None else np.broadcast_to(
            np.asarray(rscales, dtype=np.float64), (n_rep,)).copy()
        if not (np.isfinite(scale) and scale > 0 and np.all(np.isfinite(rscales)) and np.all(rscales >= 0)):
            raise ValueError("scale must be positive and rscales non-negative, one per replicate (or a single value)")
        weights = reps if combined_weights else reps * design._w[:, None]
        df = int(np.linalg.matrix_rank(weights)) - 1
        return design._derive(_rep=_Replicates(type, weights, weights, scale, bool(mse), df, rscales))

    def jackknife(self, *, mse: bool = False) -> Design:
        """Delete-one-PSU jackknife (JK1) replicate weights; calibrations are redone in each replicate."""
        d = self._d
        n_psu = d.psu_stratum.size
        if n_psu < 2:
            raise ValueError("the jackknife needs at least two PSUs")
        f = np.unique(d.f_h)
        if f.size > 1:
            raise ValueError("JK1 needs one sampling fraction for the whole design (use bootstrap for strata)")
        mult = np.full((n_psu, n_psu), n_psu / (n_psu - 1))
        np.fill_diagonal(mult, 0.0)
        scale = (1 - f[0]) * (n_psu - 1) / n_psu
        return self._with_replicates("jk1", mult, scale, mse, n_psu - 1)

    def bootstrap(self, replicates: int = 50, *, seed: int = 0, mse: bool = False) -> Design:
        """Rao–Wu rescaled bootstrap within strata (seeded); calibrations are redone in each replicate."""
        replicates = require_positive_int(replicates, "replicates")
        if replicates < 2:
            raise ValueError("the bootstrap needs at least two replicates")
        d = self._d
        if np.any(d.n_h < 2):
            raise ValueError("the bootstrap needs at least two PSUs in every stratum")
        rng = np.random.default_rng(seed)
        mult = np.zeros((d.psu_stratum.size, replicates))
        for h in range(d.n_h.size):
            members = np.flatnonzero(d.psu_stratum == h)
            n_h = members.size
            for r in range(replicates):
                drawn = rng.choice(members, size=n_h - 1, replace=True)
                mult[:, r] += np.bincount(drawn, minlength=mult.shape[0]) * n_h / (n_h - 1)
        return self._with_replicates("bootstrap", mult, 1 / (replicates - 1), mse, None)

    def _with_replicates(self, kind: str, psu_mult: np.ndarray, scale: float, mse: bool, df: int | None) -> Design:
        base = self._base_w[:, None] * psu_mult[self._d.psu]
        weights = self._calibrate_replicates(base, self._steps)
        if df is None:
            df = int(np.linalg.matrix_rank(psu_mult)) - 1
        return self._derive(_rep=_Replicates(kind, base, weights, float(scale), bool(mse), int(df),
                                             np.ones(psu_mult.shape[1])))

    # ----------------------------------------------------------------------------------------------
    # estimates
    # ----------------------------------------------------------------------------------------------
    def mean(self, values, by=None, *, proportion: bool = False, level: float = 0.95, df: str = "domain",
             deff: str = "wor") -> pd.DataFrame:
        """Hájek means per domain (R ``svymean``/``svyby``; ``proportion=True``: ``svyciprop`` logit CI)."""
        return self._estimate("mean", values, None, by, level, df, proportion=proportion, deff=deff)

    def total(self, values, by=None, *, level: float = 0.95, df: str = "domain", deff: str = "wor") -> pd.DataFrame:
        """Horvitz–Thompson totals per domain (R ``svytotal``)."""
        return self._estimate("total", values, None, by, level, df, deff=deff)

    def ratio(self, numerator, denominator, by=None, *, level: float = 0.95, df: str = "domain") -> pd.DataFrame:
        """Ratios of totals Σwy / Σwx per domain (R ``svyratio``); one row per numerator column."""
        den = as_column_list(denominator, "denominator")
        if len(den) != 1:
            raise ValueError("ratio takes one denominator column")
        return self._estimate("ratio", numerator, den[0], by, level, df)

    def quantile(self, values, q: float | Sequence[float], by=None, *, level: float = 0.95,
                 df: str = "domain") -> pd.DataFrame:
        """Quantiles per domain (R ``svyquantile``: qrule "math", Woodruff interval "mean").

        The estimate is the smallest value whose weighted share at or below it is at least q. The
        interval inverts the confidence interval of the estimated share F̂(q̂) (calibration-aware);
        ``se`` = interval width / (2 · t).
        """
        qs = [q] if np.isscalar(q) else list(q)
        if not qs or any(not (isinstance(p, (int, float)) and 0 < p < 1) for p in qs):
            raise ValueError(f"q must be numbers strictly between 0 and 1, got {q!r}")
        level = require_level(level)
        vcols, bcols, ymat, dom, labels = self._inputs(values, by)
        rows = []
        for k, col in enumerate(vcols):
            y = ymat[k]
            for p in qs:
                qhat = np.array([_qrule(y, self._w * (dom == d), p) for d in range(len(labels))])
                below = np.where(np.isnan(y), np.nan, (y <= qhat[np.maximum(dom, 0)]).astype(float))
                fr = self._frame_for(below, dom)
                share = self._estimate("mean", "__v", None, "__dom", level, df, frame=fr)
                lo_p, hi_p = (share["est"] - share["_tq"] * share["se"]).to_numpy(), \
                    (share["est"] + share["_tq"] * share["se"]).to_numpy()
                lo = np.array([np.nan if not lo_p[d] >= 0 else _qrule(y, self._w * (dom == d), lo_p[d])
                               for d in range(len(labels))])
                hi = np.array([np.nan if not hi_p[d] <= 1 else _qrule(y, self._w * (dom == d), hi_p[d])
                               for d in range(len(labels))])
                tq = share["_tq"].to_numpy()
                out = labels.copy()
                out["variable"], out["q"] = col, p
                out["est"], out["se"] = qhat, (hi - lo) / (2 * tq)
                out["ci_lo"], out["ci_hi"] = lo, hi
                out["n"], out["df"] = share["n"].to_numpy(), share["df"].to_numpy()
                rows.append(out)
        return pd.concat(rows, ignore_index=True)

    def covariance(self, values, by, *, kind: str = "mean", denominator: Hashable | None = None) -> pd.DataFrame:
        """Covariance matrix of the domain estimates of one value column (``kind`` mean, total or ratio)."""
        vcols = as_column_list(values, "values")
        if len(vcols) != 1:
            raise ValueError("covariance takes one value column")
        if kind not in ("mean", "total", "ratio"):
            raise ValueError(f"kind must be 'mean', 'total' or 'ratio', got {kind!r}")
        if (kind == "ratio") != (denominator is not None):
            raise ValueError("a ratio needs a denominator column, and only a ratio takes one")
        _, _, ymat, dom, labels = self._inputs(vcols, by)
        xden = self._column(denominator) if denominator is not None else None
        est, _, _, x = _influence(kind, ymat[0], xden, self._w, dom, len(labels))
        if self._rep is None:
            cov = self._cov(x, full=True, member=self._members(ymat[0], xden, dom, len(labels)))
        else:
            cov = self._rep_cov(kind, ymat[0], xden, dom, len(labels), est)
        cov[np.isnan(est), :] = np.nan
        cov[:, np.isnan(est)] = np.nan
        index = pd.MultiIndex.from_frame(labels) if labels.shape[1] > 1 else pd.Index(labels.iloc[:, 0])
        return pd.DataFrame(cov, index=index, columns=index)

    def contrast(self, values, by, coefficients: Mapping, *, kind: str = "mean", denominator: Hashable | None = None,
                 level: float = 0.95) -> pd.DataFrame:
        """A linear combination Σ c_d θ_d of domain estimates with its SE from the covariance.

        *coefficients* maps domain labels (tuples for several *by* columns) to coefficients, e.g.
        ``{"SNV": 1, "STP": -1}`` for the difference of two agencies, or ``{("2024", "SNV"): 1,
        ("2023", "SNV"): -1}`` for one agency in two rounds of a pooled frame. The interval uses t with
        the design's degrees of freedom.
        """
        level = require_level(level)
        cov = self.covariance(values, by, kind=kind, denominator=denominator)
        table = self._estimate(kind, values, denominator, by, level, "design")
        keys = list(cov.index)
        unknown = [k for k in coefficients if k not in keys]
        if unknown:
            raise ValueError(f"coefficients name domains that are not in the data: {unknown}")
        c = np.array([float(coefficients.get(k, 0.0)) for k in keys])
        est = float(c @ table["est"].to_numpy())
        var = float(c @ np.nan_to_num(cov.to_numpy()) @ c)
        se = np.sqrt(max(var, 0.0))
        tq = _t_quantile(level, self.df)
        return pd.DataFrame({"est": [est], "se": [se], "ci_lo": [est - tq * se], "ci_hi": [est + tq * se],
                             "df": [self.df]})

    # ----------------------------------------------------------------------------------------------
    # machinery
    # ----------------------------------------------------------------------------------------------
    def _column(self, col: Hashable) -> np.ndarray:
        require_columns(self._frame, [col])
        return numeric_values(self._frame[col], str(col))

    def _inputs(self, values, by, frame: pd.DataFrame | None = None):
        frame = self._frame if frame is None else frame
        vcols = as_column_list(values, "values")
        if not vcols:
            raise ValueError("values must name at least one column")
        bcols = as_column_list(by, "by")
        require_columns(frame, vcols + bcols)
        ymat = np.vstack([numeric_values(frame[c], str(c)) for c in vcols])
        if np.any(np.isinf(ymat)):
            raise ValueError("value columns must not hold infinite values")
        dom, labels = _domains(frame, bcols)
        return vcols, bcols, ymat, dom, labels

    def _frame_for(self, values: np.ndarray, dom: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"__v": values, "__dom": np.where(dom >= 0, dom, -1)}).replace({"__dom": {-1: np.nan}})

    def _estimate(self, kind, values, denominator, by, level, df_rule, *, proportion=False, deff="wor",
                  frame=None):
        level = require_level(level)
        if deff not in ("wor", "replace"):
            raise ValueError(f"deff must be 'wor' or 'replace', got {deff!r}")
        if df_rule not in ("domain", "design"):
            raise ValueError(f"df must be 'domain' or 'design', got {df_rule!r}")
        vcols, bcols, ymat, dom, labels = self._inputs(values, by, frame)
        if proportion:
            ok = np.isnan(ymat) | (ymat == 0) | (ymat == 1)
            if not ok.all():
                raise ValueError("proportion=True needs value columns holding only 0, 1 or missing")
        xden = self._column(denominator) if denominator is not None else None
        n_dom = len(labels)
        if df_rule == "domain" and self._rep is None:
            dfs = self._domain_dfs(dom, n_dom)
        else:
            dfs = np.full(n_dom, self.df)
        tq = np.array([_t_quantile(level, v) for v in dfs])
        fast = self._rep is None and kind in ("mean", "total") and self._aggregated_ok()
        agg, agg_stats = self._aggregated_var(kind, ymat, dom, n_dom) if fast else (None, None)
        parts = []
        for k, col in enumerate(vcols):
            y = ymat[k]
            if fast:
                est, n, s_w, wsq, rss = agg_stats[:, k]
                extra, var = (s_w, wsq, rss), agg[k]
            else:
                est, n, extra, x = _influence(kind, y, xden, self._w, dom, n_dom)
                var = self._var(x, self._members(y, xden, dom, n_dom)) if self._rep is None \
                    else np.diag(self._rep_cov(kind, y, xden, dom, n_dom, est))
            se = np.where(np.isnan(est), np.nan, np.sqrt(np.maximum(var, 0.0)))
            out = labels.copy()
            out["variable"] = col
            out["est"], out["se"] = est, se
            if proportion:
                lo, hi = _logit_ci(est, se, tq)
                edge = (est == 0) | (est == 1)
                if np.any(edge):
                    blo, bhi = _beta_ci(est, se, n, int(np.min(dfs)), 1 - level)
                    lo, hi = np.where(edge, blo, lo), np.where(edge, bhi, hi)
            else:
                lo, hi = est - tq * se, est + tq * se
            out["ci_lo"], out["ci_hi"] = lo, hi
            out["n"] = n.astype(np.int64)
            out["df"] = dfs
            if extra is not None:
                # R's deff: V / V_srs, V_srs = s²/n (1 − n/N̂) for a mean (× N̂² for a total)
                wsum, wsq, rss = extra
                with np.errstate(invalid="ignore", divide="ignore"):
                    out["n_eff"] = np.where(wsq > 0, wsum**2 / np.where(wsq > 0, wsq, 1.0), np.nan)
                    v_srs = rss / wsum * n / (n - 1) / n
                    if deff == "wor":
                        v_srs = v_srs * (1 - n / wsum)
                    if kind == "total":
                        v_srs = v_srs * wsum**2
                    out["deff"] = var / v_srs
            with np.errstate(invalid="ignore", divide="ignore"):
                out["cv"] = np.where(est != 0, se / np.abs(est), np.nan)
            out["_tq"] = tq
            parts.append(out)
        result = pd.concat(parts, ignore_index=True)
        return result if frame is not None else result.drop(columns="_tq")

    def _domain_df(self, rows: np.ndarray) -> int:
        """R's degf of the domain: distinct PSUs with positive weight − their strata."""
        psus = np.unique(self._d.psu[rows & (self._w > 0)])
        return int(psus.size - np.unique(self._d.psu_stratum[psus]).size)

    def _var(self, x: np.ndarray, member: sp.csc_array | None = None) -> np.ndarray:
        """Diagonal of the linearised covariance of the columns of *x* (n × J), in column blocks."""
        step = max(1, _BLOCK // max(x.shape[0], 1))
        if not x.shape[1]:
            return np.zeros(0)
        return np.concatenate([self._cov(x[:, a:a + step], full=False,
                                         member=None if member is None else member[:, a:a + step])
                               for a in range(0, x.shape[1], step)])

    def _members(self, y: np.ndarray, xden: np.ndarray | None, dom: np.ndarray, n_dom: int) -> sp.csc_array | None:
        """The rows of each domain with a value, when the ``"average"`` rule needs them (see ``_cov``).

        R's subset of an uncalibrated design drops the other rows, and with them the strata the
        domain does not touch; a calibrated design keeps every row.
        """
        if self.lonely_psu != "average" or self._steps or not any(st.lonely.any() for st in self._stages):
            return None
        valid = ~np.isnan(y) if xden is None else ~np.isnan(y) & ~np.isnan(xden)
        rows = np.flatnonzero(valid & (dom >= 0))
        return sp.csc_array((np.ones(rows.size), (rows, dom[rows])), shape=(y.size, n_dom))

    def _cov(self, x: np.ndarray, *, full: bool, member: sp.csc_array | None = None) -> np.ndarray:
        """Linearised covariance (J × J, or its diagonal when not *full*) of influence columns *x*: the
        calibrations' projection, then R's ``multistage``: each stage's between-unit variance, the later
        stages weighted by the earlier stages' sampling fractions.

        *member* (n × J, optional) marks the rows each column's domain holds; under ``"average"`` a
        domain then counts only the strata it touches, as R's ``svyby`` does on the domain's subset.
        """
        x = self._project(np.array(x, dtype=np.float64))
        v = 0.0
        for stage in self._stages:
            touched = None if member is None else sp.csr_array(stage.strata @ member).toarray() > 0
            v = v + _stage_variance(stage.units @ x, stage, self.lonely_psu, touched, full)
        return v

    def _aggregated_ok(self) -> bool:
        """The sums-only variance applies: one calibration, PSUs nested in its cells, no lonely adjust."""
        if len(self._steps) != 1 or self._steps[0].kind == "cal" or len(self._stages) > 1 \
                or (self.lonely_psu in ("adjust", "fail") and np.any(self._d.lonely)):
            return False
        if self._agg is None:
            step = self._steps[0]
            cell, n_cell = _cross_codes(step.codes, step.sizes)
            psu = self._d.psu
            # a PSU of one row lies in one cell; otherwise count the distinct PSU × cell pairs
            nested = self._d.row_psu or np.unique(psu * np.int64(n_cell) + cell).size == self._d.psu_stratum.size
            self._agg = (cell, n_cell) if nested else False
        return self._agg is not False

    def _aggregated_var(self, kind: str, ymat: np.ndarray, dom: np.ndarray, n_dom: int,
                        chunk: int = 4) -> np.ndarray:
        """Linearised variances (K × D) of domain means or totals after one calibration, from sums alone.

        The projection's correction is constant within the calibration's cells: r_i = r0_i − β_c(i)
        with r = x/w, so R's projection (ten backfitting sweeps for raking, one weighted centring for
        post-stratification) runs on the C × D table of cell sums. With PSUs nested in cells, the PSU
        totals are Z_p = X0_p − β_c(p) W_p, and Σ_p Z², Σ_p Z per stratum expand into sums over
        stratum × cell (× domain) of W_p, W_p², W_p·X0_p: a few passes over the rows for a few
        columns at a time, whatever the number of domains.
        """
        step = self._steps[0]
        cell, n_cell = self._agg
        d, w = self._d, self._w
        n_str, n_psu = d.n_h.size, d.psu_stratum.size
        in_dom = dom >= 0
        dc = np.where(in_dom, dom, 0)
        omega = np.ones_like(w) if step.kind == "rake" else step.before
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(w > 0, omega / np.where(w > 0, w, 1.0), 0.0)    # r0 = x0 / w, weighted by ω
        cd = cell * np.int64(n_dom) + dc
        # PSU × domain cells of the rows in a domain, shared by every column
        # (all rows, the usual case, as a slice: views instead of copies of every row below)
        rows = slice(None) if in_dom.all() else np.flatnonzero(in_dom)
        if d.row_psu:   # every row its own PSU: the cells are the rows
            p_of, d_of = d.psu[rows], dc[rows]
            n_pd = p_of.size
            inv = np.arange(n_pd)
        else:
            uniq, inv = np.unique(d.psu[rows] * np.int64(n_dom) + dc[rows], return_inverse=True)
            inv, p_of, d_of, n_pd = inv.ravel(), uniq // n_dom, uniq % n_dom, uniq.size
        w_p = np.bincount(d.psu, weights=w, minlength=n_psu)
        cell_p = np.zeros(n_psu, dtype=np.int64)
        cell_p[d.psu] = cell
        hc = d.psu_stratum * np.int64(n_cell) + cell_p
        w_hc = np.bincount(hc, weights=w_p, minlength=n_str * n_cell).reshape(n_str, n_cell)
        w2_hc = np.bincount(hc, weights=w_p * w_p, minlength=n_str * n_cell).reshape(n_str, n_cell)
        hd = d.psu_stratum[p_of] * np.int64(n_dom) + d_of
        # each PSU × domain cell's calibration cell × domain (into beta) and PSU weight, for every column
        cd_of = cell_p[p_of] * np.int64(n_dom) + d_of
        w_of = w_p[p_of]
        if step.kind == "rake":
            counts = np.bincount(cell, minlength=n_cell).astype(float)
            margins = []
            for codes, size in zip(_margin_codes(step.codes, step.sizes, cell, n_cell), step.sizes):
                member = np.zeros((size, n_cell))
                member[codes, np.arange(n_cell)] = 1.0
                margins.append((codes, member, member @ counts))
        else:
            oldw = np.bincount(cell, weights=step.before, minlength=n_cell)
        f = 1 - d.f_h
        scale_h = np.where(d.n_h > 1, f * d.n_h / np.maximum(d.n_h - 1, 1), 0.0)
        scale_h = np.where(f < 1e-7, 0.0, scale_h)
        keys: dict = {}

        def gsum(name, codes, n_groups, x):
            """Σ of the rows of x (k × n) within groups: one bincount, its key built once per shape."""
            key = keys.get((name, x.shape[0]))
            if key is None:
                key = keys[(name, x.shape[0])] = (np.arange(x.shape[0], dtype=np.int64)[:, None] * n_groups
                                                  + codes[None, :]).ravel()
            return np.bincount(key, weights=x.ravel(), minlength=x.shape[0] * n_groups).reshape(x.shape[0], n_groups)

        out = np.empty((ymat.shape[0], n_dom))
        stats_ = np.empty((5, ymat.shape[0], n_dom))     # est, n, Σw, Σw², Σw(y − ȳ)² per column and domain
        for a in range(0, ymat.shape[0], chunk):
            y = ymat[a:a + chunk]
            k = y.shape[0]
            valid = ~np.isnan(y) & in_dom
            wm = np.where(valid, w, 0.0)
            wmy = wm * np.where(valid, y, 0.0)
            s_w, s_wy = gsum("d", dc, n_dom, wm), gsum("d", dc, n_dom, wmy)
            with np.errstate(invalid="ignore", divide="ignore"):
                ybar = np.where(s_w > 0, s_wy / np.where(s_w > 0, s_w, 1.0), np.nan)
            dev = np.where(valid, y - np.nan_to_num(ybar)[:, dc], 0.0)
            stats_[:, a:a + k] = (ybar if kind == "mean" else s_wy, gsum("d", dc, n_dom, valid.astype(float)), s_w,
                                  gsum("d", dc, n_dom, wm * wm), gsum("d", dc, n_dom, wm * dev * dev))
            if kind == "mean":
                center = np.nan_to_num(ybar)
                with np.errstate(invalid="ignore", divide="ignore"):
                    scale_d = np.where(s_w > 0, 1 / np.where(s_w > 0, s_w, 1.0), 0.0)
            else:
                center, scale_d = np.zeros((k, n_dom)), np.ones((k, n_dom))
            r0 = ((gsum("cd", cd, n_cell * n_dom, wmy * ratio).reshape(k, n_cell, n_dom)
                   - center[:, None, :] * gsum("cd", cd, n_cell * n_dom, wm * ratio).reshape(k, n_cell, n_dom))
                  * scale_d[:, None, :])                                            # Σ ω r0 per cell
            if step.kind == "rake":
                beta = np.zeros_like(r0)
                for _ in range(RAKE_PROJECTION_SWEEPS):
                    for codes, member, num in margins:
                        tot = np.einsum("sc,kcd->ksd", member, r0 - counts[None, :, None] * beta)
                        beta += np.nan_to_num(tot / num[None, :, None])[:, codes, :]
            else:
                beta = np.nan_to_num(r0 / oldw[None, :, None])
            if d.row_psu:
                x0 = (wmy[:, rows] - center[:, d_of] * wm[:, rows]) * scale_d[:, d_of]   # X0 per PSU × domain
            else:
                x0 = ((gsum("pd", inv, n_pd, wmy[:, rows]) - center[:, d_of] * gsum("pd", inv, n_pd, wm[:, rows]))
                      * scale_d[:, d_of])
            s1 = gsum("hd", hd, n_str * n_dom, x0).reshape(k, n_str, n_dom)
            s2 = gsum("hd", hd, n_str * n_dom, x0 * x0).reshape(k, n_str, n_dom)
            cross = gsum("hd", hd, n_str * n_dom, np.take(beta.reshape(k, -1), cd_of, axis=1) * w_of * x0
                         ).reshape(k, n_str, n_dom)
            sum2 = s2 - 2 * cross + np.einsum("hc,kcd->khd", w2_hc, beta * beta)
            sum1 = s1 - np.einsum("hc,kcd->khd", w_hc, beta)
            out[a:a + k] = np.einsum("h,khd->kd", scale_h, np.maximum(sum2 - sum1 * sum1 / d.n_h[None, :, None], 0.0))
        lonely = d.lonely
        if self.lonely_psu == "average" and lonely.any() and not lonely.all():
            out = out * n_str / (n_str - lonely.sum())
        return out, stats_

    def _domain_dfs(self, dom: np.ndarray, n_dom: int) -> np.ndarray:
        """R's degf of every domain: distinct PSUs with positive weight it touches − their strata."""
        d = self._d
        rows = (dom >= 0) & (self._w > 0)
        if not d.row_psu:
            return _domain_df(d, d.psu[rows], dom[rows], n_dom)
        n_str = d.n_h.size
        strata = np.bincount(dom[rows] * np.int64(n_str) + d.psu_stratum[d.psu[rows]], minlength=n_dom * n_str)
        return np.bincount(dom[rows], minlength=n_dom) - (strata.reshape(n_dom, n_str) > 0).sum(axis=1)

    def _rep_cov(self, kind, y, xden, dom, n_dom, est) -> np.ndarray:
        rep = self._rep
        thetas = np.column_stack([_influence(kind, y, xden, rep.weights[:, r], dom, n_dom, estimate_only=True)
                                  for r in range(rep.weights.shape[1])])          # D × R
        center = est[:, None] if rep.mse else np.nanmean(thetas[:, rep.rscales > 0], axis=1, keepdims=True)
        dev = thetas - center
        return rep.scale * ((dev * rep.rscales) @ dev.T)


def _cross_codes(codes: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[np.ndarray, int]:
    """One code per row for the cross-classification of several category codes (observed cells only)."""
    key = np.zeros(codes[0].size, dtype=np.int64)
    for c, size in zip(codes, sizes):
        key = key * np.int64(size) + c
    cell, uniq = pd.factorize(key)
    return np.asarray(cell, dtype=np.int64), len(uniq)


def _margin_codes(codes, sizes, cell, n_cell) -> list[np.ndarray]:
    """Each margin's category of every cell of the cross-classification."""
    out = []
    for c, size in zip(codes, sizes):
        per_cell = np.zeros(n_cell, dtype=np.int64)
        per_cell[cell] = c
        out.append(per_cell)
    return out


def _cell_codes(frame: pd.DataFrame, cols: list) -> tuple[np.ndarray, int]:
    require_columns(frame, cols)
    require_no_missing(frame, cols, "calibration")
    keys = frame[cols[0]] if len(cols) == 1 else pd.MultiIndex.from_frame(frame[cols])
    codes, uniq = pd.factorize(keys)
    return np.asarray(codes, dtype=np.int64), len(uniq)


def _center(x: np.ndarray, codes: np.ndarray, size: int, w: np.ndarray, oldw: np.ndarray | None) -> np.ndarray:
    """x − w · mean(x/w within category): weighted by *oldw* (post-stratification) or unweighted (raking)."""
    psw = w.copy()
    if oldw is not None:
        psw[(psw == 0) & (oldw == 0)] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(psw[:, None] > 0, x / psw[:, None], 0.0)
    m = sp.csr_array((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(size, codes.size))
    if oldw is None:
        means = (m @ ratio) / np.bincount(codes, minlength=size)[:, None]
    else:
        means = (m @ (ratio * oldw[:, None])) / np.bincount(codes, weights=oldw, minlength=size)[:, None]
    return x - psw[:, None] * np.nan_to_num(means)[codes]


def _regression_residual(x: np.ndarray, mm: np.ndarray, w0: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x − w · x'β̂ with β̂ the w0-weighted least-squares fit of x/w on the calibration variables
    (R's ``qr.resid`` on √w0-scaled rows, for a ``calibrate``d design)."""
    root = np.sqrt(w0)
    with np.errstate(invalid="ignore", divide="ignore"):
        back = np.where(root > 0, w / np.where(root > 0, root, 1.0), 0.0)          # R's g · √w0
        b = np.where(back[:, None] != 0, x / np.where(back != 0, back, 1.0)[:, None], 0.0)
    a = mm * root[:, None]
    beta = np.linalg.lstsq(a, b, rcond=None)[0]
    return (b - a @ beta) * back[:, None]


def _per_stage(value, name: str) -> list:
    """A design argument as one column per stage: None, a column name, or a list of them."""
    if value is None:
        return []
    out = list(value) if isinstance(value, list | tuple) else [value]
    if any(v is None for v in out[1:]) or (name != "strata" and any(v is None for v in out)):
        raise ValueError(f"{name} must name a column for every stage")
    return out


def _membership(codes: np.ndarray, size: int) -> sp.csr_array:
    return sp.csr_array((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(size, codes.size))


def _stages(frame: pd.DataFrame, first: _Design, psus: list, stratas: list, fpcs: list) -> tuple[_Stage, ...]:
    """The sampling stages of the variance: the first from *first*, each later one (when every stage has
    an fpc, as R requires to go past the first) with its units nested in those of the stage before."""
    n_str = first.n_h.size
    row_stratum = first.psu_stratum[first.psu]
    stages = [_Stage(_membership(first.psu, first.psu_stratum.size), _membership(row_stratum, n_str), row_stratum,
                     first.psu_stratum, first.n_h, first.f_h, np.ones(n_str), np.zeros(n_str, dtype=np.int64), 1)]
    if len(psus) < 2 or not fpcs:
        return tuple(stages)
    if len(fpcs) != len(psus):
        raise ValueError("a multistage design with fpc needs one fpc column per stage")
    unit = first.psu
    for k in range(1, len(psus)):
        prev = stages[-1]
        strata_col = stratas[k] if k < len(stratas) else None
        cols = [c for c in (psus[k], strata_col, fpcs[k]) if c is not None]
        require_columns(frame, cols)
        require_no_missing(frame, cols, "design")
        label = pd.factorize(frame[strata_col])[0] if strata_col is not None else np.zeros(len(frame), np.int64)
        stratum, pairs = pd.factorize(unit * np.int64(label.max() + 1) + label)
        group = np.asarray(pairs // (label.max() + 1), dtype=np.int64)          # the unit of the stage before
        cluster = pd.factorize(frame[psus[k]])[0]
        unit, upairs = pd.factorize(stratum * np.int64(cluster.max() + 1) + cluster)
        unit_stratum = np.asarray(upairs // (cluster.max() + 1), dtype=np.int64)
        n_h = np.bincount(unit_stratum).astype(np.float64)
        f_h = _stage_fraction(numeric_values(frame[fpcs[k]], str(fpcs[k])), stratum, n_h, fpcs[k])
        parent_stratum = prev.unit_stratum[group]
        mult = prev.mult[parent_stratum] * prev.f_h[parent_stratum]
        stages.append(_Stage(_membership(unit, unit_stratum.size), _membership(stratum, n_h.size), stratum,
                             unit_stratum, n_h, f_h, mult, group, prev.unit_stratum.size))
    return tuple(stages)


def _stage_fraction(fv: np.ndarray, stratum: np.ndarray, n_h: np.ndarray, name) -> np.ndarray:
    """The sampling fraction of each stratum of a stage from its fpc (a population size, or a fraction <= 1)."""
    lo, hi = np.full(n_h.size, np.inf), np.full(n_h.size, -np.inf)
    np.minimum.at(lo, stratum, fv)
    np.maximum.at(hi, stratum, fv)
    if np.any(lo != hi):
        raise ValueError(f"fpc column {name!r} must be constant within each stratum of its stage")
    if np.any(lo <= 0):
        raise ValueError(f"fpc column {name!r} must be positive")
    f_h = np.where(lo <= 1, lo, n_h / lo)
    if np.any(f_h > 1 + 1e-12):
        raise ValueError(f"fpc column {name!r}: a population size is smaller than the number of sampled units")
    return f_h


def _stage_variance(z: np.ndarray, stage: _Stage, rule: str, touched: np.ndarray | None, full: bool) -> np.ndarray:
    """One stage's Σ_h mult_h (1 − f_h) n_h/(n_h − 1) Σ_p (Z_hp − Z̄_h)² over its units' totals *z*
    (units × J), with R's rules for a stratum of one unit (``onestrat`` of survey 4.1):
    ``certainty`` and ``remove`` add nothing, ``adjust`` adds (1 − f_h) Z_p² (the unit left uncentred),
    ``average`` leaves the stratum out and scales the strata that share its unit of the stage before
    by their number over the number with more than one unit, counting only the strata a column
    *touches* (strata × J) when given (a covariance takes the geometric mean of its two columns' factors)."""
    h = stage.unit_stratum
    sums = np.zeros((stage.n_h.size, z.shape[1]))
    np.add.at(sums, h, z)
    center = sums / stage.n_h[:, None]
    f = 1 - stage.f_h
    lonely = stage.lonely
    if lonely.any() and rule == "fail":
        raise ValueError(f"{int(lonely.sum())} stratum(s) have a single PSU (lonely_psu='fail')")
    if rule == "adjust":
        center[lonely] = 0.0
    zc = z - center[h]
    scale = np.where(stage.n_h > 1, f * stage.n_h / np.maximum(stage.n_h - 1, 1), f) * stage.mult
    scale[f < 1e-7] = 0.0
    if rule == "average" and lonely.any():
        scale[lonely] = 0.0
        seen = np.ones((stage.n_h.size, z.shape[1]), bool) if touched is None else touched
        n_all, n_ok = np.zeros((stage.n_groups, z.shape[1])), np.zeros((stage.n_groups, z.shape[1]))
        np.add.at(n_all, stage.group, seen)
        np.add.at(n_ok, stage.group, seen & ~lonely[:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(n_ok > 0, n_all / np.where(n_ok > 0, n_ok, 1.0), np.where(n_all > 0, np.nan, 1.0))
        zc = zc * np.sqrt(scale[:, None] * factor[stage.group])[h]
        return zc.T @ zc if full else np.einsum("pj,pj->j", zc, zc)
    s = scale[h]
    return (zc.T * s) @ zc if full else np.einsum("pj,pj,p->j", zc, zc, s)


def _influence(kind, y, xden, w, dom, n_dom, *, estimate_only=False):
    """Estimates per domain and, unless *estimate_only*, the n × D influence matrix.

    Rows with a missing value (or denominator) carry no weight, like R's ``na.rm=TRUE``.
    """
    valid = ~np.isnan(y) if xden is None else ~np.isnan(y) & ~np.isnan(xden)
    in_dom = dom >= 0
    wm = np.where(valid & in_dom, w, 0.0)
    y0 = np.where(valid, y, 0.0)
    dcode = np.where(in_dom, dom, 0)
    s_w = np.bincount(dcode, weights=wm, minlength=n_dom)
    s_wy = np.bincount(dcode, weights=wm * y0, minlength=n_dom)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "mean":
            est = np.where(s_w > 0, s_wy / np.where(s_w > 0, s_w, 1.0), np.nan)
        elif kind == "total":
            est = s_wy
        else:
            x0 = np.where(valid, xden, 0.0)
            s_wx = np.bincount(dcode, weights=wm * x0, minlength=n_dom)
            est = np.where(s_wx != 0, s_wy / np.where(s_wx != 0, s_wx, 1.0), np.nan)
    if estimate_only:
        return est
    n = np.bincount(dcode, weights=(valid & in_dom).astype(float), minlength=n_dom)
    extra = None
    if kind in ("mean", "total"):
        with np.errstate(invalid="ignore", divide="ignore"):
            ybar = np.nan_to_num(s_wy / s_w)
        wsq = np.bincount(dcode, weights=wm * wm, minlength=n_dom)
        rss = np.bincount(dcode, weights=wm * (y0 - ybar[dcode]) ** 2, minlength=n_dom)
        extra = (s_w, wsq, rss)
    rows = np.flatnonzero(in_dom)
    cols = dom[rows]
    e = np.nan_to_num(est)[cols]
    if kind == "mean":
        vals = wm[rows] * (y0[rows] - e) / np.where(s_w > 0, s_w, 1.0)[cols]
    elif kind == "total":
        vals = wm[rows] * y0[rows]
    else:
        vals = wm[rows] * (y0[rows] - e * x0[rows]) / np.where(s_wx != 0, s_wx, 1.0)[cols]
    x = np.zeros((y.size, n_dom))
    x[rows, cols] = vals
    return est, n, extra, x


def _qrule(y: np.ndarray, w: np.ndarray, p: float) -> float:
    """R's qrule "math" (Hyndman–Fan 1): the smallest y whose cumulative weight share is >= p."""
    keep = ~np.isnan(y) & (w > 0)
    if not keep.any():
        return np.nan
    yk, wk = y[keep], w[keep]
    order = np.argsort(yk, kind="stable")
    yk, cum = yk[order], np.cumsum(wk[order])
    below = np.flatnonzero(cum <= p * cum[-1])
    pos = below[-1] if below.size else 0
    if below.size and p - cum[pos] / cum[-1] <= 0:
        return float(yk[pos])
    return float(yk[min(pos + 1, yk.size - 1)]) if below.size else float(yk[0])


def _t_quantile(level: float, df: float) -> float:
    if df == np.inf:
        return float(stats.norm.ppf(0.5 + level / 2))
    return float(stats.t.ppf(0.5 + level / 2, df)) if df >= 1 else np.nan
