"""Progress of a round per quota cell, across both channels, in a fixed number of GROUP BY queries.

Counting rules (shown on the dashboard and in the API document):

- every figure about responses counts distinct respondents (``Response.respondent_key``): an LĐ-CP
  respondent rates several departments but counts once, in the cell of their district;
- verified: online responses, plus paper responses whose sheet is in state ``verified``;
- keyed: paper sheets in state ``keyed`` (entered, not yet verified);
- started: online drafts (a code opened and answers saved, not submitted) of the cell's codes;
- issued: paper sheets in state ``issued`` (handed out, not returned);
- surplus: responses flagged surplus, plus, for online cells, unflagged verified respondents beyond the target;
- shortfall: max(0, target - verified).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import (
    Agency, Channel, Draft, QuestionnaireVersion, QuotaCell, Response, Round,
    RoundForm, Sheet, SheetState,
)
from survey_service.services import ballots
from survey_service.services.errors import ServiceError
from survey_service.vietnamese import sort_key

#: The kind of the matrix form's single cell (HĐ-CT rates every agency); no round may declare it.
MATRIX = "matrix"
CHANNELS = [c.value for c in Channel]
SORTS = ["name", "shortfall", "progress", "form"]
FIGURES = ["target", "verified", "keyed", "started", "issued", "surplus", "shortfall"]


class FilterError(ServiceError):
    """A filter value that is not one of the allowed ones; the message is for the user."""


@dataclass(frozen=True)
class Filters:
    kind: str = ""
    form: str = ""
    channel: str = ""
    sort: str = "name"

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v and not (k == "sort" and v == "name")}


@dataclass
class Figures:
    target: int = 0
    verified: int = 0
    keyed: int = 0
    started: int = 0
    issued: int = 0
    surplus: int = 0
    shortfall: int = 0

    def add(self, other: Figures) -> None:
        for name in FIGURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def percent(self) -> float | None:
        return round(100 * self.verified / self.target, 1) if self.target else None

    def as_dict(self) -> dict:
        return {**{name: getattr(self, name) for name in FIGURES}, "percent": self.percent}


@dataclass
class CellProgress:
    cell_id: int
    form_code: str
    form_title: str
    agency_code: str | None
    agency_name: str
    kind: str
    channel: str
    soft_closed: bool
    staff_count: int | None
    figures: Figures
    last_response_on: date | None

    def as_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("figures", "last_response_on")}
        data["last_response_on"] = self.last_response_on.isoformat() if self.last_response_on else None
        return {**data, **self.figures.as_dict()}


@dataclass
class Progress:
    round_code: str
    filters: Filters
    cells: list[CellProgress]
    total: Figures
    by_form: dict[str, Figures]
    by_kind: dict[str, Figures]
    by_channel: dict[str, Figures]
    last_response_on: date | None = None

    def as_dict(self) -> dict:
        return {
            "round": self.round_code,
            "filters": self.filters.as_dict(),
            "last_response_on": self.last_response_on.isoformat() if self.last_response_on else None,
            "total": self.total.as_dict(),
            "by_form": {k: v.as_dict() for k, v in self.by_form.items()},
            "by_kind": {k: v.as_dict() for k, v in self.by_kind.items()},
            "by_channel": {k: v.as_dict() for k, v in self.by_channel.items()},
            "cells": [c.as_dict() for c in self.cells],
        }


def kinds(rnd: Round) -> list[str]:
    """The kind filter's values: the round's agency kinds, then the matrix cell."""
    return [*rnd.kind_codes, MATRIX]


def parse_filters(args, form_codes, kind_codes) -> Filters:
    """Filters from query-string values; unknown values raise :class:`FilterError`."""
    filters = Filters(kind=args.get("kind", "").strip(), form=args.get("form", "").strip(),
                      channel=args.get("channel", "").strip(), sort=args.get("sort", "").strip() or "name")
    if filters.kind and filters.kind not in kind_codes:
        raise FilterError(f"Loại cơ quan không hợp lệ: '{filters.kind[:30]}'.")
    if filters.form and filters.form not in form_codes:
        raise FilterError(f"Mã phiếu không có trong đợt khảo sát: '{filters.form[:30]}'.")
    if filters.channel and filters.channel not in CHANNELS:
        raise FilterError(f"Kênh không hợp lệ: '{filters.channel[:30]}'.")
    if filters.sort not in SORTS:
        raise FilterError(f"Cách sắp xếp không hợp lệ: '{filters.sort[:30]}'.")
    return filters


def form_titles(session: Session, rnd: Round) -> dict[str, str]:
    """Form code → title of the version the round uses, in form-code order."""
    rows = session.execute(
        sa.select(RoundForm.form_code, QuestionnaireVersion.definition)
        .join(QuestionnaireVersion, QuestionnaireVersion.id == RoundForm.questionnaire_version_id)
        .where(RoundForm.round_id == rnd.id).order_by(RoundForm.form_code)
    ).all()
    return {code: (definition or {}).get("title", code) for code, definition in rows}


def round_progress(session: Session, rnd: Round, filters: Filters = Filters(), *,
                   forms: dict[str, str] | None = None) -> Progress:
    """Every cell's figures and the totals, for the cells the filters keep (five queries)."""
    forms = form_titles(session, rnd) if forms is None else forms
    cell_rows = session.execute(
        sa.select(QuotaCell, Agency).outerjoin(Agency, Agency.id == QuotaCell.agency_id)
        .where(QuotaCell.round_id == rnd.id)
    ).all()
    responses = _response_counts(session, rnd)
    sheets = _sheet_counts(session, rnd)
    drafts = _draft_counts(session, rnd)

    cells = []
    for cell, agency in cell_rows:
        kind = agency.kind if agency else MATRIX
        if ((filters.kind and kind != filters.kind) or (filters.form and cell.form_code != filters.form)
                or (filters.channel and cell.channel.value != filters.channel)):
            continue
        verified, flagged, last_on = responses.get(cell.id, (0, 0, None))
        if cell.channel is Channel.ONLINE:
            surplus = flagged + max(0, verified - flagged - cell.target)
        else:
            surplus = flagged
        figures = Figures(
            target=cell.target, verified=verified, keyed=sheets.get((cell.id, SheetState.KEYED.value), 0),
            started=drafts.get(cell.id, 0), issued=sheets.get((cell.id, SheetState.ISSUED.value), 0),
            surplus=surplus, shortfall=max(0, cell.target - verified),
        )
        cells.append(CellProgress(
            cell_id=cell.id, form_code=cell.form_code, form_title=forms.get(cell.form_code, cell.form_code),
            agency_code=agency.code if agency else None,
            agency_name=agency.name if agency else "Tất cả cơ quan (phiếu ma trận)",
            kind=kind, channel=cell.channel.value, soft_closed=cell.soft_closed, staff_count=cell.staff_count,
            figures=figures, last_response_on=_as_date(last_on),
        ))
    _sort(cells, filters.sort)
    return _with_totals(rnd.code, filters, cells, kinds(rnd))


def daily_counts(session: Session, rnd: Round, filters: Filters = Filters()) -> list[tuple[date, str, int]]:
    """(day, channel, respondents) for every day with responses in the cells the filters keep. Online
    respondents count on the day their batch was released from the ballot box (at least the round's
    minimum group of a cell at once); sealed ballots, which carry no day, are not in the curve."""
    responses = (
        sa.select(Response.submitted_on, QuotaCell.channel, sa.func.count(sa.distinct(Response.respondent_key)))
        .join(QuotaCell, QuotaCell.id == Response.quota_cell_id)
        .where(Response.round_id == rnd.id)
        .group_by(Response.submitted_on, QuotaCell.channel)
    )
    return sorted((_as_date(day), channel.value, count)
                  for day, channel, count in session.execute(_filtered(responses, filters)))


def _filtered(query, filters: Filters):
    """``query`` (which joins QuotaCell) restricted to the cells the filters keep."""
    if filters.form:
        query = query.where(QuotaCell.form_code == filters.form)
    if filters.channel:
        query = query.where(QuotaCell.channel == Channel(filters.channel))
    if filters.kind == MATRIX:
        query = query.where(QuotaCell.agency_id.is_(None))
    elif filters.kind:
        query = query.join(Agency, Agency.id == QuotaCell.agency_id).where(Agency.kind == filters.kind)
    return query


#: A response that counts as verified (needs an outer join to Sheet): online, imported without a sheet,
#: or keyed from a sheet that reached ``verified``. The analysis counts the same responses.
VERIFIED = sa.or_(Response.channel == Channel.ONLINE, Response.sheet_id.is_(None), Sheet.state == SheetState.VERIFIED)


def _response_counts(session: Session, rnd: Round) -> dict[int, tuple[int, int, date | None]]:
    """cell id → (verified respondents, surplus-flagged respondents, last response day); a sealed ballot is
    an online respondent, verified, like the response it becomes (its day is that of its release)."""
    verified = VERIFIED
    rows = session.execute(
        sa.select(
            Response.quota_cell_id,
            sa.func.count(sa.distinct(sa.case((verified, Response.respondent_key)))),
            sa.func.count(sa.distinct(sa.case((Response.surplus.is_(True), Response.respondent_key)))),
            sa.func.max(Response.submitted_on),
        )
        .outerjoin(Sheet, Sheet.id == Response.sheet_id)
        .where(Response.round_id == rnd.id)
        .group_by(Response.quota_cell_id)
    )
    counts = {cell_id: (v, s, _as_date(last)) for cell_id, v, s, last in rows}
    for cell_id, n in ballots.waiting_by_cell(session, rnd.id).items():
        v, s, last = counts.get(cell_id, (0, 0, None))
        counts[cell_id] = (v + n, s, last)
    return counts


def _sheet_counts(session: Session, rnd: Round) -> dict[tuple[int, str], int]:
    rows = session.execute(
        sa.select(Sheet.quota_cell_id, Sheet.state, sa.func.count())
        .join(QuotaCell, QuotaCell.id == Sheet.quota_cell_id)
        .where(QuotaCell.round_id == rnd.id, Sheet.state.in_([SheetState.ISSUED, SheetState.KEYED]))
        .group_by(Sheet.quota_cell_id, Sheet.state)
    )
    return {(cell_id, state.value): n for cell_id, state, n in rows}


def _draft_counts(session: Session, rnd: Round) -> dict[int, int]:
    rows = session.execute(
        sa.select(Draft.quota_cell_id, sa.func.count())
        .join(QuotaCell, QuotaCell.id == Draft.quota_cell_id)
        .where(QuotaCell.round_id == rnd.id)
        .group_by(Draft.quota_cell_id)
    )
    return dict(rows.tuples().all())


def _sort(cells: list[CellProgress], how: str) -> None:
    def by_name(c):
        return (c.kind == MATRIX, sort_key(c.agency_name), c.form_code)

    cells.sort(key=by_name)
    if how == "shortfall":
        cells.sort(key=lambda c: -c.figures.shortfall)
    elif how == "progress":
        cells.sort(key=lambda c: c.figures.percent if c.figures.percent is not None else 1e9)
    elif how == "form":
        cells.sort(key=lambda c: c.form_code)


def _with_totals(round_code: str, filters: Filters, cells: list[CellProgress], kind_order: list[str]) -> Progress:
    total = Figures()
    by_form, by_kind, by_channel = defaultdict(Figures), defaultdict(Figures), defaultdict(Figures)
    for c in cells:
        for bucket in (total, by_form[c.form_code], by_kind[c.kind], by_channel[c.channel]):
            bucket.add(c.figures)
    days = [c.last_response_on for c in cells if c.last_response_on]
    return Progress(
        round_code=round_code, filters=filters, cells=cells, total=total,
        by_form={k: by_form[k] for k in sorted(by_form)},
        by_kind={k: by_kind[k] for k in kind_order if k in by_kind},
        by_channel={k: by_channel[k] for k in CHANNELS if k in by_channel},
        last_response_on=max(days) if days else None,
    )


def _as_date(value) -> date | None:
    """SQLite may hand MAX() over a date column back as text."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
