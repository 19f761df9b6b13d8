"""Sampling frames and sample lists: import a frame, size and draw the sample per cell, keep the official and
reserve lists, have them signed off by an observer, and replace units from the reserve.

A frame is either a one-stop office's register of dossiers (cells: agency × field) or a list of households
per village or residential group (cells: communes, which are agencies of the round). Dossier cells, and the
communes of a household frame when all of them are surveyed, are strata: each gets the larger of Yamane's
``n = N / (1 + N e²)`` and the size its precision target needs, drawn systematically in the file's order.
When a household frame asks for fewer communes, they are drawn with probability proportional to their
households and an equal number of households is drawn systematically in each (village order), so every
household of the frame has the same chance (a self-weighting design). A reserve list, in random order, is
drawn from the units left in each cell.

The lists are checked and signed off by an observer (the Fatherland Front, MTTQ, or the Veterans'
Association, CCB: Hà Nội KH 207/KH-UBND 2019 has them "giám sát, kiểm tra, thông qua" the official and reserve
lists before fieldwork). Until every frame of a round is signed off, no sheet of the round is issued.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import secrets
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from analysis.sampling import pps_systematic, precision_sample_size, recommend_sample_size, systematic_sample
from survey_service.models import (
    Agency, Channel, Frame, FrameKind, FrameUnit, QuotaCell, Role, Round, SampleList, Sheet, StaffUser,
)
from survey_service.services import audit, quotas, storable, tabular
from survey_service.services.errors import ServiceError

KIND_LABELS = {
    FrameKind.DOSSIERS: "Sổ theo dõi hồ sơ của bộ phận một cửa",
    FrameKind.HOUSEHOLDS: "Danh sách hộ gia đình theo thôn, tổ dân phố",
}
LIST_LABELS = {SampleList.OFFICIAL: "Chính thức", SampleList.RESERVE: "Dự phòng"}
#: Organisations whose observers sign off sample lists.
ORGANISATIONS = {"MTTQ": "Ủy ban Mặt trận Tổ quốc Việt Nam", "CCB": "Hội Cựu chiến binh"}

#: Column → the header names accepted for it (compared in lower case).
COLUMNS = {
    "agency": ("agency", "cơ quan", "mã cơ quan"),
    "field": ("field", "lĩnh vực"),
    "commune": ("commune", "xã", "mã xã", "xã, phường"),
    "village": ("village", "thôn", "thôn, tổ dân phố", "tổ dân phố"),
    "ref": ("ref", "số hồ sơ", "mã hồ sơ", "mã hộ", "số hộ"),
    "label": ("label", "ghi chú", "mô tả", "chủ hộ, địa chỉ"),
}
REQUIRED = {
    FrameKind.DOSSIERS: ("agency", "field", "ref"),
    FrameKind.HOUSEHOLDS: ("commune", "village", "ref"),
}
LIMITS = {"field": 100, "village": 100, "ref": 64, "label": 255}
MAX_ERRORS = 200


class FrameError(ServiceError):
    """A frame request refused; ``errors`` lists each problem (file rows with their line)."""

    def __init__(self, errors: list[str] | str, status: int = 422):
        self.errors = [errors] if isinstance(errors, str) else errors
        shown = self.errors[:MAX_ERRORS]
        more = len(self.errors) - len(shown)
        super().__init__("\n".join(shown) + (f"\n… và {more} lỗi khác." if more else ""), status)


# --- import --------------------------------------------------------------------------------------------
def import_frame(session: Session, rnd: Round, kind: FrameKind | str, data: bytes, filename: str, *,
                 today: date, name: str | None = None, by: StaffUser | None = None, actor: str = "staff") -> Frame:
    """Read a frame from CSV or XLSX and store it, all rows or none.

    :raises FrameError: with every bad row's line and reason; nothing is stored.
    """
    try:
        kind = FrameKind(kind)
    except ValueError:
        raise FrameError(f"Loại khung mẫu phải là {' hoặc '.join(k.value for k in FrameKind)}.", 400) from None
    name = (name or filename or "").strip()[:255] or KIND_LABELS[kind]
    if storable.unstorable(name):
        raise FrameError(f"Tên khung mẫu {storable.unstorable(name)}.", 400)
    if session.scalar(sa.select(Frame.id).where(Frame.round_id == rnd.id, Frame.name == name)):
        raise FrameError(f"Đợt {rnd.code} đã có khung mẫu tên “{name}”; hãy đặt tên khác.", 409)
    try:
        header, rows = tabular.read_table(data, filename or "")
    except tabular.UnreadableTable as exc:
        raise FrameError(str(exc), 400) from None
    columns, errors = _columns(header, kind)
    if errors:
        raise FrameError(errors, 400)
    agencies = {a.code: a for a in session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id))}
    units, seen = [], {}
    for line, row in rows:
        values = {key: row.get(column, "") for key, column in columns.items()}
        problems = _row_problems(values, kind, agencies, rnd)
        if not problems and values["ref"] in seen:
            problems.append(f"số/mã “{values['ref']}” trùng với dòng {seen[values['ref']]}")
        if problems:
            errors += [f"Dòng {line}: {p}." for p in problems]
            continue
        seen[values["ref"]] = line
        agency = agencies[values["agency" if kind is FrameKind.DOSSIERS else "commune"]]
        units.append({"line": line, "agency_id": agency.id, "field": values.get("field", ""),
                      "village": values.get("village", ""), "ref": values["ref"], "label": values.get("label", "")})
    if not units and not errors:
        errors.append("Tệp không có dòng dữ liệu nào.")
    if errors:
        raise FrameError(errors)
    frame = Frame(round_id=rnd.id, kind=kind, name=name, imported_on=today, imported_by_id=by.id if by else None)
    session.add(frame)
    session.flush()
    session.execute(FrameUnit.__table__.insert(), [{**unit, "frame_id": frame.id} for unit in units])
    audit.record(session, "frame.import", user=by, actor=actor, object_type="frame", object_id=frame.id,
                 new={"round": rnd.code, "kind": kind.value, "name": name, "units": len(units),
                      "sha256": hashlib.sha256(data).hexdigest()})
    session.flush()
    return frame


def _columns(header: list[str], kind: FrameKind) -> tuple[dict[str, str], list[str]]:
    """Column key → the header naming it, and the header's problems."""
    lowered = {h.lower(): h for h in header if h}
    found, errors = {}, []
    wanted = REQUIRED[kind] + ("label",)
    for key in wanted:
        names = [lowered[a] for a in COLUMNS[key] if a in lowered]
        if len(names) > 1:
            errors.append(f"Dòng 1: các cột {', '.join(names)} cùng là cột {key}; chỉ giữ một cột.")
        elif names:
            found[key] = names[0]
        elif key != "label":
            errors.append(f"Dòng 1: thiếu cột {key} (tên cột chấp nhận: {', '.join(COLUMNS[key])}).")
    for count_header in {h for h in header if h and header.count(h) > 1}:
        errors.append(f"Dòng 1: cột “{count_header}” xuất hiện {header.count(count_header)} lần.")
    return found, errors


def _row_problems(values: dict[str, str], kind: FrameKind, agencies: dict[str, Agency], rnd: Round) -> list[str]:
    bad = [f"cột {key} {problem}" for key, value in values.items() if (problem := storable.unstorable(value))]
    if bad:
        return bad
    problems = []
    for key in REQUIRED[kind]:
        if not values.get(key):
            problems.append(f"cột {key} bỏ trống")
    for key, limit in LIMITS.items():
        if len(values.get(key, "")) > limit:
            problems.append(f"cột {key} dài quá {limit} ký tự")
    code = values.get("agency" if kind is FrameKind.DOSSIERS else "commune")
    if code and code not in agencies:
        what = "cơ quan" if kind is FrameKind.DOSSIERS else "xã, phường"
        problems.append(f"{what} mã “{code}” không có trong đợt {rnd.code}")
    return problems


# --- sizes and selection -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """How a sample is sized and drawn.

    ``margin``: e of Yamane's formula. ``target`` and ``target_margin``: a target share (e.g. 0.9) and the
    half-width of the 95 % interval wanted around it; the cell gets the larger of the two sizes.
    ``reserve_share``: the reserve list's size as a share of the official one (rounded up).
    ``communes``: a household frame's communes to draw by PPS (None: every commune is a stratum).
    """

    margin: float = 0.05
    target: float | None = None
    target_margin: float | None = None
    reserve_share: float = 0.2
    communes: int | None = None

    def check(self) -> None:
        problems = []
        if not 0 < self.margin < 1:
            problems.append("Sai số e phải lớn hơn 0 và nhỏ hơn 1 (ví dụ 0,05).")
        if (self.target is None) != (self.target_margin is None):
            problems.append("Chỉ tiêu và độ chính xác cần đạt phải cùng được cho, hoặc cùng bỏ trống.")
        if self.target is not None and not 0 < self.target < 1:
            problems.append("Chỉ tiêu tỷ lệ hài lòng phải lớn hơn 0 và nhỏ hơn 1 (ví dụ 0,9).")
        if self.target_margin is not None and not 0 < self.target_margin < 1:
            problems.append("Độ chính xác cần đạt phải lớn hơn 0 và nhỏ hơn 1 (ví dụ 0,05).")
        if not 0 <= self.reserve_share <= 1:
            problems.append("Tỷ lệ danh sách dự phòng phải từ 0 đến 1.")
        if self.communes is not None and self.communes < 1:
            problems.append("Số xã chọn phải từ 1 trở lên.")
        if problems:
            raise FrameError(problems, 400)

    def size(self, population: int) -> int:
        """A stratum's sample: the larger of Yamane's size and the precision target's, at most N."""
        n = recommend_sample_size(population, margin=self.margin, floor=0)
        if self.target is not None:
            n = max(n, precision_sample_size(population, proportion=self.target, half_width=self.target_margin))
        return n


@dataclass
class Cell:
    """A cell of a frame with its design: population N, official sample n, reserve r, the probability its
    commune was drawn (1 for strata) and the weight of each of its units (population over sample)."""

    agency: str
    agency_name: str
    field: str
    population: int
    sample: int
    reserve: int
    commune_probability: float = 1.0

    @property
    def weight(self) -> float | None:
        return self.population / self.sample / self.commune_probability if self.sample else None

    @property
    def key(self) -> tuple[str, str]:
        return self.agency, self.field


def _units(session: Session, frame: Frame, *where) -> list[FrameUnit]:
    """The frame's units on a list (or matching ``where``), with their agencies."""
    return list(session.scalars(sa.select(FrameUnit).where(FrameUnit.frame_id == frame.id,
                                                           *(where or (FrameUnit.sample_list.is_not(None),)))
                                .options(selectinload(FrameUnit.agency)).order_by(FrameUnit.line)))


def _rows(session: Session, frame: Frame) -> list:
    """Every unit of the frame as a plain row (id, code, name, field, village, line): a frame may hold
    hundreds of thousands of units, too many to load as objects for sizing and drawing."""
    return list(session.execute(
        sa.select(FrameUnit.id, Agency.code, Agency.name, FrameUnit.field, FrameUnit.village, FrameUnit.line)
        .join(Agency, FrameUnit.agency_id == Agency.id).where(FrameUnit.frame_id == frame.id)
        .order_by(FrameUnit.line)))


def _by_cell(frame: Frame, units: list) -> dict[tuple[str, str], list]:
    """Units (rows with ``code``, ``field``, ``village``, ``line``) per cell, in the order systematic
    selection walks them: the register's order for dossiers, village then the list's order for households
    (implicit stratification by village)."""
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for unit in units:
        cells[(unit.code, unit.field)].append(unit)
    if frame.kind is FrameKind.HOUSEHOLDS:
        for members in cells.values():
            members.sort(key=lambda u: (u.village, u.line))
    return dict(sorted(cells.items(), key=lambda kv: kv[1][0].line))


def plan(session: Session, frame: Frame, design: Design) -> list[Cell]:
    """The cells of a frame with the sizes ``design`` gives them, before anything is drawn (PPS: the
    communes' probabilities; which communes are drawn is only known once drawn)."""
    design.check()
    return _plan(frame, design, _by_cell(frame, _rows(session, frame)))


def _plan(frame: Frame, design: Design, cells: dict[tuple[str, str], list]) -> list[Cell]:
    out = [Cell(code, members[0].name, field, len(members), 0, 0) for (code, field), members in cells.items()]
    if _uses_pps(frame, design, len(out)):
        total = sum(c.population for c in out)
        per_commune = math.ceil(design.size(total) / design.communes)
        for cell in out:
            cell.commune_probability = min(1.0, design.communes * cell.population / total)
            cell.sample = min(cell.population, per_commune)
    else:
        for cell in out:
            cell.sample = design.size(cell.population)
    for cell in out:
        cell.reserve = min(cell.population - cell.sample, math.ceil(design.reserve_share * cell.sample - 1e-9))
    return out


def _uses_pps(frame: Frame, design: Design, communes: int) -> bool:
    return frame.kind is FrameKind.HOUSEHOLDS and design.communes is not None and design.communes < communes


def draw(session: Session, frame: Frame, design: Design, *, today: date, seed: int | None = None,
         by: StaffUser | None = None, actor: str = "staff") -> list[Cell]:
    """Draw the official and reserve lists (replacing an earlier draw that was not signed off) with the
    generator seeded by ``seed`` (a new random one by default), which is recorded: drawing again with it
    gives the same lists. Returns the cells as drawn (PPS: only the communes drawn have a sample).

    :raises FrameError: 409 once the lists are signed off.
    """
    if frame.signed_off_on is not None:
        raise FrameError("Danh sách mẫu đã được ký duyệt; không chọn lại mẫu được.", 409)
    design.check()
    seed = secrets.randbits(62) if seed is None else int(seed)
    if not 0 <= seed < 2 ** 63:
        raise FrameError("Hạt giống ngẫu nhiên phải là số nguyên từ 0 đến 2^63 − 1.", 400)
    rng = np.random.default_rng(seed)
    members = _by_cell(frame, _rows(session, frame))
    cells = _plan(frame, design, members)
    if _uses_pps(frame, design, len(cells)):
        chosen = set(pps_systematic([c.population for c in cells], design.communes, rng))
        for i, cell in enumerate(cells):
            if i not in chosen:
                cell.sample = cell.reserve = 0
    placed = []
    for cell in cells:
        units = members[cell.key]
        official = systematic_sample(len(units), cell.sample, rng)
        taken = set(official)
        rest = [u for i, u in enumerate(units) if i not in taken]
        reserve = [rest[i] for i in systematic_sample(len(rest), cell.reserve, rng)]
        placed += [{"unit": units[i].id, "list": SampleList.OFFICIAL.value, "position": n}
                   for n, i in enumerate(official, start=1)]
        placed += [{"unit": reserve[i].id, "list": SampleList.RESERVE.value, "position": n}
                   for n, i in enumerate(rng.permutation(len(reserve)), start=1)]
    session.flush()
    table = FrameUnit.__table__
    session.execute(table.update().where(table.c.frame_id == frame.id, table.c.sample_list.is_not(None)).values(
        sample_list=None, list_position=None, replaced_by_id=None, replaced_reason=None))
    if placed:
        session.execute(table.update().where(table.c.id == sa.bindparam("unit")).values(
            sample_list=sa.bindparam("list"), list_position=sa.bindparam("position")), placed)
    session.expire_all()
    frame.seed, frame.sampled_on = seed, today
    frame.design = {**asdict(design), "cells": [_cell_json(c) for c in cells]}
    audit.record(session, "frame.sample", user=by, actor=actor, object_type="frame", object_id=frame.id,
                 new={"seed": str(seed), **asdict(design), "official": sum(c.sample for c in cells),
                      "reserve": sum(c.reserve for c in cells)})
    session.flush()
    return cells


def _cell_json(cell: Cell) -> dict:
    return {"agency": cell.agency, "agency_name": cell.agency_name, "field": cell.field,
            "population": cell.population, "sample": cell.sample, "reserve": cell.reserve,
            "commune_probability": cell.commune_probability, "weight": cell.weight}


def drawn_cells(frame: Frame) -> list[Cell]:
    """The cells of a drawn frame as recorded with it."""
    return [Cell(c["agency"], c["agency_name"], c["field"], c["population"], c["sample"], c["reserve"],
                 c["commune_probability"]) for c in (frame.design or {}).get("cells", [])]


def design_of(frame: Frame) -> Design | None:
    if not frame.design:
        return None
    return Design(**{k: frame.design[k] for k in Design.__dataclass_fields__})


def cell_weights(session: Session, round_id: int) -> list[dict]:
    """Every drawn cell of the round's frames: ``{frame, kind, agency, field, population, sample, weight}``,
    where ``weight`` is the design weight of one unit of the cell (population over sample, divided by the
    commune's probability when communes were drawn by PPS); cells not drawn are left out."""
    out = []
    for frame in session.scalars(sa.select(Frame).where(Frame.round_id == round_id).order_by(Frame.id)):
        out += [{"frame": frame.name, "kind": frame.kind.value, "agency": c.agency, "field": c.field,
                 "population": c.population, "sample": c.sample, "weight": c.weight}
                for c in drawn_cells(frame) if c.sample]
    return out


# --- lists ---------------------------------------------------------------------------------------------
@dataclass
class ListEntry:
    unit: FrameUnit
    #: For a reserve unit in use: the official unit it replaced.
    replaces: FrameUnit | None = None

    @property
    def status(self) -> str:
        if self.unit.replaced_by_id is not None:
            return "Đã thay thế"
        if self.unit.sample_list is SampleList.RESERVE:
            return f"Thay cho {self.replaces.ref}" if self.replaces else "Chưa dùng"
        return "Đang khảo sát"


def lists(session: Session, frame: Frame) -> dict[SampleList, list[ListEntry]]:
    """The official and reserve lists, by cell then position."""
    units = _units(session, frame)
    replaced = {u.replaced_by_id: u for u in units if u.replaced_by_id}
    out: dict[SampleList, list[ListEntry]] = {SampleList.OFFICIAL: [], SampleList.RESERVE: []}
    order = {}
    for unit in units:
        order.setdefault((unit.agency_id, unit.field), len(order))
    for unit in sorted(units, key=lambda u: (order[(u.agency_id, u.field)], u.list_position)):
        out[unit.sample_list].append(ListEntry(unit, replaced.get(unit.id)))
    return out


def lists_hash(session: Session, frame: Frame) -> str:
    """SHA-256 of the lists as drawn (which unit is on which list, where): what the observer signs."""
    rows = sorted((u.sample_list.value, u.agency.code, u.field, u.village, u.ref, u.list_position)
                  for u in _units(session, frame))
    return hashlib.sha256(json.dumps([frame.seed and str(frame.seed), rows], ensure_ascii=False).encode()).hexdigest()


EXPORT_COLUMNS = ["Danh sách", "STT", "Mã cơ quan/xã", "Cơ quan/xã", "Lĩnh vực", "Thôn, tổ dân phố",
                  "Số/mã hồ sơ, hộ", "Ghi chú", "Tình trạng"]


def lists_table(session: Session, frame: Frame) -> pd.DataFrame:
    """Both lists as one table for printing (official first)."""
    rows = [[LIST_LABELS[kind], e.unit.list_position, e.unit.agency.code, e.unit.agency.name, e.unit.field,
             e.unit.village, e.unit.ref, e.unit.label, e.status]
            for kind, entries in lists(session, frame).items() for e in entries]
    return pd.DataFrame(rows, columns=EXPORT_COLUMNS)


def export_lists(session: Session, frame: Frame, fmt: str) -> bytes:
    """The lists as CSV (UTF-8 with BOM, for Excel) or XLSX."""
    table = lists_table(session, frame)
    if fmt == "csv":
        return tabular.csv_frame(table).to_csv(index=False).encode("utf-8-sig")
    if fmt == "xlsx":
        out = io.BytesIO()
        with pd.ExcelWriter(out, engine="xlsxwriter", engine_kwargs={"options": tabular.XLSX_OPTIONS}) as writer:
            table.to_excel(writer, sheet_name="Danh sách mẫu", index=False)
        return out.getvalue()
    raise FrameError(f"Định dạng {fmt!r} không có; chọn csv hoặc xlsx.", 404)


# --- sign-off, replacement, the gate on issuing sheets -------------------------------------------------
def sign_off(session: Session, frame: Frame, *, organisation: str, by: StaffUser, today: date,
             actor: str = "staff") -> None:
    """An observer of the MTTQ or the CCB signs off the lists as drawn (audited with their hash; ``actor``
    "cli" when the observer signed at the command line)."""
    if by.role is not Role.OBSERVER:
        raise FrameError("Chỉ quan sát viên của MTTQ hoặc Hội CCB được ký duyệt danh sách mẫu.", 403)
    if organisation not in ORGANISATIONS:
        raise FrameError("Hãy chọn tổ chức của quan sát viên: MTTQ hoặc CCB.", 400)
    if frame.sampled_on is None:
        raise FrameError("Khung mẫu chưa được chọn mẫu; chưa có danh sách để ký duyệt.", 409)
    if frame.signed_off_on is not None:
        raise FrameError(f"Danh sách mẫu đã được ký duyệt ngày {frame.signed_off_on:%d/%m/%Y}.", 409)
    frame.signed_off_by_id, frame.signed_off_on, frame.signed_off_as = by.id, today, organisation
    frame.signed_lists_hash = lists_hash(session, frame)
    audit.record(session, "frame.sign_off", user=by, actor=actor, object_type="frame", object_id=frame.id,
                 new={"organisation": organisation, "lists_sha256": frame.signed_lists_hash})
    session.flush()


def _check_undone(session: Session, frame: Frame, what: str) -> None:
    """A frame or its sample may be withdrawn only while nothing rests on it: before sign-off, and before any
    sheet of the round is issued (its paper targets may have been set from the sample)."""
    if frame.signed_off_on is not None:
        raise FrameError(f"Danh sách mẫu đã được ký duyệt ngày {frame.signed_off_on:%d/%m/%Y}; không xóa {what} "
                         "được nữa.", 409)
    issued = session.scalar(sa.select(sa.func.count()).select_from(Sheet).join(QuotaCell)
                            .where(QuotaCell.round_id == frame.round_id))
    if issued:
        raise FrameError(f"Đợt {frame.round.code} đã phát {issued} phiếu; không xóa {what} được nữa.", 409)


def delete_sample(session: Session, frame: Frame, *, by: StaffUser | None = None, actor: str = "staff") -> None:
    """Withdraw the drawn lists (the frame stays, to be drawn again), before sign-off and before any sheet.

    :raises FrameError: 409 when not drawn, signed off or a sheet is issued.
    """
    if frame.sampled_on is None:
        raise FrameError(f"Khung mẫu “{frame.name}” chưa được chọn mẫu; không có mẫu để xóa.", 409)
    _check_undone(session, frame, "mẫu")
    table = FrameUnit.__table__
    session.execute(table.update().where(table.c.frame_id == frame.id, table.c.sample_list.is_not(None)).values(
        sample_list=None, list_position=None, replaced_by_id=None, replaced_reason=None))
    session.expire_all()
    audit.record(session, "frame.sample_delete", user=by, actor=actor, object_type="frame", object_id=frame.id,
                 old={"seed": str(frame.seed), "sampled_on": frame.sampled_on.isoformat()})
    frame.seed = frame.sampled_on = frame.design = None
    session.flush()


def delete_frame(session: Session, frame: Frame, *, by: StaffUser | None = None, actor: str = "staff") -> None:
    """Delete a frame with its units and lists, before sign-off and before any sheet of the round is issued.

    :raises FrameError: 409 when signed off or a sheet is issued.
    """
    _check_undone(session, frame, "khung mẫu")
    audit.record(session, "frame.delete", user=by, actor=actor, object_type="frame", object_id=frame.id,
                 old={"name": frame.name, "kind": frame.kind.value,
                      "units": session.scalar(sa.select(sa.func.count()).where(FrameUnit.frame_id == frame.id))})
    table = FrameUnit.__table__
    session.execute(table.update().where(table.c.frame_id == frame.id).values(replaced_by_id=None))
    session.execute(table.delete().where(table.c.frame_id == frame.id))
    session.delete(frame)
    session.flush()


def unsigned_frames(session: Session, round_id: int) -> list[Frame]:
    return list(session.scalars(sa.select(Frame).where(Frame.round_id == round_id, Frame.signed_off_on.is_(None))
                                .order_by(Frame.id)))


def check_signed_off(session: Session, rnd: Round) -> None:
    """No sheet of a round with a frame is issued until every frame's lists are signed off.

    :raises FrameError: 409 naming the frames still waiting.
    """
    waiting = unsigned_frames(session, rnd.id)
    if waiting:
        raise FrameError(f"Chưa phát được phiếu: danh sách mẫu của khung {', '.join(f.name for f in waiting)} "
                         "chưa được quan sát viên MTTQ/CCB ký duyệt.", 409)


def replace(session: Session, unit: FrameUnit, *, reason: str, by: StaffUser | None = None,
            actor: str = "staff") -> FrameUnit:
    """Replace a unit being surveyed that cannot be (moved, refused, not found) by the next unused unit of
    its cell's reserve list, in the list's order; audited.

    :raises FrameError: before sign-off, for a unit not being surveyed, or when the reserve is used up.
    """
    frame = session.get(Frame, unit.frame_id)
    reason = (reason or "").strip()
    if frame.signed_off_on is None:
        raise FrameError("Chỉ thay thế được sau khi danh sách mẫu đã được ký duyệt.", 409)
    if not reason or len(reason) > 255 or storable.unstorable(reason):
        raise FrameError("Hãy ghi lý do thay thế (tối đa 255 ký tự).", 400)
    cell = _units(session, frame, FrameUnit.agency_id == unit.agency_id, FrameUnit.field == unit.field)
    in_use = {u.replaced_by_id for u in cell if u.replaced_by_id}
    surveyed = unit.replaced_by_id is None and (unit.sample_list is SampleList.OFFICIAL or unit.id in in_use)
    if not surveyed:
        raise FrameError(f"Hồ sơ/hộ {unit.ref} không phải đơn vị đang được khảo sát.", 409)
    spare = sorted((u for u in cell if u.sample_list is SampleList.RESERVE and u.id not in in_use),
                   key=lambda u: u.list_position)
    if not spare:
        raise FrameError(f"Danh sách dự phòng của {unit.agency.name} {unit.field} đã dùng hết.".replace("  ", " "), 409)
    unit.replaced_by_id, unit.replaced_reason = spare[0].id, reason
    audit.record(session, "frame.replace", user=by, actor=actor, object_type="frame", object_id=frame.id,
                 new={"agency": unit.agency.code, "field": unit.field, "replaced": unit.ref,
                      "reserve_position": spare[0].list_position, "by": spare[0].ref, "reason": reason})
    session.flush()
    return spare[0]


def find_unit(session: Session, frame: Frame, ref: str) -> FrameUnit:
    unit = session.scalar(sa.select(FrameUnit).where(FrameUnit.frame_id == frame.id, FrameUnit.ref == ref.strip()))
    if unit is None:
        raise FrameError(f"Khung mẫu không có hồ sơ/hộ số “{ref.strip()[:64]}”.", 404)
    return unit


def set_paper_targets(session: Session, frame: Frame, form_code: str, *, by: StaffUser | None = None,
                      actor: str = "staff") -> int:
    """Set each agency's paper quota target of ``form_code`` to its official sample (summed over fields),
    so that the print page issues one sheet per sampled unit. Returns how many cells changed."""
    wanted: dict[str, int] = defaultdict(int)
    for cell in drawn_cells(frame):
        wanted[cell.agency] += cell.sample
    cells = {c.agency.code: c for c in session.scalars(
        sa.select(QuotaCell).where(QuotaCell.round_id == frame.round_id, QuotaCell.form_code == form_code,
                                   QuotaCell.channel == Channel.PAPER).options(selectinload(QuotaCell.agency)))
             if c.agency is not None}
    missing = sorted(set(wanted) - set(cells))
    if missing:
        raise FrameError(f"Mẫu phiếu {form_code} không có ô chỉ tiêu phiếu giấy cho: {', '.join(missing)}.", 409)
    changes = [quotas.TargetChange(cells[code], n, cells[code].staff_count) for code, n in wanted.items()]
    return quotas.apply_targets(session, changes, by=by, actor=actor, source=f"frame:{frame.id}")


def round_frames(session: Session, round_id: int) -> list[Frame]:
    return list(session.scalars(sa.select(Frame).where(Frame.round_id == round_id).order_by(Frame.id)))


def get_frame(session: Session, frame_id: int) -> Frame:
    frame = session.get(Frame, frame_id)
    if frame is None:
        raise FrameError("Không có khung mẫu này.", 404)
    return frame
