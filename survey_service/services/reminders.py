"""Reminders: per agency, what its respondents still owe, as a ready-to-send Vietnamese text and a list the
agency's focal point can print; and for the Post Office, the paper sheets handed out and not yet back.

Online respondents work in the agency of their quota cell (its own civil servants; for LĐ-CP and LĐX-CH the
district's division heads and commune leaders), so that agency's focal point is the one to remind. Paper
sheets are handed out and collected by the Post Office, so their reminder goes there, with the serials.

A reminder gives counts only: never which invitation codes are unused (whoever handed them out would learn
who has not answered), never anything about answers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import Agency, QuotaCell, Round, Sheet, SheetState
from survey_service.services import progress

#: The key of the Post Office's reminder (paper sheets); agencies are keyed by their code.
POST_OFFICE = "buu-dien"
POST_OFFICE_NAME = "Bưu điện tỉnh (đơn vị phát và thu phiếu giấy)"


@dataclass
class Missing:
    """One form an agency still owes responses to."""

    form_code: str
    form_title: str
    target: int
    received: int
    shortfall: int
    #: Online: respondents who started and saved but did not send.
    started: int = 0
    #: Paper (Post Office): the agency rated, and the serials handed out and not returned.
    rated: str = ""
    serials: list[str] = field(default_factory=list)


@dataclass
class Reminder:
    key: str
    name: str
    missing: list[Missing]

    @property
    def shortfall(self) -> int:
        return sum(m.shortfall for m in self.missing)


def reminders(session: Session, rnd: Round) -> list[Reminder]:
    """Every agency with an online form still short of its target, in the round's order, then the Post
    Office when paper sheets are still out."""
    data = progress.round_progress(session, rnd)
    order = {code: i for i, code in enumerate(session.scalars(
        sa.select(Agency.code).where(Agency.round_id == rnd.id).order_by(Agency.id)))}
    by_agency: dict[str, Reminder] = {}
    for c in data.cells:
        f = c.figures
        if c.channel != "online" or c.soft_closed or not f.shortfall:
            continue
        reminder = by_agency.setdefault(c.agency_code, Reminder(c.agency_code, c.agency_name, []))
        reminder.missing.append(Missing(c.form_code, c.form_title, f.target, f.verified, f.shortfall,
                                        started=f.started))
    out = sorted(by_agency.values(), key=lambda r: order.get(r.key, len(order)))
    for r in out:
        r.missing.sort(key=lambda m: m.form_code)
    paper = _paper(session, rnd, {c.cell_id: c for c in data.cells})
    if paper.missing:
        out.append(paper)
    return out


def _paper(session: Session, rnd: Round, cells: dict[int, progress.CellProgress]) -> Reminder:
    """Paper cells short of their target with sheets still out, and those sheets' serials."""
    out: dict[int, list[str]] = {}
    for cell_id, serial in session.execute(
            sa.select(Sheet.quota_cell_id, Sheet.serial).join(QuotaCell)
            .where(QuotaCell.round_id == rnd.id, Sheet.state == SheetState.ISSUED).order_by(Sheet.serial)):
        out.setdefault(cell_id, []).append(serial)
    missing = []
    for cell_id, serials in out.items():
        c = cells[cell_id]
        if c.figures.shortfall and not c.soft_closed:
            missing.append(Missing(c.form_code, c.form_title, c.figures.target, c.figures.verified,
                                   c.figures.shortfall, rated=c.agency_name, serials=serials))
    missing.sort(key=lambda m: (m.form_code, m.serials[0]))
    return Reminder(POST_OFFICE, POST_OFFICE_NAME, missing)


def find(session: Session, rnd: Round, key: str) -> Reminder | None:
    return next((r for r in reminders(session, rnd) if r.key == key), None)


def _n(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def reminder_text(reminder: Reminder, rnd: Round, *, today: date, organiser: str, portal_url: str) -> str:
    """The reminder as a message the supervisor can send as it is (plain text, Vietnamese)."""
    closes = rnd.closes_on.strftime("%d/%m/%Y")
    lines = [f"Kính gửi: {reminder.name}.", ""]
    if reminder.key == POST_OFFICE:
        lines.append(f"{organiser} đề nghị Bưu điện tỉnh thu về các phiếu khảo sát giấy của đợt “{rnd.name}” đã "
                     f"phát nhưng chưa thu về. Đến ngày {today:%d/%m/%Y}:")
        for m in reminder.missing:
            lines.append(f"- Phiếu {m.form_code} ({m.form_title}), cơ quan được đánh giá: {m.rated}: đã nhận "
                         f"{_n(m.received)}/{_n(m.target)} phiếu; {_n(len(m.serials))} phiếu chưa thu về "
                         f"(số phiếu: {', '.join(m.serials)}).")
        lines += ["", f"Đề nghị thu về và chuyển nhập liệu trước ngày {closes}, ngày kết thúc đợt khảo sát."]
    else:
        lines.append(f"{organiser} đề nghị {reminder.name} nhắc cán bộ, công chức được mời tham gia trả lời "
                     f"phiếu khảo sát trực tuyến của đợt “{rnd.name}”. Đến ngày {today:%d/%m/%Y}, đơn vị còn "
                     "thiếu:")
        for m in reminder.missing:
            started = f" ({_n(m.started)} người đã bắt đầu nhưng chưa gửi phiếu)" if m.started else ""
            lines.append(f"- Phiếu {m.form_code} ({m.form_title}): đã nhận {_n(m.received)}/{_n(m.target)} "
                         f"phiếu, còn thiếu {_n(m.shortfall)} phiếu{started}.")
        lines += ["", f"Người được mời trả lời tại {portal_url} bằng mã mời đã nhận (mỗi mã dùng một lần; có thể "
                      "lưu để trả lời tiếp). Phiếu được lưu ẩn danh: đơn vị không thu hộ, không xem hoặc ghi lại "
                      "câu trả lời của người khác.",
                  f"Đợt khảo sát kết thúc ngày {closes}."]
    lines += ["", "Trân trọng cảm ơn./.", organiser]
    return "\n".join(lines)
