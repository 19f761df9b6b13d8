"""The citizens' satisfaction survey (SIPAS-style): shares of satisfied respondents per element and overall,
per agency, per kind of agency, per commune of residence and for the province, with design-based intervals;
the improvements wanted; response rates; and the verdict on each target (:mod:`analysis.targets`, as for every
round).

Levels: the province, each kind of agency, each agency and, where responses name the commune their household
lives in (paper sheets handed to the households of a household frame's commune), each commune of residence:
a domain of the same design, whatever agencies its households rated.

Design: each agency is a stratum (its quota cell; paper and online answers about it are pooled), each
respondent a unit drawn from the agency's population ``N`` (the people its frame lists), so the weight is
``N / n`` with ``n`` the agency's counted respondents, and the variance has the finite-population correction
``1 - n / N``. A respondent counts when the screening answer is eligible and their investigator is not
quarantined by phúc tra.

Element index: our working definition unless the round says otherwise, the weighted share of valid answers
(an excluded option such as "Không áp dụng / Không nhớ" is not valid) that are satisfied options (Hài lòng,
Rất hài lòng). The official formula of Quyết định 1001/QĐ-BNV was not found.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.estimation import domain_means
from analysis.targets import assign_targets, target_verdicts

__all__ = ["CitizenResults", "OVERALL", "POOLED", "TARGET_OVERALL", "citizen_results", "counted", "response_rates"]

#: The measure name of the overall satisfaction item in the shares table.
OVERALL = "overall"
#: The investigator (or commune) of responses pooled because their investigators (communes) had fewer than k
#: sheets in the quota cell.
POOLED = "*"
#: A round's target indicator for the overall item (an element's targets name the element's code).
TARGET_OVERALL = "satisfaction"


@dataclass(frozen=True)
class CitizenResults:
    """``shares``: one row per level × domain × measure (``level`` province, kind, agency or commune; ``domain``
    the kind, agency or commune code, "" for the province; ``measure`` an element code or :data:`OVERALL`) with
    ``est``, ``se``, ``ci_lo``, ``ci_hi``, ``n`` (valid answers), ``target`` (a share), ``verdict``
    (:data:`analysis.targets.VERDICTS` keys, None without a target or a figure) and ``withheld`` (fewer than
    ``min_group`` valid answers: no figure). ``improvements``: per level × domain × option, the weighted share
    of counted respondents naming it among their (up to three) improvements. ``excluded``: responses left
    out, by reason."""

    shares: pd.DataFrame
    improvements: pd.DataFrame
    excluded: dict[str, int]


def counted(frame: pd.DataFrame, *, screening: str, eligible: Sequence[str],
            quarantined: set[str] = frozenset(), pools_out: set = frozenset()) -> tuple[pd.DataFrame, dict[str, int]]:
    """The responses that count, and how many were left out by reason: not eligible by the screening item,
    or of a quarantined investigator: named, or pooled in a quota cell (``cell`` column) of ``pools_out``,
    whose pool may hold a quarantined investigator's sheets (an investigator can be named in one cell and
    pooled in another)."""
    eligible_rows = frame[screening].isin(list(eligible))
    investigators = frame["investigator"] if "investigator" in frame else pd.Series(None, index=frame.index)
    out = investigators.isin(quarantined)
    if pools_out:
        out |= investigators.eq(POOLED) & frame["cell"].isin(pools_out)
    keep = eligible_rows & ~out
    return frame[keep].copy(), {"screened_out": int((~eligible_rows).sum()),
                                "quarantined": int((eligible_rows & out).sum())}


def citizen_results(
    frame: pd.DataFrame,
    *,
    populations: Mapping[str, int],
    elements: Sequence[tuple[str, str]],
    overall: str,
    satisfied: Mapping[str, Sequence[str]],
    excluded_options: Mapping[str, Sequence[str]],
    improvements: Sequence[str],
    screening: str,
    eligible: Sequence[str],
    quarantined: set[str] = frozenset(),
    pools_out: set = frozenset(),
    targets: Sequence[Mapping] = (),
    min_group: int = 5,
    level: float = 0.95,
) -> CitizenResults:
    """Shares of satisfied respondents and improvements wanted.

    Parameters
    ----------
    frame : DataFrame
        One row per response: ``agency``, ``kind``, ``investigator`` (None online), ``cell`` (its quota cell;
        needed with ``pools_out``), optionally ``commune``
        (the household's commune of residence; None or :data:`POOLED` when not known) and one column per item
        holding the option code answered (NaN when not answered).
    populations : mapping
        Agency → population ``N`` of its cell (every agency of ``frame``).
    elements : sequence of (element code, satisfaction item)
    overall : str
        The overall satisfaction item.
    satisfied, excluded_options : mapping
        Item → its satisfied option codes; item → its excluded codes (not valid answers).
    improvements : sequence of str
        The improvement items (a respondent names up to one option in each; the same option twice counts once).
    screening, eligible : the screening item and its eligible answers.
    quarantined : set of str
        Investigators whose responses phúc tra keeps out of the index.
    pools_out : set
        Quota cells (``cell`` column) whose responses pooled under :data:`POOLED` may hold a quarantined
        investigator's sheets: left out too.
    targets : sequence of mapping
        The round's target rules (:func:`analysis.targets.assign_targets`, ``at_least`` in %): indicator
        :data:`TARGET_OVERALL` or an element code; the most specific rule applies to each agency, the rules of
        its kind or of every agency to a kind, those of every agency to the province and a commune of residence.
    min_group : int
        No figure about fewer valid answers than this.
    """
    kept, excluded = counted(frame, screening=screening, eligible=eligible, quarantined=quarantined,
                              pools_out=pools_out)
    missing = sorted(set(kept["agency"]) - set(populations))
    if missing:
        raise ValueError(f"no population for agencies {missing}")
    n_cell = kept.groupby("agency")["agency"].transform("size")
    kept["_N"] = kept["agency"].map(populations).astype(np.float64)
    if (kept["_N"] < n_cell).any():
        raise ValueError("an agency has more counted respondents than its population")
    kept["_w"] = kept["_N"] / n_cell
    kept["_all"] = ""
    communes = kept["commune"] if "commune" in kept else pd.Series(None, index=kept.index, dtype=object)
    kept["_commune"] = communes.where(communes.notna() & communes.ne(POOLED), "")
    measures = [*elements, (OVERALL, overall)]
    for name, item in measures:
        valid = kept[item].notna() & ~kept[item].isin(list(excluded_options.get(item, ())))
        kept[f"_y_{name}"] = np.where(valid, kept[item].isin(list(satisfied[item])).astype(np.float64), np.nan)
    values = [f"_y_{name}" for name, _ in measures]
    shares = _by_levels(kept, values, level)
    shares["measure"] = shares.pop("variable").str.removeprefix("_y_")
    shares["withheld"] = shares["n"] < min_group
    shares.loc[shares["withheld"], ["est", "se", "ci_lo", "ci_hi"]] = np.nan
    kinds = dict(zip(kept["agency"], kept["kind"], strict=True))
    shares = _with_verdicts(shares, targets, [name for name, _ in elements], kinds)
    shares = shares[["level", "domain", "measure", "est", "se", "ci_lo", "ci_hi", "n", "withheld", "target",
                     "verdict"]]
    return CitizenResults(shares, _improvements(kept, improvements, level, min_group), excluded)


def _by_levels(kept: pd.DataFrame, values: list[str], level: float) -> pd.DataFrame:
    """Province, kind, agency and commune-of-residence rows of :func:`analysis.domain_means` of ``values``
    (the commune domains estimated over the whole sample, the responses naming no commune outside them)."""
    if not len(kept):
        return pd.DataFrame(columns=["level", "domain", "variable", "est", "se", "ci_lo", "ci_hi", "n"])
    tables = []
    levels = [("province", "_all"), ("kind", "kind"), ("agency", "agency")]
    if kept["_commune"].ne("").any():
        levels.append(("commune", "_commune"))
    for name, by in levels:
        table = domain_means(kept, values, by, "_w", strata="agency", fpc="_N", proportion=True, level=level)
        table.insert(0, "level", name)
        table = table.rename(columns={by: "domain"})
        tables.append(table[(table["domain"] != "") | (name == "province")])
    return pd.concat(tables, ignore_index=True)


def _improvements(kept: pd.DataFrame, items: Sequence[str], level: float, min_group: int) -> pd.DataFrame:
    """Per level × domain × option: the weighted share of counted respondents who named the option."""
    options = sorted({v for item in items for v in kept[item].dropna().unique()}, key=str)
    if not options or not len(kept):
        return pd.DataFrame(columns=["level", "domain", "option", "est", "ci_lo", "ci_hi", "n"])
    named = kept[list(items)]
    for option in options:
        kept[f"_y_{option}"] = named.eq(option).any(axis=1).astype(np.float64)
    table = _by_levels(kept, [f"_y_{o}" for o in options], level)
    table["option"] = table.pop("variable").str.removeprefix("_y_")
    table.loc[table["n"] < min_group, ["est", "ci_lo", "ci_hi"]] = np.nan
    return table[["level", "domain", "option", "est", "ci_lo", "ci_hi", "n"]]


def _with_verdicts(shares: pd.DataFrame, rules: Sequence[Mapping], elements: Sequence[str],
                   kinds: Mapping[str, str]) -> pd.DataFrame:
    """Each row's target (a share) and verdict, judged by :func:`analysis.targets.target_verdicts` as every
    round's targets are: an agency's most specific rule, a kind's rule or the rule of every agency for a kind,
    the rule of every agency for the province."""
    indicators = [TARGET_OVERALL, *elements]
    measure_of = {TARGET_OVERALL: OVERALL} | {e: e for e in elements}
    rows = []
    for level, domain in shares[["level", "domain"]].drop_duplicates().itertuples(index=False):
        agency, kind = {"agency": (domain, kinds.get(domain)), "kind": (None, domain)}.get(level, (None, None))
        found = assign_targets(pd.DataFrame({"agency": [agency], "agency_kind": [kind]}), rules, indicators)
        rows += [(level, domain, measure_of[i], t / 100) for i, t in zip(found["indicator"], found["target"],
                                                                        strict=True)]
    targets = pd.DataFrame(rows, columns=["level", "domain", "measure", "target"]).astype({"target": np.float64})
    out = shares.merge(targets, on=["level", "domain", "measure"], how="left")
    judged = target_verdicts(pd.DataFrame({"scale": "share", "estimate": 100 * out["est"].astype(np.float64),
                                           "se": 100 * out["se"].astype(np.float64),
                                           "n": out["n"].astype(np.float64), "target": 100 * out["target"]}))
    out["verdict"] = judged["verdict"].to_numpy() if len(out) else pd.Series(dtype=object)
    return out


def response_rates(issued: Mapping[str, int], returned: Mapping[str, int]) -> pd.DataFrame:
    """Per agency: sheets and codes handed out, responses returned, and the rate (None when none handed out)."""
    agencies = sorted(set(issued) | set(returned))
    out = pd.DataFrame({"agency": agencies,
                        "issued": [int(issued.get(a, 0)) for a in agencies],
                        "returned": [int(returned.get(a, 0)) for a in agencies]})
    out["rate"] = np.where(out["issued"] > 0, out["returned"] / out["issued"].where(out["issued"] > 0, 1), np.nan)
    return out
