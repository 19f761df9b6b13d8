"""The quota plan of a round: targets per cell, CSV import and export, recommended sample sizes, and the
soft-close switch.

Cells come from the round's files (``rounds.load_round``); here supervisors only change their targets,
staff counts and soft-close flag. A CSV import is all or nothing: any bad row rejects the whole file, with
every bad row listed.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

import analysis
from survey_service.models import Agency, Channel, QuotaCell, Response, Round, StaffUser
from survey_service.services import audit, rounds, tabular
from survey_service.services.errors import ServiceError
from survey_service.vietnamese import sort_key

#: Yamane's margin of error and the per-cell floor when the round's methodology does not give them
#: (``online_sample_size``): e = 10 % and at least 15, as in Nghệ An's plan.
DEFAULT_MARGIN = 0.10
DEFAULT_FLOOR = 15

CSV_COLUMNS = ["form_code", "agency_code", "agency_name", "channel", "staff_count", "target", "soft_closed"]
REQUIRED_COLUMNS = {"form_code", "agency_code"}
#: What each CSV column holds and how an import treats it, for the page that explains the file.
CSV_COLUMN_HELP = {
    "form_code": ("Mã mẫu phiếu (ví dụ CC-CT)", "Bắt buộc"),
    "agency_code": ("Mã cơ quan; để trống cho phiếu ma trận HĐ-CT", "Bắt buộc"),
    "agency_name": ("Tên cơ quan", "Chỉ để đọc"),
    "channel": ("Kênh thu: online (trực tuyến) hoặc paper (giấy)", "Chỉ để đọc"),
    "staff_count": ("Số công chức của cơ quan", "Bắt buộc nếu không có chỉ tiêu"),
    "target": ("Chỉ tiêu số phiếu; để trống: cỡ mẫu khuyến nghị", "Bắt buộc nếu không có số công chức"),
    "soft_closed": ("Ô đã tạm dừng nhận phiếu (true/false)", "Chỉ để đọc"),
}
MAX_TARGET = 1_000_000


class QuotaError(ServiceError):
    """A change to the quota plan that cannot be made; ``errors`` lists every problem, for the user (422: a
    file that cannot be imported as it stands; 409: the round is closed)."""

    status = 422

    def __init__(self, errors: list[str], status: int | None = None):
        super().__init__("; ".join(errors), status)
        self.errors = errors


def _check_collecting(rnd: Round, today: date | None) -> None:
    """A closed round's plan is what it collected under: :raises QuotaError: 409 once it is closed."""
    try:
        rounds.check_collecting(rnd, today or rounds.local_today())
    except rounds.RoundError as exc:
        raise QuotaError([str(exc)], 409) from None


@dataclass(frozen=True)
class TargetChange:
    cell: QuotaCell
    target: int
    staff_count: int | None


def recommended_size(staff_count: int, margin: float = DEFAULT_MARGIN, floor: int = DEFAULT_FLOOR) -> int:
    """Yamane's n = N / (1 + N e²), rounded up, at least ``floor`` and never more than N."""
    return analysis.recommend_sample_size(staff_count, margin=margin, floor=floor)


def sizing(rnd: Round) -> tuple[float, int]:
    """(margin, floor) of the round's methodology (``online_sample_size``), or the defaults."""
    rule = (rnd.methodology or {}).get("online_sample_size") or {}
    return float(rule.get("margin", DEFAULT_MARGIN)), int(rule.get("floor", DEFAULT_FLOOR))


def cells(session: Session, rnd: Round) -> list[QuotaCell]:
    """The round's cells, by form then agency in Vietnamese order (the matrix cell first)."""
    rows = session.scalars(
        sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id).options(selectinload(QuotaCell.agency))
    ).all()
    return sorted(rows, key=lambda c: (c.form_code, c.agency is not None,
                                       sort_key(c.agency.name) if c.agency else ()))


def get_cell(session: Session, rnd: Round, cell_id: int) -> QuotaCell | None:
    cell = session.get(QuotaCell, cell_id)
    return cell if cell is not None and cell.round_id == rnd.id else None


def apply_targets(session: Session, changes: list[TargetChange], *, by: StaffUser | None, actor: str = "staff",
                  source: str = "editor", today: date | None = None) -> int:
    """Set targets and staff counts; one audit event per changed cell. Returns how many cells changed.

    :raises QuotaError: 409 when a cell's round is closed (``today``: the Vietnamese date, by default now's).
    """
    for rnd in {change.cell.round for change in changes}:
        _check_collecting(rnd, today)
    changed = 0
    for change in changes:
        cell = change.cell
        old = {"target": cell.target, "staff_count": cell.staff_count}
        new = {"target": change.target, "staff_count": change.staff_count}
        if old == new:
            continue
        cell.target, cell.staff_count = change.target, change.staff_count
        audit.record(session, "quota.target", user=by, actor=actor, object_type="quota_cell", object_id=cell.id,
                     old=old, new={**new, "form_code": cell.form_code, "source": source})
        changed += 1
    session.flush()
    return changed


#: A rejected file lists at most this many bad rows on the page (and says how many more there are).
ERRORS_SHOWN = 200


def parse_count(text: str | None, what: str) -> int | None:
    """A non-negative whole number from a form field or CSV cell; blank is None. Raises ValueError."""
    text = (text or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):  # "²".isdigit() is true
        raise ValueError(f"{what} phải là số nguyên không âm, nhận được '{text[:20]}'")
    if len(text) > len(str(MAX_TARGET)):
        raise ValueError(f"{what} quá lớn ({text[:20]}…)")
    value = int(text)
    if value > MAX_TARGET:
        raise ValueError(f"{what} quá lớn ({value})")
    return value


def target_change(cell: QuotaCell, target_text: str | None, staff_text: str | None, margin: float,
                  floor: int) -> TargetChange:
    """Read one cell's target and staff count; a blank target with a staff count takes the recommended size.
    Raises ValueError with a Vietnamese message."""
    staff_count = parse_count(staff_text, "Số công chức")
    target = parse_count(target_text, "Chỉ tiêu")
    if target is None:
        if staff_count is None:
            raise ValueError("thiếu chỉ tiêu (hoặc số công chức để tính cỡ mẫu khuyến nghị)")
        target = recommended_size(staff_count, margin, floor)
    return TargetChange(cell, target, staff_count)


def import_csv(session: Session, rnd: Round, data: bytes, *, by: StaffUser | None, actor: str = "staff",
               today: date | None = None) -> int:
    """Replace targets from a CSV (the export's columns; ``target`` or ``staff_count`` required per row).

    Every bad row is reported in one :class:`QuotaError` and nothing changes, and so does a closed round
    (409). Returns how many cells changed.
    """
    _check_collecting(rnd, today)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QuotaError(["Tệp không phải văn bản UTF-8. Hãy lưu tệp dưới dạng CSV UTF-8."]) from None
    if not text.strip():
        raise QuotaError(["Tệp CSV rỗng."])
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)  # any line ending
    try:
        header = {(name or "").strip() for name in reader.fieldnames or []}
    except csv.Error:
        raise QuotaError(["Dòng 1: không đọc được dòng tiêu đề theo định dạng CSV."]) from None
    missing = REQUIRED_COLUMNS - header
    if missing or not header & {"target", "staff_count"}:
        raise QuotaError([
            "Dòng 1: thiếu cột " + ", ".join(sorted(missing or {"target"}))
            + ". Các cột: " + ", ".join(CSV_COLUMNS) + " (cần target hoặc staff_count)."
        ])

    margin, floor = sizing(rnd)
    by_key = {(c.form_code, c.agency.code if c.agency else ""): c for c in cells(session, rnd)}
    forms = {form for form, _ in by_key}
    agencies = set(session.scalars(sa.select(Agency.code).where(Agency.round_id == rnd.id)))
    errors, changes, seen = [], [], {}
    try:
        for row in tabular.records(reader):
            line = reader.line_num
            row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
            if not any(row.values()):
                continue
            form, agency = row.get("form_code", ""), row.get("agency_code", "")
            if form not in forms:
                errors.append(f"Dòng {line}: mã phiếu '{form}' không có trong đợt {rnd.code}.")
                continue
            if agency and agency not in agencies:
                errors.append(f"Dòng {line}: không có cơ quan mã '{agency}' trong đợt {rnd.code}.")
                continue
            cell = by_key.get((form, agency))
            if cell is None:
                errors.append(f"Dòng {line}: phiếu {form} không có ô chỉ tiêu cho cơ quan "
                              f"'{agency or '(trống)'}'.")
                continue
            if (form, agency) in seen:
                errors.append(f"Dòng {line}: ô {form}/{agency or '*'} trùng với dòng {seen[(form, agency)]}.")
                continue
            seen[(form, agency)] = line
            try:
                changes.append(target_change(cell, row.get("target"), row.get("staff_count"), margin, floor))
            except ValueError as exc:
                errors.append(f"Dòng {line}: {exc}.")
    except tabular.UnreadableCsv as exc:
        errors.append(f"Dòng {exc.line}: {exc}.")
    if errors:
        raise QuotaError(errors)
    if not changes:
        raise QuotaError(["Tệp CSV không có dòng dữ liệu nào."])
    return apply_targets(session, changes, by=by, actor=actor, source="csv", today=today)


def export_csv(session: Session, rnd: Round) -> bytes:
    """The plan as CSV (UTF-8 with BOM for Excel), in the columns :func:`import_csv` reads back."""
    out = io.StringIO()
    rows = [CSV_COLUMNS] + [
        [c.form_code, c.agency.code if c.agency else "", c.agency.name if c.agency else "", c.channel.value,
         "" if c.staff_count is None else c.staff_count, c.target, int(c.soft_closed)]
        for c in cells(session, rnd)]
    csv.writer(out).writerows(tabular.csv_rows(rows))
    return out.getvalue().encode("utf-8-sig")


def set_soft_closed(session: Session, cell: QuotaCell, closed: bool, *, today: date | None = None,
                    by: StaffUser | None, actor: str = "staff") -> bool:
    """Soft-close or reopen a cell; returns False (and records nothing) when it already was so.

    :raises QuotaError: once the cell's round is closed (``today``: the Vietnamese date, by default now's).
    """
    _check_collecting(cell.round, today)
    if cell.soft_closed == closed:
        return False
    cell.soft_closed = closed
    audit.record(session, "quota.soft_close" if closed else "quota.reopen", user=by, actor=actor,
                 object_type="quota_cell", object_id=cell.id,
                 old={"soft_closed": not closed}, new={"soft_closed": closed, "form_code": cell.form_code})
    session.flush()
    return True


def is_surplus(cell: QuotaCell, counted: int) -> bool:
    """The surplus rule: a paper response is surplus when its cell already has ``counted`` >= target
    non-surplus respondents. Paper cannot be refused at the door, so it is kept and flagged instead."""
    return cell.channel is Channel.PAPER and counted >= cell.target


def new_paper_response_is_surplus(session: Session, cell: QuotaCell) -> bool:
    """:func:`is_surplus` for a response stored now, counting the cell's non-surplus respondents."""
    counted = session.scalar(
        sa.select(sa.func.count(sa.distinct(Response.respondent_key)))
        .where(Response.quota_cell_id == cell.id, Response.surplus.is_(False))
    )
    return is_surplus(cell, counted)


def surplus_in_analysis(rnd: Round) -> bool:
    """The round setting: do surplus responses count in the analysis (default: no)?"""
    return bool((rnd.settings or {}).get("surplus_in_analysis", False))
