"""Rebuild a round's published tables from its tidy answers export alone, with :class:`analysis.Design`.

    python scripts/reproduce/reproduce.py answers.csv table.csv

The same method as ``reproduce.R`` beside it (docs/analysis.md, "Reproducing the published tables"): a sheet ×
agency rated is a unit, its score on a criterion the mean of its valid item values; an agency's score is the
fixed-share composite Σ_g a_g M_g of its groups' mean scores (a_g = ``group_share``), whose standard error is
that of the contrast of the group means in the design with the quota cells as strata, the respondents as PSUs
and each cell's sampling fraction as fpc; the survey-points total is linear in the group means, so its standard
error is that of the total of its influence values. Writes one row per agency and indicator (a criterion code,
``survey_points`` or ``satisfaction``): est, se, ci_lo, ci_hi, df.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis import Design

LEVEL = 0.95


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, na_values=[""])


def _units(a: pd.DataFrame, criteria: list[str]) -> pd.DataFrame:
    """One row per sheet × agency: design variables, score m_c and share a_c per criterion, satisfaction counts."""
    keys = ["response_id", "agency"]
    units = a.drop_duplicates(keys)[[*keys, "agency_kind", "group", "stratum", "sampling_fraction"]]
    units = units.set_index(keys)
    valid = a[a["value"].notna()]
    for c in criteria:
        rows = valid[valid["criterion"] == c].groupby(keys)
        units[f"m_{c}"] = rows["value"].mean()
        units[f"a_{c}"] = rows["group_share"].max()
    sat = a[a["positive"].notna() & (a["satisfaction_share"] > 0)].groupby(keys)
    units["pos"], units["ans"] = sat["positive"].sum(), sat["positive"].size()
    units["a_satisfaction"] = sat["satisfaction_share"].max()
    for c in criteria:  # a unit whose group does not count carries no score for the criterion
        units.loc[~(units[f"a_{c}"] > 0), f"m_{c}"] = np.nan
    return units.fillna({"ans": 0, "pos": 0, "a_satisfaction": 0}).reset_index()


def _df(rows: pd.DataFrame) -> int:
    """R's degf of a subset: its PSUs minus their strata."""
    return rows["response_id"].nunique() - rows["stratum"].nunique()


def _t(df: float) -> float:
    return float(stats.t.ppf(1 - (1 - LEVEL) / 2, df))


def reproduce(answers: Path) -> pd.DataFrame:
    a = _read(answers)
    # the maximum points of every criterion per agency kind: the companion file, or the answers' own column
    companion = answers.with_name(f"{answers.stem}.criteria.csv")
    maxp = _read(companion) if companion.exists() else \
        a.loc[a["max_points"].notna(), ["agency_kind", "criterion", "max_points"]].drop_duplicates()
    criteria = sorted(maxp["criterion"].unique())
    units = _units(a, criteria)
    units["w"] = 1.0  # every response weighs 1 within its group, as R's weights=~1 (the fpc gives no weights)
    design = Design(units, weight="w", strata="stratum", psu="response_id", fpc="sampling_fraction",
                    lonely_psu="adjust")
    out = []
    influence = pd.Series(0.0, index=units.index)
    for c in criteria:
        m, share = f"m_{c}", f"a_{c}"
        rows = units[units[m].notna()]
        group_mean = rows.groupby(["agency", "group"])[m].transform("mean")
        group_n = rows.groupby(["agency", "group"])[m].transform("size")
        # Σ_g a_g M_g: a contrast of the agency × group means, with their design covariance
        shares = rows.groupby(["agency", "group"])[share].max()
        means = design.mean(m, ["agency", "group"]).set_index(["agency", "group"])["est"]
        cov = design.covariance(m, ["agency", "group"])
        for agency, by_group in shares.groupby(level="agency"):
            keys, coef = list(by_group.index), by_group.to_numpy()
            s = float(means.loc[keys].to_numpy() @ coef)
            se = float(np.sqrt(coef @ cov.loc[keys, keys].to_numpy() @ coef))
            kind = rows.loc[rows["agency"] == agency, "agency_kind"].iloc[0]
            points = float(maxp.loc[(maxp["agency_kind"] == kind) & (maxp["criterion"] == c), "max_points"].iloc[0])
            df = _df(rows[rows["agency"] == agency])
            out.append((agency, c, points * s, points * se, points * (s - _t(df) * se), points * (s + _t(df) * se), df))
            # the total's influence value of each unit: max points × a_g (m − M_g) / n_g
            at = rows.index[rows["agency"] == agency]
            influence[at] += points * rows.loc[at, share] * (rows.loc[at, m] - group_mean[at]) / group_n[at]
    table = pd.DataFrame(out, columns=["agency", "indicator", "est", "se", "ci_lo", "ci_hi", "df"])
    # the survey-points total of agencies with every criterion of their kind
    needed = maxp.groupby("agency_kind")["criterion"].size()
    have = table.groupby("agency")["indicator"].size()
    kinds = units.drop_duplicates("agency").set_index("agency")["agency_kind"]
    complete = [t for t in have.index if have[t] == needed[kinds[t]]]
    used = units[[f"m_{c}" for c in criteria]].notna().any(axis=1)
    frame = units.assign(u=influence, used_agency=np.where(used, units["agency"], None))
    totals = Design(frame, weight="w", strata="stratum", psu="response_id", fpc="sampling_fraction",
                    lonely_psu="adjust").total("u", "used_agency").set_index("used_agency")
    rows = []
    for t in complete:
        est = table.loc[table["agency"] == t, "est"].sum()
        se, df = float(totals.loc[t, "se"]), _df(frame[frame["used_agency"] == t])
        rows.append((t, "survey_points", est, se, est - _t(df) * se, est + _t(df) * se, df))
    table = pd.concat([table, pd.DataFrame(rows, columns=table.columns), _satisfaction(units, design)])
    return table.sort_values(["agency", "indicator"]).reset_index(drop=True)


def _satisfaction(units: pd.DataFrame, design: Design) -> pd.DataFrame:
    """TLHL (%): the composite of the groups' ratios positive / answers, its logit interval, or, where every answer
    agrees, Korn–Graubard with the effective size n / deff of the agency kind (pooled over its other agencies)."""
    rows = units[(units["ans"] > 0) & (units["a_satisfaction"] > 0)].copy()
    shares = rows.groupby(["agency", "group"])["a_satisfaction"].max()
    ratios = design.ratio("pos", "ans", ["agency", "group"]).set_index(["agency", "group"])["est"]
    cov = design.covariance("pos", ["agency", "group"], kind="ratio", denominator="ans")
    out = []
    for agency, by_group in shares.groupby(level="agency"):
        keys = list(by_group.index)
        c = by_group.to_numpy()
        p = float(ratios.loc[keys].to_numpy() @ c)
        var = float(c @ cov.loc[keys, keys].to_numpy() @ c)
        sub = rows[rows["agency"] == agency]
        w = sub["ans"] * sub["a_satisfaction"] / sub.groupby("group")["ans"].transform("sum")
        y = sub["pos"] / sub["ans"]
        n = len(sub)
        v_srs = float((w * (y - p) ** 2).sum() * n / (n - 1) / n) if n > 1 else np.nan
        out.append((agency, sub["agency_kind"].iloc[0], p, var, v_srs, n, _df(sub)))
    sat = pd.DataFrame(out, columns=["agency", "kind", "p", "var", "v_srs", "n", "df"])
    edge = sat["p"].isin([0.0, 1.0])
    inner = sat[~edge & (sat["v_srs"] > 0)]
    pooled = (inner.groupby("kind")["var"].sum() / inner.groupby("kind")["v_srs"].sum()).clip(lower=1.0)
    deff = sat["kind"].map(pooled).fillna(1.0)
    alpha = 1 - LEVEL
    se = np.sqrt(sat["var"])
    tq = stats.t.ppf(1 - alpha / 2, sat["df"])
    with np.errstate(divide="ignore", invalid="ignore"):
        logit = np.log(sat["p"] / (1 - sat["p"]))
        lo = 1 / (1 + np.exp(-(logit - tq * se / (sat["p"] * (1 - sat["p"])))))
        hi = 1 / (1 + np.exp(-(logit + tq * se / (sat["p"] * (1 - sat["p"])))))
        n_eff = sat["n"] / deff * (stats.t.ppf(alpha / 2, sat["n"] - 1) / stats.t.ppf(alpha / 2, sat["df"])) ** 2
    lo = np.where(edge, np.where(sat["p"] == 1, stats.beta.ppf(alpha / 2, n_eff, 1), 0.0), lo)
    hi = np.where(edge, np.where(sat["p"] == 0, stats.beta.ppf(1 - alpha / 2, 1, n_eff), 1.0), hi)
    return pd.DataFrame({"agency": sat["agency"], "indicator": "satisfaction", "est": 100 * sat["p"],
                         "se": np.where(edge, np.nan, 100 * se), "ci_lo": 100 * lo, "ci_hi": 100 * hi,
                         "df": sat["df"]})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python reproduce.py answers.csv table.csv", file=sys.stderr)
        return 2
    reproduce(Path(argv[0])).to_csv(argv[1], index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
