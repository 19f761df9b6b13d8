"""Reading the audit log: filters by who, what and when, Vietnamese labels, readable targets, CSV.

Only the viewing side: events are written by :mod:`survey_service.services.audit` and never changed here.
Times are stored in UTC and shown, filtered and exported in the staff's time zone.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from survey_service.dates import parse_iso_date
from survey_service.models import Agency, AuditEvent, CodeBatch, QuotaCell, StaffUser
from survey_service.services import tabular
from survey_service.services.errors import ServiceError
from survey_service.services.sheets import STATE_LABELS
from survey_service.vietnamese import VIETNAM, date_time, short_date

PER_PAGE = 50
#: At most this many events go into one CSV export (newest first); the filters narrow it down.
EXPORT_LIMIT = 100_000

ACTION_LABELS = {
    "login.ok": "Đăng nhập",
    "login.failed": "Đăng nhập sai mật khẩu",
    "login.locked": "Đăng nhập khi tài khoản đang bị khóa",
    "login.unknown_user": "Đăng nhập bằng tên không tồn tại",
    "user.create": "Tạo tài khoản",
    "user.active": "Khóa / mở tài khoản",
    "user.unlock": "Bỏ thời gian chờ đăng nhập",
    "user.password_reset": "Đặt lại mật khẩu",
    "user.password_change": "Tự đổi mật khẩu",
    "user.role": "Đổi vai trò",
    "user.api_token": "Cấp mã truy cập API",
    "user.api_token_revoke": "Thu hồi mã truy cập API",
    "round.load": "Nạp đợt khảo sát",
    "round.schedule": "Đặt thời gian nhận phiếu",
    "round.close": "Đóng đợt khảo sát",
    "quota.target": "Sửa chỉ tiêu",
    "quota.soft_close": "Tạm khóa ô chỉ tiêu",
    "quota.reopen": "Mở lại ô chỉ tiêu",
    "codes.issue": "Phát mã mời",
    "codes.revoke": "Thu hồi mã mời",
    "code.lookup_failed": "Nhập mã mời sai",
    "code.lookup_refused": "Chặn nhập mã (quá nhiều lần sai)",
    "response.submit": "Gửi phiếu trực tuyến",
    "responses.import": "Nhập phiếu từ tệp",
    "sheets.issue": "In phiếu giấy",
    "sheet.returned": "Thu về phiếu giấy",
    "sheet.keyed": "Nhập phiếu giấy",
    "sheet.key": "Nhập phiếu giấy (một lần nhập)",
    "sheet.verified": "Xác nhận phiếu giấy",
    "sheet.void": "Hủy phiếu giấy",
    "sheet.reprint": "Hủy và in lại phiếu giấy",
    "sheet.reconcile": "Đối chiếu nhập kép",
    "answer.reconcile": "Sửa câu trả lời khi đối chiếu",
}
ACTOR_LABELS = {
    "staff": "cán bộ", "cli": "dòng lệnh", "respondent": "người trả lời", "system": "hệ thống",
    "anonymous": "người chưa đăng nhập", "demo": "bản trình diễn",
}
OBJECT_LABELS = {
    "staff_user": "Tài khoản", "quota_cell": "Ô chỉ tiêu", "code_batch": "Lô mã", "round": "Đợt",
    "sheet": "Phiếu giấy", "response": "Phiếu trả lời", "client": "Máy truy cập",
}
#: Names of the fields stored in old and new values.
FIELD_LABELS = {
    "username": "tên đăng nhập", "role": "vai trò", "count": "số lượng", "first": "từ", "last": "đến",
    "status": "trạng thái", "value": "giá trị", "item": "câu", "target": "chỉ tiêu",
    "staff_count": "số công chức", "form_code": "mẫu phiếu", "form": "mẫu phiếu", "source": "nguồn",
    "soft_closed": "tạm khóa", "opens_on": "mở từ", "closes_on": "đến hết", "closed_at": "đóng lúc",
    "active": "hoạt động", "responses": "số phiếu", "limit": "giới hạn", "agency_id": "cơ quan",
    "locked_until": "khóa đến", "failed_logins": "số lần sai", "failures": "số lần sai liên tiếp",
    "addresses_cleared": "số địa chỉ được bỏ chờ", "double_entry": "nhập kép", "pass": "lần nhập",
    "reason": "lý do", "created": "tạo mới", "changes": "thay đổi", "code_ids": "mã", "closed": "đã đóng",
    "quota_cell_id": "ô chỉ tiêu",
    "expires_at": "hết hạn lúc", "api_token_revoked": "thu hồi mã truy cập API",
}


class AuditFilterError(ServiceError):
    """A filter that cannot be applied; ``str()`` is a Vietnamese message."""


@dataclass(frozen=True)
class AuditFilter:
    """Who (a staff account id or a non-staff actor), what (an action code), which target, and when
    (local dates, both included)."""

    user_id: int | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def as_args(self) -> dict[str, str]:
        """The filter as the query string of the page and of the CSV link."""
        who = f"u{self.user_id}" if self.user_id else (f"a:{self.actor}" if self.actor else None)
        args = {"who": who, "action": self.action, "target": self.target,
                "from": self.date_from and self.date_from.strftime("%d/%m/%Y"),
                "to": self.date_to and self.date_to.strftime("%d/%m/%Y")}
        return {k: v for k, v in args.items() if v}


def parse_filter(args: Mapping[str, str]) -> AuditFilter:
    """The filter from a query string. :raises AuditFilterError: for an unknown value or a bad date."""
    who = (args.get("who") or "").strip()
    user_id = actor = None
    if who.startswith("u") and who[1:].isdigit():
        user_id = int(who[1:])
    elif who.startswith("a:") and who[2:] in ACTOR_LABELS:
        actor = who[2:]
    elif who:
        raise AuditFilterError("Người thực hiện không hợp lệ.")
    action = (args.get("action") or "").strip() or None
    if action is not None and action not in ACTION_LABELS:
        raise AuditFilterError("Loại thao tác không hợp lệ.")
    target = (args.get("target") or "").strip()[:64] or None
    date_from, date_to = _date(args.get("from"), "Từ ngày"), _date(args.get("to"), "Đến ngày")
    if date_from and date_to and date_from > date_to:
        raise AuditFilterError("“Từ ngày” phải trước hoặc bằng “Đến ngày”.")
    return AuditFilter(user_id, actor, action, target, date_from, date_to)


#: A day as typed in the filter: 15/01/2026 or 15/1/2026, ASCII digits, nothing around it.
_DAY_MONTH_YEAR = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")


def _date(text: str | None, label: str) -> date | None:
    """The day typed as dd/mm/yyyy (or YYYY-MM-DD); a blank field filters nothing. Read with a pattern, not
    ``strptime``, which also takes digits of other scripts."""
    text = text or ""
    if not text.strip():
        return None
    typed = _DAY_MONTH_YEAR.fullmatch(text)
    try:
        return date(int(typed[3]), int(typed[2]), int(typed[1])) if typed else parse_iso_date(text)
    except ValueError:
        raise AuditFilterError(f"{label}: “{text[:20]}” không phải ngày (dd/mm/yyyy).") from None


def _query(f: AuditFilter, zone: ZoneInfo) -> sa.Select:
    query = sa.select(AuditEvent)
    if f.user_id:
        query = query.where(AuditEvent.user_id == f.user_id)
    if f.actor:
        query = query.where(AuditEvent.user_id.is_(None), AuditEvent.actor == f.actor)
    if f.action:
        query = query.where(AuditEvent.action == f.action)
    if f.target:
        query = query.where(AuditEvent.object_id == f.target)
    if f.date_from:
        query = query.where(AuditEvent.at >= _utc(f.date_from, zone))
    if f.date_to:
        query = query.where(AuditEvent.at < _utc(f.date_to + timedelta(days=1), zone))
    return query


def _utc(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` starts in ``zone``."""
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(timezone.utc)


def events(session: Session, f: AuditFilter, zone: ZoneInfo, *, page: int = 1, per_page: int = PER_PAGE
           ) -> tuple[list[AuditEvent], int]:
    """A page of matching events, newest first, and how many match."""
    query = _query(f, zone)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    page = min(max(page, 1), max(1, -(-total // per_page)))  # past the last page: the last page
    rows = session.scalars(query.options(joinedload(AuditEvent.user)).order_by(AuditEvent.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def who_choices(session: Session) -> list[tuple[str, str]]:
    """(value, label) of everyone who can be filtered on: staff accounts, then the other actors."""
    staff = [(f"u{u.id}", f"{u.full_name} ({u.username})" if u.full_name else u.username)
             for u in session.scalars(sa.select(StaffUser).order_by(StaffUser.username))]
    return staff + [(f"a:{code}", label.capitalize()) for code, label in ACTOR_LABELS.items()]


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def who_label(event: AuditEvent) -> str:
    if event.user is not None:
        return event.user.full_name or event.user.username
    return ACTOR_LABELS.get(event.actor, event.actor).capitalize()


def local_text(at: datetime, zone: ZoneInfo) -> str:
    return date_time(at, zone)


#: Stored codes of states, statuses and roles, as the pages name them.
VALUE_LABELS = {
    **{state.value: label.lower() for state, label in STATE_LABELS.items()},
    "unused": "chưa dùng", "used": "đã dùng", "revoked": "đã thu hồi",
    "admin": "quản trị viên", "supervisor": "giám sát viên", "clerk": "nhân viên nhập phiếu",
    "analyst": "chuyên viên phân tích", "observer": "quan sát viên", "auditor": "cán bộ phúc tra",
}


def value_text(value, zone: ZoneInfo = VIETNAM) -> str:
    """A stored old or new value as text a person reads: Vietnamese letters as they are, one field per line,
    codes by their Vietnamese names, stored UTC times in ``zone``."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return "\n".join(f"{FIELD_LABELS.get(k, k)}: {_scalar(v, zone)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_scalar(v, zone) for v in value)
    return _scalar(value, zone)


def _scalar(value, zone: ZoneInfo) -> str:
    if isinstance(value, bool):
        return "có" if value else "không"
    if value is None or value == "" or value == [] or value == {}:
        return "(trống)"
    if isinstance(value, (list, dict)):
        return value_text(value, zone).replace("\n", "; ")
    if isinstance(value, str):
        return VALUE_LABELS.get(value) or _when(value, zone) or value
    return str(value)


def _when(text: str, zone: ZoneInfo) -> str | None:
    """An ISO date ("2026-12-07") or time ("2026-12-07T01:59+00:00") as the pages write it, else None."""
    if not (len(text) >= 10 and text[4] == "-" and text[7] == "-"):
        return None
    try:
        if len(text) == 10:
            return short_date(date.fromisoformat(text))
        return date_time(datetime.fromisoformat(text), zone)
    except ValueError:
        return None


def target_labels(session: Session, rows: list[AuditEvent]) -> dict[int, str]:
    """Event id → what it acted on, by name: the account's username, the cell's form and agency, ..."""
    def ids(kind: str) -> set[int]:
        return {int(e.object_id) for e in rows if e.object_type == kind and (e.object_id or "").isdigit()}

    users = dict(session.execute(sa.select(StaffUser.id, StaffUser.username)
                                 .where(StaffUser.id.in_(ids("staff_user")))).all())
    cells = {cid: _cell_text(form, agency) for cid, form, agency in session.execute(
        sa.select(QuotaCell.id, QuotaCell.form_code, Agency.name)
        .outerjoin(Agency, QuotaCell.agency_id == Agency.id).where(QuotaCell.id.in_(ids("quota_cell"))))}
    batch_ids = ids("code_batch")
    batches = {bid: f"lô {bid} ({_cell_text(form, agency)})" for bid, form, agency in session.execute(
        sa.select(CodeBatch.id, QuotaCell.form_code, Agency.name)
        .join(QuotaCell, CodeBatch.quota_cell_id == QuotaCell.id)
        .outerjoin(Agency, QuotaCell.agency_id == Agency.id).where(CodeBatch.id.in_(batch_ids)))}
    out = {}
    for e in rows:
        kind, oid = e.object_type, e.object_id
        if not kind:
            out[e.id] = ""
            continue
        key = int(oid) if (oid or "").isdigit() else None
        named = {"staff_user": users, "quota_cell": cells, "code_batch": batches}.get(kind, {}).get(key)
        if kind == "client":
            named = "một máy truy cập (địa chỉ chỉ lưu dạng băm)"
        out[e.id] = f"{OBJECT_LABELS.get(kind, kind)} {named or oid or ''}".strip()
    return out


def _cell_text(form: str, agency: str | None) -> str:
    return f"{form} – {agency or 'mọi cơ quan'}"


CSV_HEADER = ["Thời điểm", "Người thực hiện", "Thao tác", "Mã thao tác", "Đối tượng", "Giá trị cũ", "Giá trị mới"]


def csv_text(session: Session, f: AuditFilter, zone: ZoneInfo) -> str:
    """The matching events as CSV (UTF-8 with BOM, opens in Excel), newest first, at most
    :data:`EXPORT_LIMIT` of them."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    query = _query(f, zone).options(joinedload(AuditEvent.user)).order_by(AuditEvent.id.desc())
    for offset in range(0, EXPORT_LIMIT, 1000):
        rows = list(session.scalars(query.offset(offset).limit(1000)))
        targets = target_labels(session, rows)
        for e in rows:
            writer.writerow([tabular.csv_cell(v) for v in (
                local_text(e.at, zone), who_label(e), action_label(e.action), e.action, targets[e.id],
                value_text(e.old_value, zone), value_text(e.new_value, zone))])
        if len(rows) < 1000:
            break
    return buffer.getvalue()
