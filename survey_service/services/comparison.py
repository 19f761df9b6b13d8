"""Change since an earlier round: which earlier agencies each agency continues, and their results compared
by :func:`analysis.change.round_change` (PAR rounds) or :func:`analysis.change.share_change` (citizens'
rounds: each element's share and the overall one); differences tested, Benjamini–Hochberg across agencies."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis import change
from analysis import targets as target_rules
from survey_service.models import Response, Round
from survey_service.services import citizens, quotas, results, rounds
from survey_service.services.errors import ServiceError
from survey_service.vietnamese import number, percent


class ComparisonError(ServiceError):
    """Two rounds that cannot be compared; the message says why."""

    status = 422


@dataclass(frozen=True)
class Comparison:
    before: results.RoundResults
    after: results.RoundResults
    #: one row per agency × indicator (:func:`analysis.change.round_change`), with the agency's name and kind
    table: pd.DataFrame
    #: how the agencies were matched: "continues" (the round's declared continuity) or "same_code"
    matched_by: str


def baselines(rnd: Round, previous: Round) -> tuple[dict[str, list[str]], str]:
    """Each agency of ``rnd`` → the agencies of ``previous`` it continues (``agencies.csv`` ``continues``).

    A simulated round's continuity names the real rounds, so a round is known under its own code and the code
    of the round it was simulated from. A round that declares no continuity with ``previous`` (two rounds of
    the same structure) matches agencies of the same code."""
    names = {previous.code, rounds.source_code(previous.code)}
    declared = {a.code: [c.agency_code for c in a.continues if c.round_code in names] for a in rnd.agencies}
    declared = {code: sources for code, sources in declared.items() if sources}
    if declared:
        return declared, "continues"
    earlier = {a.code for a in previous.agencies}
    return {a.code: [a.code] for a in rnd.agencies if a.code in earlier}, "same_code"


def check_pair(rnd: Round, previous: Round) -> None:
    """:raises ComparisonError: unless ``previous`` is another, earlier round of the same kind and data."""
    if previous.id == rnd.id:
        raise ComparisonError("Đợt so sánh phải là một đợt khác.")
    if rounds.is_citizens(rnd) != rounds.is_citizens(previous):
        citizens_code, par_code = (rnd.code, previous.code) if rounds.is_citizens(rnd) else (previous.code, rnd.code)
        raise ComparisonError(f"Không so sánh đợt khảo sát người dân {citizens_code} với đợt chỉ số cải cách hành "
                              f"chính {par_code}: hai loại đợt đo những chỉ số khác nhau.")
    # by the year evaluated (collection dates move when a round is rescheduled); the demonstration pair is
    # the same round simulated twice
    if previous.year >= rnd.year and rounds.source_code(previous.code) != rounds.source_code(rnd.code):
        raise ComparisonError(f"Đợt {previous.code} (năm {previous.year}) không diễn ra trước đợt {rnd.code} "
                              f"(năm {rnd.year}).")
    if previous.simulated != rnd.simulated:
        raise ComparisonError("Không so sánh đợt có dữ liệu mô phỏng với đợt có dữ liệu thật.")


def _check(rnd: Round, previous: Round) -> tuple[dict[str, list[str]], str]:
    """The agencies' baselines, each with the earlier agencies it continues, and how they were matched.

    :raises ComparisonError: when the rounds cannot be compared or no agency continues another."""
    check_pair(rnd, previous)
    mapping, matched_by = baselines(rnd, previous)
    if not mapping:
        raise ComparisonError(f"Không cơ quan nào của đợt {rnd.code} kế tục cơ quan của đợt {previous.code}.")
    return mapping, matched_by


def continued_round(session: Session, rnd: Round) -> Round | None:
    """The latest earlier round with responses that ``rnd``'s agencies declare they continue (``continues``),
    under its own code or, for a simulated round, the code of its simulation; None when there is none."""
    named = {c.round_code for a in rnd.agencies for c in a.continues}
    if not named:
        return None
    with_responses = sa.select(Response.id).where(Response.round_id == Round.id).exists()
    found = []
    for previous in session.scalars(sa.select(Round).where(Round.id != rnd.id, with_responses)):
        if rounds.source_code(previous.code) not in named and previous.code not in named:
            continue
        try:
            check_pair(rnd, previous)
        except ComparisonError:
            continue
        found.append(previous)
    return max(found, key=lambda r: (r.year, r.id), default=None)


@dataclass(frozen=True)
class DecisionSize:
    """The sample an agency needs for a decision on its target, judged from the round it continues."""

    previous: str
    #: respondents to plan for, capped by the agency's staff; None when no sample decides
    sample: int | None
    #: one sentence saying why
    reason: str


#: What an indicator is called in a sentence, and how its estimate and target are written.
_INDICATOR_WORDS = {"satisfaction": ("tỷ lệ hài lòng", percent), "survey_points": ("điểm điều tra XHH", number)}


def _reason(row, previous: str) -> str:
    word, fmt = _INDICATOR_WORDS[row.indicator]
    digits = 1 if row.indicator == "satisfaction" else 2
    seen = f"Đợt {previous} ước lượng {word} {fmt(row.estimate, digits)} so với mục tiêu {fmt(row.target, digits)}"
    if pd.isna(row.n_needed):
        return seen + ": ước lượng trùng mục tiêu, không cỡ mẫu nào đủ để kết luận Đạt hay Không đạt."
    deff = "" if pd.isna(row.design_effect) else f" với hiệu ứng thiết kế {number(row.design_effect, 2)} của đợt đó"
    need = f"{seen}; để kết luận Đạt hay Không đạt cần {number(row.n_needed)} người trả lời{deff}"
    if not pd.isna(row.population) and row.n_needed > row.population:
        return need + f", nhiều hơn số công chức nên khảo sát toàn bộ {number(row.population)} người."
    return need + "."


def decision_sizes(session: Session, rnd: Round) -> dict[str, DecisionSize]:
    """Agency code → the sample a decision on its target needs (:func:`analysis.targets.next_round_samples`),
    from the latest earlier round with results that the round continues; empty when there is none. The
    population is the agency's staff count in the plan (its largest, when several forms give one)."""
    previous = continued_round(session, rnd)
    if previous is None:
        return {}
    mapping, _ = baselines(rnd, previous)
    staff: dict[str, float] = {}
    for c in quotas.cells(session, rnd):
        if c.agency is not None and c.staff_count is not None:
            staff[c.agency.code] = max(staff.get(c.agency.code, 0), c.staff_count)
    agencies = pd.DataFrame([(a.code, a.kind, staff.get(a.code, float("nan"))) for a in rnd.agencies],
                            columns=["agency", "agency_kind", "population"])
    before = results.cached_results(session, previous).summary
    found = target_rules.next_round_samples(before, mapping, agencies, rnd.structure.get("targets", []))
    return {row.agency: DecisionSize(previous.code, None if pd.isna(row.sample) else int(row.sample),
                                     _reason(row, previous.code))
            for row in found.itertuples(index=False)}


def compare_rounds(session: Session, rnd: Round, previous: Round) -> Comparison:
    """Results of both PAR rounds and the change of every agency that continues agencies of ``previous``."""
    mapping, matched_by = _check(rnd, previous)
    before = results.cached_results(session, previous)
    after = results.cached_results(session, rnd)
    table = change.round_change(before.summary, after.summary, mapping)
    info = after.summary.set_index("agency")[["agency_name", "agency_kind"]]
    table = table.join(info, on="agency")
    return Comparison(before=before, after=after, table=table, matched_by=matched_by)


@dataclass(frozen=True)
class CitizensComparison:
    before: citizens.CitizenReport
    after: citizens.CitizenReport
    #: one row per agency × measure (:func:`analysis.change.share_change`, ``indicator`` the measure), with
    #: the agency's name and the measure's
    table: pd.DataFrame
    matched_by: str


def compare_citizens(session: Session, rnd: Round, previous: Round) -> CitizensComparison:
    """Each agency's shares (elements and overall) against those of the agencies of ``previous`` it continues,
    each round without the responses of its own quarantined investigators."""
    mapping, matched_by = _check(rnd, previous)
    before, after = (citizens.report(session, r, quarantined=citizens.quarantined(session, r)) for r in (previous, rnd))
    agency_rows = [rep.shares[rep.shares["level"] == "agency"] for rep in (before, after)]
    table = change.share_change(*agency_rows, mapping)
    now = agency_rows[1]
    table["agency_name"] = table["agency"].map(dict(zip(now["domain"], now["domain_name"], strict=True)))
    table["measure_name"] = table["indicator"].map(dict(zip(now["measure"], now["measure_name"], strict=True)))
    return CitizensComparison(before=before, after=after, table=table, matched_by=matched_by)
