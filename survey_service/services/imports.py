"""Import responses collected elsewhere (earlier years, another tool) from a CSV file.

Format: UTF-8 (with or without BOM), comma-separated, a header row, then one row per response:

``form``          form code (``LĐ-CP``; the file-name spelling ``LD-CP`` is accepted)
``agency``        code of the agency rated (HĐ-CT: the agency of this matrix row)
``division``      supervising forms (LĐ-CP) only: the respondent's division code; the agency must be one
                  it reports to
``district``      supervising forms only: the agency of the respondent's quota cell (LĐ-CP: their district)
``respondent``    optional label grouping rows of one respondent: LĐ-CP rows of one division head share
                  one respondent key; HĐ-CT rows with the same label are the rows of one matrix sheet
                  (required for HĐ-CT). The label itself is not stored.
``submitted_on``  optional date, exactly YYYY-MM-DD (no ``20261201``, no spaces around it), within the
                  round's collection window and not after the import date; checked, not stored (below)
item columns      named by item code (``I01``, ``E18`` ...): an option code of the item's scale
                  ("1".."5", "K") or the text of a free-text item; blank when not answered. A blank is item
                  nonresponse, kept as missing (no answer stored), never read as "K" (don't know): the
                  round's validity rule decides whether the response counts. A row must answer at least one
                  rated item. A free-text item of HĐ-CT belongs to the sheet: give it on one row of the sheet.

No cell may hold a character the database cannot store (NUL; :mod:`survey_service.services.storable`).

Every bad row is reported with its line number and reason and nothing is stored while any row is bad.
Imported responses take their channel from the form; paper ones above their cell's target are marked
surplus like keyed sheets.

An import is collection like any other: a few rows of one cell in a file sent during the round are as
telling as a few online submissions, to whoever knows when those people answered and holds consecutive
backups. So each respondent's rows become one sealed ballot (:mod:`survey_service.services.ballots`), cast
in random order, and reach the responses only by the ballot box's rule, in batches of at least k per cell,
dated by their release, never by a day the file gives; the file's row order, labels and keys leave nothing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import random
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service import dates
from survey_service import questionnaires as qn
from survey_service.models import (
    Agency, Channel, Division, ImportedSubmission, QuotaCell, Response, Round, RoundForm, Sheet, StaffUser,
)
from survey_service.questionnaires import xlsform
from survey_service.services import audit, ballots, odk_imports, quotas, rounds, sheets, storable, tabular
from survey_service.services.errors import ServiceError

FIXED_COLUMNS = ("form", "agency", "division", "district", "respondent", "submitted_on")
MAX_ERRORS_SHOWN = 200


@dataclass
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"dòng {self.line}: {self.message}"


class ImportRejected(ServiceError):
    """The file has bad rows; nothing was imported."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__(f"{len(errors)} lỗi; không nhập dòng nào.")


@dataclass
class ImportReport:
    #: responses the imported respondents become (one per agency rated; one per matrix sheet)
    responses: int = 0
    by_form: dict[str, int] = field(default_factory=dict)
    surplus: int = 0
    #: submissions of an export imported before, skipped
    already: int = 0
    #: respondents of the round released into the responses by this import (its own or others' waiting)
    released: int = 0
    #: respondents of the round still sealed, waiting for more of their cell or the close
    waiting: int = 0
    #: the round's minimum group size: the least number of a cell's respondents a release lets out
    k: int = 0

    def note(self) -> str:
        """What happened to the imported answers, for the command's output and the import page."""
        return (f"Phiếu nhập được niêm phong trong hòm phiếu như phiếu trực tuyến và chỉ vào dữ liệu theo từng đợt "
                f"ít nhất {self.k} người mỗi ô: {self.released} người đã vào dữ liệu, {self.waiting} người đang "
                "chờ thêm phiếu của ô hoặc đến khi đóng đợt.")


@dataclass
class _Row:
    line: int
    form_code: str
    agency: Agency
    cell: QuotaCell
    division: Division | None
    respondent: str
    answers: dict[str, str]
    #: a citizens' round's scanned sheet: who handed it out, sealed with the ballot for phúc tra
    investigator: str | None = None


def import_responses(session: Session, rnd: Round, data: bytes, *, today: date, secret: str,
                     by: StaffUser | None = None, actor: str = "cli", keys: list[str] = ()) -> ImportReport:
    """Check every row of the CSV ``data``, then cast all its respondents' ballots or none, and release what
    is due (flushes, no commit). ``secret``: the server's, which seals the ballots (or the round owner's
    public key does) and keys the marks of imported submissions.

    An export of ODK Central or KoboToolbox (:mod:`survey_service.services.odk_imports`) is read as such;
    ``keys`` (the sheet signing keys) check the paper sheets its submissions scanned.

    :raises ImportRejected: with every bad row's line and reason.
    """
    if odk_imports.looks_like_export(data):
        return _import_export(session, rnd, data, today=today, secret=secret, by=by, actor=actor, keys=list(keys))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected([RowError(1, f"tệp không phải UTF-8 (byte {exc.start}).")]) from None
    text = unicodedata.normalize("NFC", text)
    try:
        rounds.check_collecting(rnd, today)
    except rounds.RoundError as exc:
        raise ImportRejected([RowError(1, str(exc))]) from None
    ctx = _Context(session, rnd)
    errors: list[RowError] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    records = tabular.records(reader)
    try:
        header = [h.strip() for h in next(records)]
    except StopIteration:
        raise ImportRejected([RowError(1, "tệp rỗng.")]) from None
    except tabular.UnreadableCsv as exc:
        raise ImportRejected([RowError(exc.line, f"{exc}.")]) from None
    errors += ctx.check_header(header)
    if errors:
        raise ImportRejected(errors)

    rows: list[_Row] = []
    line = reader.line_num + 1
    try:
        for record in records:
            if any(cell.strip() for cell in record):
                if len(record) != len(header):
                    errors.append(RowError(line, f"có {len(record)} cột, tiêu đề có {len(header)} cột."))
                else:
                    # every cell trimmed but the date, which is read as written
                    values = {name: cell if name == "submitted_on" else cell.strip()
                              for name, cell in zip(header, record)}
                    row, problems = ctx.parse_row(line, values, today)
                    errors += [RowError(line, p) for p in problems]
                    if row is not None:
                        rows.append(row)
            line = reader.line_num + 1
    except tabular.UnreadableCsv as exc:
        errors.append(RowError(exc.line, f"{exc}; tệp dừng đọc ở dòng này."))
    if not rows and not errors:
        errors.append(RowError(2, "tệp không có dòng dữ liệu nào."))
    return _store_all(session, rnd, ctx, rows, errors, data, by, actor, today=today, secret=secret)


def _store_all(session: Session, rnd: Round, ctx: _Context, rows: list[_Row], errors: list[RowError], data: bytes,
               by: StaffUser | None, actor: str, *, today: date, secret: str, marks: list[str] = (),
               already: int = 0, scanned: list[Sheet] = ()) -> ImportReport:
    """Store every row, or raise with every error; ``marks``: the imported submissions to remember;
    ``scanned``: the paper sheets they were answered on."""
    errors += ctx.check_across_rows(rows)
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: e.line))
    report = ctx.cast(rows, ballots.box(secret, rnd.code, rnd.ballot_public_key))
    sheets.record_imported(session, scanned, by=by, actor=actor)
    released = ballots.release(session, rnd, ballots.opener(rnd, secret), today=today)
    report.already, report.released, report.waiting = already, released.ballots, released.waiting
    report.k = ballots.min_group(rnd.settings)
    if marks:  # in the digests' order, not the file's: nothing lines them up with the responses
        session.execute(sa.insert(ImportedSubmission), [{"round_id": rnd.id, "mark": m} for m in sorted(marks)])
    audit.record(session, "responses.import", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"sha256": hashlib.sha256(data).hexdigest(), "responses": report.responses,
                      "by_form": report.by_form, "surplus": report.surplus, "already_imported": already})
    return report


def _import_export(session: Session, rnd: Round, data: bytes, *, today: date, secret: str, by: StaffUser | None,
                   actor: str, keys: list[str]) -> ImportReport:
    """Check and store the submissions of a Central or Kobo export, skipping those imported before."""
    try:
        rounds.check_collecting(rnd, today)
    except rounds.RoundError as exc:
        raise ImportRejected([RowError(1, str(exc))]) from None
    try:
        export = odk_imports.read_export(data)
    except odk_imports.ExportUnreadable as exc:
        raise ImportRejected([RowError(exc.line, str(exc))]) from None
    ctx = _Context(session, rnd)
    known = set(ctx.items) | set(xlsform.IDENTITY_FIELDS) | set(xlsform.WHO_FIELDS) | {xlsform.INTRO, xlsform.SHEET}
    unknown = [c for c in export.columns if odk_imports.leaf(c) not in known]
    if unknown:
        raise ImportRejected([RowError(1, f"cột không phải trường của biểu mẫu đợt {rnd.code}: "
                                          + ", ".join(repr(u) for u in unknown[:20]))])
    done = set(session.scalars(sa.select(ImportedSubmission.mark).where(ImportedSubmission.round_id == rnd.id)))
    errors: list[RowError] = []
    rows: list[_Row] = []
    marks: list[str] = []
    seen: dict[str, int] = {}
    scanned: dict[int, tuple[Sheet, int]] = {}
    already = 0
    for sub in export.submissions:
        if not sub.key:
            errors.append(RowError(sub.line, "thiếu mã bản ghi (KEY / _uuid)."))
            continue
        if sub.key in seen:
            errors.append(RowError(sub.line, f"bản ghi {sub.key[:60]} đã có ở dòng {seen[sub.key]}."))
            continue
        seen[sub.key] = sub.line
        submission_mark = odk_imports.mark(secret, rnd.code, export.platform, sub.key)
        if submission_mark in done:
            already += 1
            continue
        problem = ctx.check_version(sub.fields.get("form_code", ""), sub.fields.get("q_version", ""))
        if problem:
            errors.append(RowError(sub.line, problem))
            continue
        q = ctx.forms[ctx.aliases.get(sub.fields["form_code"], sub.fields["form_code"])]
        if q.rates in ("supervising", "matrix") and not sub.repeats:
            errors.append(RowError(sub.line, f"mẫu {q.code} không có lần đánh giá nào: tệp CSV của Kobo không "
                                             "chứa nhóm lặp (hãy xuất XLSX); với ODK Central hãy nhập cả tệp .zip."))
            continue
        fields, sheet = sub.fields, None
        if fields.get(xlsform.SHEET):
            sheet, problem = _scanned_sheet(session, rnd, q, fields, keys, scanned)
            if problem:
                errors.append(RowError(sub.line, problem))
                continue
            scanned[sheet.id] = (sheet, sub.line)
            if q.rates != "matrix":
                sub.fields = {**fields, "agency": sheet.quota_cell.agency.code}
        marks.append(submission_mark)
        for values in odk_imports.rows_of(sub, q.rates, {i.code for i in q.text_items}):
            row, problems = ctx.parse_row(sub.line, {"agency": "", **values}, today)
            errors += [RowError(sub.line, p) for p in problems]
            if row is not None:
                row.investigator = sheet.investigator if sheet else None
                rows.append(row)
    if not export.submissions:
        errors.append(RowError(2, "tệp không có bản ghi nào."))
    return _store_all(session, rnd, ctx, rows, errors, data, by, actor, today=today, secret=secret, marks=marks,
                      already=already, scanned=[sheet for sheet, _ in scanned.values()])


def _scanned_sheet(session: Session, rnd: Round, q: qn.Questionnaire, fields: dict[str, str], keys: list[str],
                   scanned: dict[int, tuple[Sheet, int]]) -> tuple[Sheet | None, str | None]:
    """The paper sheet a submission scanned (its ``sheet`` field), which decides its quota cell, or why it
    cannot: unknown, forged, spent, void, of another form, scanned by another submission of the file, or
    naming another agency than the one its submission chose."""
    text = fields[xlsform.SHEET]
    try:
        sheet = sheets.sheet_for_import(session, rnd, text, keys)
    except sheets.SheetError as exc:
        return None, f"mã phiếu giấy {text[:60]!r} (trường {xlsform.SHEET}): {exc}"
    cell = sheet.quota_cell
    if cell.form_code != q.code:
        return None, f"phiếu số {sheet.serial} là phiếu mẫu {cell.form_code}, không phải mẫu {q.code}."
    if sheet.id in scanned:
        return None, f"phiếu số {sheet.serial} đã được quét ở dòng {scanned[sheet.id][1]}."
    chosen = fields.get("agency", "")
    if q.rates != "matrix" and chosen and chosen != cell.agency.code:
        return None, (f"phiếu số {sheet.serial} thuộc chỉ tiêu của {cell.agency.code}, nhưng bản ghi chọn cơ quan "
                      f"{chosen[:20]}.")
    return sheet, None


class _Context:
    """The round's forms, agencies, divisions and quota cells, read once."""

    def __init__(self, session: Session, rnd: Round):
        self.session, self.round = session, rnd
        forms = session.scalars(sa.select(RoundForm).where(RoundForm.round_id == rnd.id)).all()
        self.versions = {f.form_code: f.questionnaire_version_id for f in forms}
        self.forms = {f.form_code: qn.Questionnaire.from_definition(f.questionnaire_version.definition)
                      for f in forms}
        self.aliases = {qn.file_name_for(code): code for code in self.forms}
        self.agencies = {a.code: a for a in session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id))}
        self.divisions = {d.code: d for d in session.scalars(sa.select(Division).where(Division.round_id == rnd.id))}
        self.cells = {(c.form_code, c.agency_id): c
                      for c in session.scalars(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id))}
        self.items = {code for q in self.forms.values() for code in q.item_codes}
        self.supervising = (", ".join(code for code, q in self.forms.items() if q.rates == "supervising")
                            or "đợt này không có")

    def check_version(self, form_code: str, version: str) -> str | None:
        """Why a submission's hidden form code and version are not a form version the round uses, if so."""
        form = self.aliases.get(form_code, form_code)
        if form not in self.forms:
            return (f"mẫu phiếu '{form_code[:20]}' (trường form_code) không thuộc đợt {self.round.code} "
                    f"(có: {', '.join(self.forms)}).")
        if version != self.forms[form].version:
            return (f"phiên bản '{version[:20]}' (trường q_version) không phải phiên bản mẫu {form} đợt "
                    f"{self.round.code} đang dùng ({self.forms[form].version}): hãy dùng biểu mẫu xuất từ đợt này.")
        return None

    def check_header(self, header: list[str]) -> list[RowError]:
        errors = []
        for name, count in Counter(header).items():
            if count > 1:
                errors.append(RowError(1, f"cột '{name}' xuất hiện {count} lần."))
        unknown = [h for h in header if h not in FIXED_COLUMNS and h not in self.items]
        if unknown:
            errors.append(RowError(1, f"cột không phải mã câu hỏi của đợt {self.round.code}: "
                                          + ", ".join(repr(u) for u in unknown)))
        for needed in ("form", "agency"):
            if needed not in header:
                errors.append(RowError(1, f"thiếu cột '{needed}'."))
        return errors

    def parse_row(self, line: int, values: dict[str, str], today: date) -> tuple[_Row | None, list[str]]:
        unstorable = [f"cột '{column}' {problem}, không lưu được; hãy xóa ký tự này rồi nhập lại."
                      for column, value in values.items() if (problem := storable.unstorable(value))]
        if unstorable:  # checked first: the other messages quote values
            return None, unstorable
        problems: list[str] = []
        form = self.aliases.get(values["form"], values["form"])
        q = self.forms.get(form)
        if q is None:
            return None, [f"mẫu phiếu '{values['form']}' không thuộc đợt {self.round.code} "
                          f"(có: {', '.join(self.forms)})."]
        agency = self.agencies.get(values["agency"])
        if agency is None:
            return None, [f"cơ quan '{values['agency']}' không có trong đợt {self.round.code}."]
        if agency.kind not in q.rated_kinds:
            problems.append(f"mẫu {form} không đánh giá loại cơ quan của {agency.code}.")
        division = None
        cell = None
        if q.rates == "supervising":
            mapping = self.round.supervision(form)
            division = self.divisions.get(values.get("division", ""))
            district = self.agencies.get(values.get("district", ""))
            if division is None or division.form_code != form:
                division = None
                problems.append(f"mẫu {form} cần cột 'division' là mã {mapping['unit']} của đợt.")
            elif agency not in division.supervised_by:
                problems.append(f"{division.code} ({division.name}) không chịu sự hướng dẫn của {agency.code}.")
            if district is None or district.kind != mapping["cells_per"]:
                district = None
                label = self.round.kind_labels[mapping["cells_per"]]
                problems.append(f"mẫu {form} cần cột 'district' là mã cơ quan ({label}) của người trả lời.")
            else:
                cell = self.cells.get((form, district.id))
                if cell is None:
                    problems.append(f"không có chỉ tiêu {form} cho {district.code}.")
        else:
            for col in ("division", "district"):
                if values.get(col):
                    problems.append(f"cột '{col}' chỉ dùng cho mẫu phiếu đánh giá các cơ quan quản lý đơn vị "
                                    f"của người trả lời ({self.supervising}).")
            cell = self.cells.get((form, None if q.rates == "matrix" else agency.id))
            if cell is None:
                problems.append(f"không có chỉ tiêu {form} cho {agency.code}.")
        respondent = values.get("respondent", "")
        if q.rates == "matrix" and not respondent:
            problems.append(f"mẫu {form} cần cột 'respondent' để gom các dòng của cùng một phiếu.")
        written = values.get("submitted_on", "")
        if written.strip():
            try:
                submitted_on = dates.parse_iso_date(written)
            except dates.DateError as exc:
                problems.append(f"ngày {written[:20]!r} {exc}.")
            else:
                last = min(self.round.closes_on, today)
                if not self.round.opens_on <= submitted_on <= last:
                    problems.append(f"ngày {submitted_on:%d/%m/%Y} nằm ngoài thời gian nhận phiếu của đợt "
                                    f"({self.round.opens_on:%d/%m/%Y} – {last:%d/%m/%Y}).")
        answers, answer_problems = self._answers(q, values)
        problems += answer_problems
        if problems:
            return None, problems
        return _Row(line, form, agency, cell, division, respondent, answers), []

    def _answers(self, q: qn.Questionnaire, values: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        answers, problems = {}, []
        own = set(q.item_codes)
        for code in self.items:
            value = values.get(code, "")
            if code not in own:
                if value:
                    problems.append(f"câu {code} không có trong mẫu {q.code}.")
                continue
            item = q.item(code)
            if item.kind == "scale":
                scale = q.scales[item.scale]
                if value and value.upper() in scale.codes:
                    value = value.upper()
                if not value:  # item nonresponse: stored as no answer, never as "K"
                    continue
                if value not in scale.codes:
                    problems.append(f"câu {code}: '{value}' không phải phương án của thang {scale.code} "
                                    f"({', '.join(scale.codes)}).")
                    continue
            elif not value:
                continue
            elif item.max_length and len(value) > item.max_length:
                problems.append(f"câu {code}: dài {len(value)} ký tự, tối đa {item.max_length}.")
                continue
            answers[code] = value
        if not problems and q.scale_items and not any(i.code in answers for i in q.scale_items):
            problems.append(f"không có câu trả lời nào cho các câu hỏi của mẫu {q.code}.")
        return answers, problems

    def check_across_rows(self, rows: list[_Row]) -> list[RowError]:
        """One answer per respondent × agency; one sheet-level text per matrix sheet."""
        errors = []
        seen: dict[tuple, int] = {}
        texts: dict[tuple, dict[str, str]] = defaultdict(dict)
        for row in rows:
            if row.respondent:
                key = (row.form_code, row.respondent, row.agency.code)
                if key in seen:
                    errors.append(RowError(row.line, f"người trả lời '{row.respondent}' đã đánh giá "
                                                         f"{row.agency.code} ở dòng {seen[key]}."))
                else:
                    seen[key] = row.line
            q = self.forms[row.form_code]
            if q.rates == "matrix":
                for item in q.text_items:
                    value = row.answers.get(item.code)
                    sheet = texts[(row.form_code, row.respondent)]
                    if value and sheet.setdefault(item.code, value) != value:
                        errors.append(RowError(row.line, f"câu {item.code} của phiếu '{row.respondent}' "
                                                             "đã có nội dung khác ở dòng trước."))
        return errors

    def cast(self, rows: list[_Row], box) -> ImportReport:
        """Cast each respondent's rows as one ballot of their cell, the respondents in random order; a paper
        respondent above the cell's target (waiting ballots counted) is marked surplus."""
        report = ImportReport()
        in_cell = dict(self.session.execute(
            sa.select(Response.quota_cell_id, sa.func.count(sa.distinct(Response.respondent_key)))
            .where(Response.round_id == self.round.id, Response.surplus.is_(False))
            .group_by(Response.quota_cell_id)).all())
        for cell_id, count in ballots.waiting_by_cell(self.session, self.round.id).items():
            in_cell[cell_id] = in_cell.get(cell_id, 0) + count
        respondents: dict[tuple, list[_Row]] = {}
        for row in rows:
            respondents.setdefault((row.form_code, row.cell.id, row.division and row.division.id,
                                    row.respondent or f"line {row.line}"), []).append(row)
        group_rows = list(respondents.values())
        random.SystemRandom().shuffle(group_rows)
        for group in group_rows:
            first = group[0]
            q = self.forms[first.form_code]
            count = in_cell.get(first.cell.id, 0)
            surplus = quotas.is_surplus(first.cell, count)
            in_cell[first.cell.id] = count + (not surplus)
            answers = _sheet_answers(q, group) if q.rates == "matrix" else [(r.agency.id, r.answers) for r in group]
            ballots.cast(self.session, box, cell_id=first.cell.id, questionnaire=q,
                         version_id=self.versions[first.form_code], division_id=first.division and first.division.id,
                         answers=answers, channel=Channel(q.channel), investigator=first.investigator,
                         surplus=surplus)
            responses = 1 if q.rates == "matrix" else len(group)
            report.responses += responses
            report.by_form[first.form_code] = report.by_form.get(first.form_code, 0) + responses
            report.surplus += responses if surplus else 0
        self.session.flush()
        return report


def _sheet_answers(q: qn.Questionnaire, rows: list[_Row]) -> list[tuple[int | None, dict[str, str]]]:
    """A matrix sheet's answers by agency, its free texts (given on one of its rows) under None."""
    texts = {i.code for i in q.text_items}
    by_agency: dict[int | None, dict[str, str]] = {}
    for row in rows:
        for code, value in row.answers.items():
            by_agency.setdefault(None if code in texts else row.agency.id, {}).setdefault(code, value)
    return list(by_agency.items())


def template_csv(session: Session, rnd: Round, form_code: str) -> str:
    """An empty import file for one form of the round: the header row its rows need.

    :raises ImportRejected: when the round has no such form.
    """
    rf = next((f for f in rnd.forms if f.form_code == form_code), None)
    if rf is None:
        raise ImportRejected([RowError(1, f"đợt {rnd.code} không có phiếu {form_code[:16]}.")])
    q = qn.Questionnaire.from_definition(rf.questionnaire_version.definition)
    fixed = ["form", "agency", *(["division", "district"] if q.rates == "supervising" else []), "respondent",
             "submitted_on"]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fixed + list(q.item_codes))
    return out.getvalue()

