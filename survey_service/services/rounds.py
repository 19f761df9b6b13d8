"""Loading a round directory into the database, and looking rounds up.

Loading is idempotent: a round whose files (and questionnaires) did not change is left alone. A
questionnaire that changed gets a new version row; old versions and the responses that point at them are
never rewritten.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

import analysis
from survey_service import dates
from survey_service import questionnaires as qn
from survey_service.questionnaires.readers import ROUND_CODE_RE
from survey_service.questionnaires.rounds import (
    AGENCIES_FILE,
    PROVINCE_TYPES,
    ROUND_FIELDS,
    ROUND_FILE,
    SETTINGS_FIELDS,
)
from survey_service.models import (
    Agency, AgencyContinuation, Channel, CodeBatch, Division, QuestionnaireVersion, QuotaCell, Response, Round,
    RoundForm, Sheet, SheetState, StaffUser, utcnow,
)
from survey_service.services import audit, ballots
from survey_service.services.errors import ServiceError
from survey_service.services.sealing import OwnerBox, OwnerKey


#: How every page, export and chart of a simulated round names its data.
SIMULATED_LABEL = "Dữ liệu mô phỏng"


class RoundError(ServiceError):
    """A round that cannot be loaded as it stands; the message names what and why."""


def local_today() -> date:
    """Vietnam's day (:func:`survey_service.dates.vietnam_today`): round dates and response days are dates
    in Vietnam."""
    return dates.vietnam_today()


@dataclass
class LoadReport:
    round_code: str
    created: bool = False
    changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.created or bool(self.changes)


def check_round(round_dir: str | Path, questionnaire_dir: str | Path, *,
                earlier_rounds: Sequence[str | Path] = ()) -> qn.RoundDef:
    """Read and cross-check a round directory against the questionnaires, touching no database.

    An agency's ``continues`` may name a round next to ``round_dir``, one of ``questionnaire_dir``'s rounds or
    one in ``earlier_rounds``.
    """
    return _read(round_dir, questionnaire_dir, earlier_rounds)[0]


def wording_warnings(round_def: qn.RoundDef, questionnaire_dir: str | Path) -> list[str]:
    """One Vietnamese line per form of the round whose texts name another province (a form reused from
    another round whose place words are not ``{province}``/``{unit}``)."""
    questionnaires = qn.load_questionnaires(questionnaire_dir)
    warnings = []
    for code in round_def.form_codes:
        places = qn.other_places(questionnaires[code], round_def.province)
        if places:
            warnings.append(f"Phiếu {code} nhắc tới {', '.join(places)}, không phải "
                            f"{round_def.province_type} {round_def.province} của đợt: "
                            "thay bằng {unit} {province} trong tệp "
                            f"{questionnaires[code].file_name}.")
    return warnings


#: The name `round new` gives a citizens' round.
CITIZENS_TITLE = "Khảo sát sự hài lòng của người dân đối với sự phục vụ của cơ quan hành chính nhà nước"


#: What a round started by :func:`new_round_dir` must get of its own, by its kind (in Vietnamese for the
#: command's message, in English for the round file's header).
TO_REPLACE = {
    "par": ("danh sách cơ quan, chỉ tiêu phiếu, số cán bộ, cơ quan giám sát và mục tiêu",
            "the agencies, quotas, staff counts, supervising mappings and targets"),
    "citizens": ("danh sách cơ quan (agencies.csv), chỉ tiêu phiếu (quotas.csv), quy mô tổng thể (populations.csv) và "
                 "mục tiêu (round.yaml targets)", "the agencies, quotas, populations and targets"),
}


def new_round_dir(source_dir: str | Path, out: str | Path, round_code: str, province: str, unit: str) -> Path:
    """Write ``out/<round_code>/``, a round for another province started from a bundled one: its forms,
    agency kinds, agencies, quotas and methodology, with the new code, province and dates in the year of the
    code. Agencies continue no earlier round (they are another province's until replaced).

    :raises RoundError: a code or unit that is not valid, or a directory that exists already.
    """
    if not ROUND_CODE_RE.match(round_code):
        raise RoundError(f"Mã đợt {round_code!r} không hợp lệ: chữ in hoa và số, nối bằng dấu gạch ngang "
                         "(ví dụ HYN-2026).")
    if unit not in PROVINCE_TYPES:
        raise RoundError(f"Loại đơn vị phải là {' hoặc '.join(PROVINCE_TYPES)}.")
    if not province.strip():
        raise RoundError("Chưa có tên tỉnh, thành phố.")
    source, target = Path(source_dir), Path(out) / round_code
    if not (source / ROUND_FILE).is_file():
        raise RoundError(f"Không có đợt mẫu ở {source}.")
    if target.exists():
        raise RoundError(f"Thư mục {target} đã có; không ghi đè.")
    data = yaml.safe_load((source / ROUND_FILE).read_text(encoding="utf-8"))
    found = re.search(r"(20\d\d)$", round_code)
    year = int(found.group(1)) if found else data["year"]
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("README.md", ROUND_FILE))
    agencies = target / AGENCIES_FILE
    with agencies.open(encoding="utf-8", newline="") as f:
        rows = [{k: v for k, v in row.items() if k != "continues"} for row in csv.DictReader(f)]
    with agencies.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["code", "kind", "name"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    title = (CITIZENS_TITLE if data.get("kind") == "citizens" else "Điều tra xã hội học xác định Chỉ số CCHC")
    values = {**data, "code": round_code, "province": province.strip(), "province_type": unit, "year": year,
              "name": f"{title} năm {year}",
              "legal_basis": "Cần điền: kế hoạch khảo sát của UBND " + f"{unit} {province.strip()}",
              "opens_on": date(year, data["opens_on"].month, data["opens_on"].day),
              "closes_on": date(year, data["closes_on"].month, data["closes_on"].day),
              "portal": "cần điền địa chỉ cổng thông tin"}
    values.pop("organiser", None)  # the default names the new province's Sở Nội vụ
    header = (f"# Round {round_code} of {unit} {province.strip()}, started from {source.name} by `round new`:\n"
              f"# replace {TO_REPLACE[data.get('kind', 'par')][1]} copied from it with the province's own.\n"
              "# Every key is described in docs/round-format.md.\n\n")
    ordered = {f.key: values[f.key] for f in ROUND_FIELDS if f.key in values}
    settings = values["settings"]
    ordered["settings"] = {f.key: settings[f.key] for f in SETTINGS_FIELDS if f.key in settings}
    (target / ROUND_FILE).write_text(header + yaml.safe_dump(ordered, allow_unicode=True, sort_keys=False),
                                     encoding="utf-8")
    return target


def to_replace(round_dir: str | Path) -> str:
    """What a round written by :func:`new_round_dir` must still get of its own, for the command's message."""
    data = yaml.safe_load((Path(round_dir) / ROUND_FILE).read_text(encoding="utf-8"))
    return TO_REPLACE[data.get("kind", "par")][0]


def worded(questionnaire: qn.Questionnaire, rnd) -> qn.Questionnaire:
    """A form as the round shows it: its ``{province}``/``{unit}`` filled with the round's."""
    return questionnaire.worded_for(rnd.province, rnd.province_type)


def _read(round_dir, questionnaire_dir, earlier_rounds) -> tuple[qn.RoundDef, dict[str, qn.Questionnaire]]:
    questionnaires = qn.load_questionnaires(questionnaire_dir)
    round_def = qn.load_round(round_dir, questionnaires, questionnaire_dir=questionnaire_dir,
                              earlier_rounds=[Path(questionnaire_dir) / "rounds", *earlier_rounds])
    if round_def.round_kind == "par":  # a citizens' round is counted, not scored (questionnaires/citizens.py)
        check_methodology(round_def.methodology, [questionnaires[code] for code in round_def.form_codes])
    return round_def, questionnaires


def check_methodology(methodology: dict, forms: Sequence[qn.Questionnaire]) -> None:
    """The round's settings checked by :func:`analysis.validate_settings`, the one check of what they
    mean, against the items and scales of the round's forms; raises a ``methodology.yaml`` error naming
    the setting."""
    items = {f"{q.code}:{item.code}": (item.scale, item.criterion) for q in forms for item in q.scale_items}
    scales = {code: s for q in forms for code, s in q.scales.items()}
    try:
        analysis.validate_settings(methodology, items=items, scales=scale_options(scales))
    except ValueError as exc:
        raise qn.QuestionnaireError("methodology.yaml", None, f"thiết lập không dùng được để tính điểm ({exc})",
                                    label="setting") from None


def scale_options(scales: dict[str, qn.Scale]) -> dict[str, list[str]]:
    """Each scale's scored options worst → best, as :mod:`analysis` takes them (a higher digit is better):
    the one ordering rule of the round check and of the scoring. :raises ValueError: a non-digit option."""
    try:
        return {code: sorted(s.valid_codes, key=int) for code, s in scales.items()}
    except ValueError:
        raise ValueError("phương án có điểm của thang đo phải là chữ số") from None


def structure(round_def: qn.RoundDef) -> dict:
    """What :attr:`Round.structure` keeps of a round definition."""
    return {
        "kind": round_def.round_kind,
        "province_type": round_def.province_type,
        "organiser": round_def.organiser,
        "kinds": [{"code": k.code, "label": k.label, "plural": k.plural} for k in round_def.kinds],
        "own_staff_forms": list(round_def.own_staff_forms),
        "supervision": {m.form_code: {"cells_per": m.cells_per, "unit": m.unit, "supervisor": m.supervisor}
                        for m in round_def.supervision},
        "legal_basis": round_def.legal_basis,
        "targets": [dict(t) for t in round_def.targets],
    }


def load_round(
    session: Session, round_dir: str | Path, questionnaire_dir: str | Path, *,
    earlier_rounds: Sequence[str | Path] = (), by: StaffUser | None = None, actor: str = "cli",
    simulated_code: str | None = None,
) -> LoadReport:
    """Load or update the round in ``round_dir`` (flushes; the caller commits once), after the checks of
    :func:`check_round`.

    :param simulated_code: load the directory as a separate *simulated* round under this code (the
        demonstration round), never as the real round the directory describes. A real round is never
        loaded over a simulated one, nor the other way round.
    """
    round_def, questionnaires = _read(round_dir, questionnaire_dir, earlier_rounds)
    if simulated_code:
        round_def = dataclasses.replace(round_def, code=simulated_code,
                                        name=f"{round_def.name} ({SIMULATED_LABEL.lower()})")
    forms = {code: questionnaires[code] for code in round_def.form_codes}
    content_hash = _round_hash(round_def, forms)

    rnd = session.scalar(sa.select(Round).where(Round.code == round_def.code))
    report = LoadReport(round_def.code, created=rnd is None)
    if rnd is not None and rnd.simulated != bool(simulated_code):
        raise RoundError(f"Đợt {rnd.code} là đợt {'mô phỏng' if rnd.simulated else 'thật'}; không nạp "
                         f"{'dữ liệu thật' if rnd.simulated else 'đợt mô phỏng'} vào đó.")
    if rnd is not None and rnd.content_hash == content_hash:
        return report
    if rnd is None:
        rnd = Round(code=round_def.code, simulated=bool(simulated_code))
        session.add(rnd)

    _set(report, rnd, "name", round_def.name)
    _set(report, rnd, "province", round_def.province)
    _set(report, rnd, "year", round_def.year)
    _set(report, rnd, "opens_on", round_def.opens_on)
    _set(report, rnd, "closes_on", round_def.closes_on)
    _set(report, rnd, "settings", dict(round_def.settings))
    _set(report, rnd, "structure", structure(round_def))
    _set(report, rnd, "methodology", dict(round_def.methodology))
    _set(report, rnd, "methodology_hash", methodology_hash(round_def.methodology))
    rnd.content_hash = content_hash
    session.flush()

    agencies = _sync_agencies(session, rnd, round_def, forms, report)
    _sync_forms(session, rnd, forms, report)
    _sync_divisions(session, rnd, round_def, agencies, report)
    _sync_quotas(session, rnd, round_def, agencies, report)
    session.flush()
    audit.record(session, "round.load", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"created": report.created, "changes": report.changes})
    return report


def methodology_hash(methodology) -> str:
    """Hash of the scoring settings, carried by every result so it can be reproduced."""
    text = json.dumps(methodology, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _round_hash(round_def, forms) -> str:
    parts = [round_def.content_hash] + [f"{c}@{q.version}" for c, q in sorted(forms.items())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _set(report: LoadReport, obj, attr: str, value) -> None:
    old = getattr(obj, attr)
    if old != value:
        setattr(obj, attr, value)
        if not report.created:
            report.changes.append(f"{attr} đã thay đổi")


def _sync_agencies(session: Session, rnd: Round, round_def, forms, report: LoadReport) -> dict[str, Agency]:
    existing = {a.code: a for a in session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id))}
    wanted = {a.code: a for a in round_def.agencies}
    printed = _printed_matrix_kinds(session, rnd, forms)

    def keep_blocks(action: str, code: str, *kinds: str) -> None:
        for kind in kinds:
            if kind in printed:
                raise RoundError(f"agencies.csv: không {action} cơ quan {code} khi còn phiếu {printed[kind]} đã "
                                 "phát chưa nhập: phiếu in mỗi cơ quan một khung theo thứ tự hiện tại, máy đọc theo "
                                 "vị trí đó. Hãy nhập hoặc hủy các phiếu ấy trước.")

    for code, agency in existing.items():
        if code not in wanted:
            keep_blocks("bỏ", code, agency.kind)
            if _agency_in_use(session, agency):
                raise RoundError(f"agencies.csv: không bỏ được cơ quan {code}: đã có phiếu trả lời, mã mời "
                                 "hoặc phiếu giấy của cơ quan này.")
            session.delete(agency)
            report.changes.append(f"bỏ cơ quan {code}")
    for code, a_def in wanted.items():
        agency = existing.get(code)
        continues = [AgencyContinuation(position=n, round_code=r, agency_code=a)
                     for n, (r, a) in enumerate(a_def.continues)]
        if agency is None:
            keep_blocks("thêm", code, a_def.kind)
            agency = Agency(round_id=rnd.id, code=code, kind=a_def.kind, name=a_def.name, continues=continues)
            session.add(agency)
            existing[code] = agency
            if not report.created:
                report.changes.append(f"thêm cơ quan {code}")
            continue
        if (agency.kind, agency.name) != (a_def.kind, a_def.name):
            if agency.kind != a_def.kind:
                keep_blocks("đổi loại", code, agency.kind, a_def.kind)
            agency.kind, agency.name = a_def.kind, a_def.name
            report.changes.append(f"cập nhật cơ quan {code}")
        if [(c.round_code, c.agency_code) for c in agency.continues] != list(a_def.continues):
            agency.continues = continues
            report.changes.append(f"cơ quan {code} kế tục {_refs(a_def.continues) or 'không cơ quan nào'}")
    session.flush()
    return {code: existing[code] for code in wanted}


def _refs(pairs) -> str:
    return " ".join(f"{r}:{a}" for r, a in pairs)


def _printed_matrix_kinds(session: Session, rnd: Round, forms) -> dict[str, str]:
    """Kind of agency → the matrix form (HĐ-CT) rating it whose sheets are out and not keyed yet: their pages
    hold one block per agency in the round's order, so agencies of that kind may not come or go."""
    found = {}
    for code, questionnaire in forms.items():
        out = sa.select(sa.func.count()).select_from(Sheet).join(QuotaCell).where(
            QuotaCell.round_id == rnd.id, QuotaCell.form_code == code,
            Sheet.state.in_([SheetState.ISSUED, SheetState.RETURNED]))
        if questionnaire.rates == "matrix" and session.scalar(out):
            found |= dict.fromkeys(questionnaire.rated_kinds, code)
    return found


def _agency_in_use(session: Session, agency: Agency) -> bool:
    cells = sa.select(QuotaCell.id).where(QuotaCell.agency_id == agency.id)
    return bool(
        session.scalar(sa.select(sa.func.count()).select_from(Response).where(Response.agency_id == agency.id))
        or session.scalar(sa.select(sa.func.count()).select_from(Sheet).where(Sheet.quota_cell_id.in_(cells)))
        or session.scalar(
            sa.select(sa.func.count()).select_from(CodeBatch).where(CodeBatch.quota_cell_id.in_(cells))
        )
    )


def _sync_forms(session: Session, rnd: Round, forms, report: LoadReport) -> None:
    current = {rf.form_code: rf for rf in session.scalars(sa.select(RoundForm).where(RoundForm.round_id == rnd.id))}
    for code, questionnaire in forms.items():
        version = session.scalar(
            sa.select(QuestionnaireVersion).where(
                QuestionnaireVersion.form_code == code, QuestionnaireVersion.version == questionnaire.version
            )
        )
        if version is None:
            version = QuestionnaireVersion(
                form_code=code, version=questionnaire.version, definition=questionnaire.definition()
            )
            session.add(version)
            session.flush()
        rf = current.pop(code, None)
        if rf is None:
            session.add(RoundForm(round_id=rnd.id, form_code=code, questionnaire_version_id=version.id))
            if not report.created:
                report.changes.append(f"thêm phiếu {code}")
        elif rf.questionnaire_version_id != version.id:
            rf.questionnaire_version_id = version.id
            report.changes.append(f"phiếu {code} có phiên bản mới {questionnaire.version}")
    for code, rf in current.items():
        session.delete(rf)
        report.changes.append(f"bỏ phiếu {code} khỏi đợt")


def _sync_divisions(session: Session, rnd: Round, round_def, agencies, report: LoadReport) -> None:
    existing = {d.code: d for d in session.scalars(sa.select(Division).where(Division.round_id == rnd.id))}
    wanted = {d.code: (m.form_code, d) for m in round_def.supervision for d in m.divisions}
    for code, division in existing.items():
        if code not in wanted:
            session.delete(division)
            report.changes.append(f"bỏ đơn vị {code}")
    for code, (form, d_def) in wanted.items():
        division = existing.get(code)
        supervisors = [agencies[c] for c in d_def.supervised_by]
        if division is None:
            session.add(Division(round_id=rnd.id, form_code=form, code=code, name=d_def.name,
                                 supervised_by=supervisors))
            if not report.created:
                report.changes.append(f"thêm đơn vị {code} ({form})")
        elif ((division.form_code, division.name, {a.code for a in division.supervised_by})
              != (form, d_def.name, set(d_def.supervised_by))):  # stored in agency order, not the file's
            division.form_code, division.name, division.supervised_by = form, d_def.name, supervisors
            report.changes.append(f"cập nhật đơn vị {code} ({form})")


def _sync_quotas(session: Session, rnd: Round, round_def, agencies, report: LoadReport) -> None:
    existing = {
        (c.form_code, c.agency_id): c for c in session.scalars(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id))
    }
    staff = {(s.form_code, s.agency): s.staff for s in round_def.staff_counts}
    seen = set()
    for q in round_def.quotas:
        agency_id = agencies[q.agency].id if q.agency else None
        key = (q.form_code, agency_id)
        seen.add(key)
        cell = existing.get(key)
        staff_count = staff.get((q.form_code, q.agency))
        if cell is None:
            session.add(QuotaCell(round_id=rnd.id, form_code=q.form_code, agency_id=agency_id,
                                  channel=Channel(q.channel), target=q.target, staff_count=staff_count))
            if not report.created:
                report.changes.append(f"quota {q.form_code}/{q.agency or '*'} added")
        elif (cell.target, cell.channel.value, cell.staff_count) != (q.target, q.channel, staff_count):
            report.changes.append(f"quota {q.form_code}/{q.agency or '*'}: {cell.target} -> {q.target}")
            cell.target, cell.channel, cell.staff_count = q.target, Channel(q.channel), staff_count
    for key, cell in existing.items():
        if key not in seen:
            in_use = session.scalar(
                sa.select(sa.func.count()).select_from(Response).where(Response.quota_cell_id == cell.id)
            ) or session.scalar(sa.select(sa.func.count()).select_from(Sheet).where(Sheet.quota_cell_id == cell.id))
            if in_use:
                raise RoundError(f"quotas.csv: không bỏ được ô chỉ tiêu {cell.form_code}/{cell.agency_id}: ô "
                                 "đã có dữ liệu.")
            session.delete(cell)
            report.changes.append(f"quota {cell.form_code}/{cell.agency_id} removed")


def is_citizens(rnd: Round) -> bool:
    """A citizens' round (people rate the agencies that served them), not a PAR round."""
    return (rnd.structure or {}).get("kind") == "citizens"


def get_round(session: Session, round_code: str) -> Round | None:
    return session.scalar(sa.select(Round).where(Round.code == round_code))


def form_code_for(rnd: Round, text: str) -> str:
    """The round's form code typed as ``text``: exactly, in any case, or in the ASCII spelling of the
    questionnaire file names (``LD-CP`` for ``LĐ-CP``), as the response import accepts. Unknown text is
    returned as typed, for the caller to refuse by name."""
    typed = text.strip()
    for form in rnd.forms:
        if typed.upper() in (form.form_code.upper(), qn.file_name_for(form.form_code)[:-5].upper()):
            return form.form_code
    return typed


def round_state(rnd: Round, today: date) -> str:
    """"not_open", "open" or "closed" (by date, or closed early by a supervisor)."""
    if rnd.closed_at is not None or today > rnd.closes_on:
        return "closed"
    if today < rnd.opens_on:
        return "not_open"
    return "open"


def check_collecting(rnd: Round, today: date) -> None:
    """A closed round's data changes only after an explicit, audited reopening (:func:`schedule`): no
    keying, import, invitation code, printed sheet, recorded return or soft-close.

    :raises RoundError: when the round is closed (by date or early).
    """
    if round_state(rnd, today) == "closed":
        raise RoundError(
            f"Đợt khảo sát {rnd.code} đã kết thúc nhận phiếu (đến hết {rnd.closes_on:%d/%m/%Y}"
            + (", đóng sớm" if rnd.closed_at is not None else "") + "): dữ liệu của đợt không thay đổi được. "
            "Muốn nhập hoặc thay đổi thêm, quản trị viên hoặc giám sát viên phải gia hạn (mở lại) đợt trước.")


def questionnaire_for(session: Session, rnd: Round, form_code: str) -> qn.Questionnaire:
    """The questionnaire version the round currently uses for a form."""
    rf = session.get(RoundForm, (rnd.id, form_code))
    if rf is None:
        raise RoundError(f"Mẫu phiếu {form_code} không thuộc đợt {rnd.code}.")
    return worded(qn.Questionnaire.from_definition(rf.questionnaire_version.definition), rnd)


def list_rounds(session: Session) -> list[Round]:
    return list(session.scalars(sa.select(Round).order_by(Round.year.desc(), Round.code)))


def form_versions(session: Session, rnd: Round) -> list[dict]:
    """The questionnaire versions of this round's forms: the current ones and any that holds responses of
    this round, with their response counts. Another round's versions of a shared form code are not listed."""
    current = {rf.form_code: rf.questionnaire_version_id for rf in rnd.forms}
    counts = dict(session.execute(
        sa.select(Response.questionnaire_version_id, sa.func.count())
        .where(Response.round_id == rnd.id).group_by(Response.questionnaire_version_id)
    ).all())
    versions = session.scalars(
        sa.select(QuestionnaireVersion).where(QuestionnaireVersion.id.in_([*current.values(), *counts]))
        .order_by(QuestionnaireVersion.form_code, QuestionnaireVersion.created_at)
    ).all()
    return [
        {"form_code": v.form_code, "version": v.version, "created_at": v.created_at,
         "current": current.get(v.form_code) == v.id, "responses": counts.get(v.id, 0),
         "title": v.definition.get("title", "")}
        for v in versions
    ]


def schedule(session: Session, rnd: Round, opens_on: date, closes_on: date, *,
             by: StaffUser | None = None, actor: str = "staff") -> None:
    """Move a round's collection window (e.g. an extension); reopens a round closed early."""
    if opens_on > closes_on:
        raise RoundError("Ngày mở phải trước hoặc bằng ngày đóng.")
    audit.record(session, "round.schedule", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 old={"opens_on": rnd.opens_on.isoformat(), "closes_on": rnd.closes_on.isoformat(),
                      "closed": rnd.closed_at is not None},
                 new={"opens_on": opens_on.isoformat(), "closes_on": closes_on.isoformat(), "closed": False})
    rnd.opens_on, rnd.closes_on, rnd.closed_at = opens_on, closes_on, None


def close(session: Session, rnd: Round, *, secret: str, owner_key: OwnerKey | None = None,
          by: StaffUser | None = None, actor: str = "staff") -> ballots.Release:
    """Close collection now, before ``closes_on``: no code can be opened or submitted afterwards, and every
    sealed ballot is released into the responses (an owner-sealed round's only with ``owner_key``; without
    it they wait, counted, for a release with the key).

    :raises RoundError: when a ballot cannot be opened; then nothing changes.
    """
    # (a lock submissions wait for: see portal.submit; the row's own update would not make them wait)
    session.execute(sa.select(Round).where(Round.id == rnd.id).with_for_update()
                    .execution_options(populate_existing=True))
    if rnd.closed_at is None:
        rnd.closed_at = utcnow()
        audit.record(session, "round.close", user=by, actor=actor, object_type="round", object_id=rnd.code,
                     new={"closed_at": rnd.closed_at.isoformat()})
    session.flush()  # (SQLite: become the one writer, so the box is read after any submission in flight)
    released = ballots.release(session, rnd, ballots.opener(rnd, secret, owner_key), today=local_today(),
                               everything=True)
    if released.unreadable:
        raise RoundError(unreadable_message(released.unreadable))
    return released


def seal_to_owner(session: Session, rnd: Round, public_key: str, *, by: StaffUser | None = None,
                  actor: str = "staff") -> None:
    """Seal the round's ballots from now on to its owner's X25519 public key (base64).

    :raises RoundError: when the key is not such a key, or ballots sealed otherwise wait in the box (one
        box holds ballots of one seal, so that one key opens them all).
    """
    try:
        OwnerBox(public_key, rnd.code)
    except (ValueError, TypeError):
        raise RoundError("Khóa công khai không hợp lệ: cần khóa X25519 dạng base64 (44 ký tự).") from None
    if session.scalar(ballots.waiting(rnd.id, sa.func.count())):
        raise RoundError(f"Đợt {rnd.code} còn phiếu trực tuyến đang niêm phong bằng khóa hiện tại: đưa chúng vào "
                         "dữ liệu (round release) trước khi đổi khóa.")
    audit.record(session, "round.seal_key", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 old={"ballot_public_key": rnd.ballot_public_key}, new={"ballot_public_key": public_key})
    rnd.ballot_public_key = public_key


def unreadable_message(count: int) -> str:
    return (f"{count} phiếu trực tuyến đã gửi không mở được bằng SECRET_KEY hiện tại (được niêm phong khi máy chủ "
            "dùng khóa khác). Các phiếu này vẫn được giữ nguyên; hãy đặt lại khóa cũ rồi chạy "
            "\"survey-service round release\".")


#: Codes of the demonstration rounds made from a real round's directory: the round itself and an earlier
#: one of the same structure, so that a change of known size can be shown.
DEMO_SUFFIX = "-DEMO"
PREVIOUS_SUFFIX = "-DEMO-TRUOC"


def demo_code(round_code: str) -> str:
    return round_code + DEMO_SUFFIX


def previous_demo_code(round_code: str) -> str:
    return round_code + PREVIOUS_SUFFIX


def source_code(code: str) -> str:
    """The real round a simulated round was made from (its code without the demonstration suffix)."""
    for suffix in (PREVIOUS_SUFFIX, DEMO_SUFFIX):
        if code.endswith(suffix):
            return code.removesuffix(suffix)
    return code
