"""Browsing individual responses (supervisors and analysts), within the anonymity rules of the round.

What a listing never shows: an invitation code (responses hold none), a time (not even the day: with the
agency and form, the day of a lone submission can point at a person), the LĐ-CP division (in a district one
division is one person), the paper serial, and any response of a group (form × agency rated) with fewer
respondents than the round's smallest group that may be broken down. Rows are ordered by the response's
random public id or by content (agency, form), never by a key or a column that follows submission order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service import questionnaires as qn
from survey_service.models import Agency, Answer, Channel, QuestionnaireVersion, Response, Round, Sheet, SheetState
from survey_service.services import progress, results
from survey_service.services.errors import ServiceError

PAGE_SIZE = 50
#: How a response stands: counted in the results, keyed on paper but not yet verified, or above its quota.
STATES = {
    "counted": "Được tính vào kết quả",
    "awaiting": "Phiếu giấy chờ xác nhận",
    "surplus": "Vượt chỉ tiêu",
}
SORTS = {"random": "Thứ tự ngẫu nhiên", "agency": "Theo cơ quan", "form": "Theo mẫu phiếu"}
CHANNELS = {"online": "Trực tuyến", "paper": "Phiếu giấy"}
#: The agency filter value for matrix responses (HĐ-CT), which rate every agency.
MATRIX = "*"


class ResponseNotShown(ServiceError):
    """A filter or response that cannot be shown; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Filters:
    agency: str | None = None
    form: str | None = None
    channel: str | None = None
    state: str | None = None
    sort: str = "random"
    page: int = 1

    def args(self, **changes) -> dict:
        """The query arguments of these filters (for links), with ``changes`` applied."""
        values = {"agency": self.agency, "form": self.form, "channel": self.channel, "state": self.state,
                  "sort": self.sort, "page": self.page, **changes}
        defaults = {"sort": "random", "page": 1}
        return {k: v for k, v in values.items() if v and defaults.get(k) != v}


@dataclass
class Row:
    uid: str
    form_code: str
    agency: str
    channel: str
    state: str
    answered: int


@dataclass
class Listing:
    rows: list[Row]
    total: int
    #: Responses that match the filters but belong to groups too small to show.
    hidden: int
    min_group: int
    filters: Filters
    pages: int = field(init=False)

    def __post_init__(self):
        self.pages = max(1, -(-self.total // PAGE_SIZE))


def min_group(rnd: Round) -> int:
    """The fewest respondents of a group whose responses may be shown one by one (the round's
    ``min_breakdown``)."""
    return results.min_breakdown(rnd.settings)


def parse_filters(rnd_agencies: set[str], forms: set[str], args) -> Filters:
    """Filters from a query string; :raises ResponseNotShown: naming the value that is not allowed."""
    def pick(name, allowed, label):
        value = (args.get(name) or "").strip() or None
        if value is not None and value not in allowed:
            raise ResponseNotShown(f"{label} '{value[:32]}' không có trong đợt khảo sát này.")
        return value

    try:
        page = int(args.get("page") or 1)
    except ValueError:
        raise ResponseNotShown("Số trang phải là một số nguyên.") from None
    if not 1 <= page <= 100_000:
        raise ResponseNotShown("Số trang không hợp lệ.")
    return Filters(
        agency=pick("agency", rnd_agencies | {MATRIX}, "Cơ quan"), form=pick("form", forms, "Mẫu phiếu"),
        channel=pick("channel", set(CHANNELS), "Kênh"), state=pick("state", set(STATES), "Trạng thái"),
        sort=pick("sort", set(SORTS), "Cách sắp xếp") or "random", page=page)


#: The agency of a response as a group key (0 for a matrix form); a literal, so that PostgreSQL sees the
#: same expression in the select list and in GROUP BY.
_AGENCY_KEY = sa.func.coalesce(Response.agency_id, sa.literal_column("0"))


def _group_sizes(rnd: Round):
    """Respondents per group (form × agency rated; matrix forms: one group)."""
    return (sa.select(Response.form_code, _AGENCY_KEY.label("agency_key"),
                      sa.func.count(sa.distinct(Response.respondent_key)).label("respondents"))
            .where(Response.round_id == rnd.id)
            .group_by(Response.form_code, _AGENCY_KEY)
            .subquery())


def _state_condition(state: str):
    if state == "surplus":
        return Response.surplus.is_(True)
    if state == "awaiting":
        return sa.and_(Response.channel == Channel.PAPER, Sheet.state == SheetState.KEYED)
    return sa.and_(progress.VERIFIED, Response.surplus.is_(False))


def list_responses(session: Session, rnd: Round, filters: Filters) -> Listing:
    """One page of the round's responses that match ``filters``, small groups left out and counted."""
    n_min = min_group(rnd)
    groups = _group_sizes(rnd)
    base = (sa.select(Response.id).select_from(Response)
            .outerjoin(Sheet, Sheet.id == Response.sheet_id)
            .outerjoin(Agency, Agency.id == Response.agency_id)
            .join(groups, sa.and_(groups.c.form_code == Response.form_code,
                                  groups.c.agency_key == _AGENCY_KEY))
            .where(Response.round_id == rnd.id))
    if filters.agency == MATRIX:
        base = base.where(Response.agency_id.is_(None))
    elif filters.agency:
        base = base.where(Agency.code == filters.agency)
    if filters.form:
        base = base.where(Response.form_code == filters.form)
    if filters.channel:
        base = base.where(Response.channel == Channel(filters.channel))
    if filters.state:
        base = base.where(_state_condition(filters.state))
    shown = base.where(groups.c.respondents >= n_min)
    count = lambda q: session.scalar(sa.select(sa.func.count()).select_from(q.subquery()))  # noqa: E731
    total, everything = count(shown), count(base)
    order = {"random": [Response.uid], "agency": [Agency.id.is_(None), Agency.id, Response.form_code, Response.uid],
             "form": [Response.form_code, Agency.id, Response.uid]}[filters.sort]
    page = session.execute(
        shown.add_columns(Response.uid, Response.form_code, Agency.name, Response.channel, Response.surplus,
                          Sheet.state)
        .order_by(*order).limit(PAGE_SIZE).offset((filters.page - 1) * PAGE_SIZE)).all()
    answered = dict(session.execute(
        sa.select(Answer.response_id, sa.func.count()).where(Answer.response_id.in_([r.id for r in page]))
        .group_by(Answer.response_id)).all())
    rows = [Row(r.uid, r.form_code, r.name or "Mọi cơ quan (phiếu ma trận)", CHANNELS[r.channel.value],
                STATES[_state(r.channel, r.surplus, r.state)], answered.get(r.id, 0)) for r in page]
    return Listing(rows, total, everything - total, n_min, filters)


def _state(channel: Channel, surplus: bool, sheet_state: SheetState | None) -> str:
    if surplus:
        return "surplus"
    if channel is Channel.PAPER and sheet_state is SheetState.KEYED:
        return "awaiting"
    return "counted"


@dataclass
class AnswerLine:
    number: int
    code: str
    text: str
    answer: str


@dataclass
class Block:
    """The answers about one agency (a matrix response has one block per agency)."""

    agency: str | None
    lines: list[AnswerLine]


@dataclass
class Detail:
    uid: str
    form_code: str
    title: str
    agency: str
    channel: str
    state: str
    version: str
    blocks: list[Block]


def response_detail(session: Session, rnd: Round, uid: str) -> Detail:
    """One response with every item of its questionnaire version and the answer given.

    :raises ResponseNotShown: 404 for no such response in the round, 403 when its group is too small to show.
    """
    response = session.scalar(sa.select(Response).where(Response.round_id == rnd.id, Response.uid == uid[:32]))
    if response is None:
        raise ResponseNotShown("Không có phiếu trả lời này trong đợt khảo sát.", 404)
    groups = _group_sizes(rnd)
    size = session.scalar(sa.select(groups.c.respondents).where(
        groups.c.form_code == response.form_code, groups.c.agency_key == (response.agency_id or 0)))
    n_min = min_group(rnd)
    if size < n_min:
        raise ResponseNotShown(f"Nhóm phiếu này (mẫu {response.form_code}, cùng cơ quan được đánh giá) có dưới {n_min} "
                          "người trả lời: không xem được từng phiếu để giữ ẩn danh.", 403)
    version = session.get(QuestionnaireVersion, response.questionnaire_version_id)
    q = qn.Questionnaire.from_definition(version.definition).worded_for(rnd.province, rnd.province_type)
    sheet = session.get(Sheet, response.sheet_id) if response.sheet_id else None
    given: dict[int | None, dict[str, str]] = {}
    for a in response.answers:
        given.setdefault(a.agency_id, {})[a.item_code] = a.value
    names = dict(session.execute(sa.select(Agency.id, Agency.name).where(Agency.round_id == rnd.id)).all())
    if response.agency_id is not None:
        blocks = [Block(None, _lines(q, given.get(response.agency_id, {})))]
    else:  # a matrix: the sheet's own items, then one block per agency answered, in the round's order
        blocks = [Block(None, _lines(q, given.get(None, {}), text_only=True))]
        blocks += [Block(names[a], _lines(q, given[a], scale_only=True)) for a in sorted(k for k in given if k)]
    return Detail(response.uid, response.form_code, q.title,
                  names.get(response.agency_id, "Mọi cơ quan (phiếu ma trận)"), CHANNELS[response.channel.value],
                  STATES[_state(response.channel, response.surplus, sheet.state if sheet else None)],
                  version.version, [b for b in blocks if b.lines])


def _lines(q: qn.Questionnaire, given: dict[str, str], *, text_only=False, scale_only=False) -> list[AnswerLine]:
    lines = []
    for number, item in enumerate(q.items, 1):
        if (text_only and item.kind == "scale") or (scale_only and item.kind != "scale"):
            continue
        value = given.get(item.code, "")
        if item.kind == "scale" and value:
            label = next((o.label for o in q.scales[item.scale].options if o.code == value), value)
            value = f"{value} – {label}"
        lines.append(AnswerLine(number, item.code, item.text, value or "(để trống)"))
    return lines
