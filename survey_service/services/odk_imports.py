"""Submissions of our XLSForms (``questionnaires xlsform``) exported by ODK Central or KoboToolbox, read into
the rows :mod:`survey_service.services.imports` checks and stores.

Accepted: Central's CSV export (the ``.csv.zip`` with one CSV per repeat, or the root CSV of a form without
repeats) and Kobo's "XML values and headers" export as XLSX (one sheet per repeat) or ``;``-separated CSV
(no repeats: Kobo's CSV leaves them out). Columns are matched by their last name (``A1-I01``, ``A1/I01``,
``rating/A1/I01`` all end in the item ``I01``); system columns are dropped, and with them the submitter, the
device and every time of day: responses are dated by their release, as online responses are.
The form and version come from the hidden ``form_code`` and ``q_version`` fields, which Kobo and Central
cannot rewrite; the quota cell from the paper sheet scanned into ``sheet`` (checked by
:func:`survey_service.services.sheets.sheet_for_import`), else from the chosen ``agency`` or ``district``.

Each submission is known by its external key (Central's ``KEY``, Kobo's ``rootUuid`` or ``_uuid``): one
imported before is skipped, so importing an export again adds nothing. What is kept of a key is a keyed
digest (:func:`mark`), and the answers go through the ballot box like every import's.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field

from survey_service.services.sealing import keyed_hash

#: Central's system columns (central-backend's CSV header) and the names of XLSForm's own metadata; Kobo's
#: all start with an underscore.
CENTRAL_SYSTEM = {"SubmissionDate", "KEY", "PARENT_KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent",
                  "AttachmentsExpected", "Status", "ReviewState", "DeviceID", "Edits", "FormVersion",
                  "instanceID", "instanceName", "rootUuid", "deprecatedID", "uuid"}
METADATA = {"start", "end", "today", "deviceid", "username", "audit", "phonenumber", "email", "subscriberid",
            "simserial"}
GENERATED = re.compile(r"^(generated_table_list_label|reserved_name_for_field_list_labels)_\d+$")
LABELS_HINT = ("tệp được xuất theo nhãn (Labels): hãy xuất lại với tuỳ chọn \"XML values and headers\" "
               "(giá trị và tiêu đề XML) để có mã câu hỏi và mã phương án.")


class ExportUnreadable(ValueError):
    """The file is not an export this module reads; ``line`` says where."""

    def __init__(self, message: str, line: int = 1):
        self.line = line
        super().__init__(message)


@dataclass
class Submission:
    """One submission: its line in the root table, its external key, its fields by name and its repeats."""

    line: int
    key: str
    fields: dict[str, str]
    repeats: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Export:
    platform: str  # "central" or "kobo"
    submissions: list[Submission]
    #: the columns of the root and repeat tables that are fields (system columns dropped), for the header check
    columns: list[str]


def looks_like_export(data: bytes) -> bool:
    """A zip (Central's ``.csv.zip``, an XLSX) or a CSV whose header has Central's or Kobo's key column."""
    if data[:4] == b"PK\x03\x04":
        return True
    head = data[:4096].decode("utf-8-sig", errors="replace").split("\n", 1)[0]
    names = {n.strip().strip('"') for n in re.split(r"[;,]", head)}
    return bool(names & {"KEY", "meta-instanceID", "_uuid", "_id", "_submission_time"})


def mark(secret: str, round_code: str, platform: str, key: str) -> str:
    """The digest a submission is remembered by: keyed (HMAC-SHA256 under the server's secret and the round,
    128 bits), because the platform's export, which names each key's submitter, device and times, may be in
    other hands; an unkeyed digest would let them say which of their submissions an import brought and when."""
    return keyed_hash(secret, "imported-submission", round_code, f"{platform}:{key}").hex()[:32]


def leaf(column: str) -> str:
    """The field name a column ends with: groups are joined with ``-`` (Central) or ``/`` (Kobo)."""
    return re.split(r"[/-]", column)[-1]


def read_export(data: bytes) -> Export:
    """The submissions of an export file.

    :raises ExportUnreadable: for a file of neither tool, a labels-format export, or repeats without parent.
    """
    if data[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise ExportUnreadable("tệp zip hỏng.") from None
        names = archive.namelist()
        if "[Content_Types].xml" in names:
            return _kobo_xlsx(data)
        return _central_zip(archive)
    text = unicodedata.normalize("NFC", _text(data))
    first = text.split("\n", 1)[0]
    if first.count(";") > first.count(","):
        table = _table(text, ";")
        if _is_labels(table[0]):
            raise ExportUnreadable(LABELS_HINT)
        return _kobo(table, [])
    table = _table(text, ",")
    return _central(table, {})


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportUnreadable(f"tệp không phải UTF-8 (byte {exc.start}).") from None


def _table(text: str, sep: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    if not rows or not any(rows[0]):
        raise ExportUnreadable("tệp rỗng.")
    return rows


def _is_labels(header: list[str]) -> bool:
    """A labels-format header has question texts, with spaces or accents, where our field names have none
    (the hidden fields, having no label, keep their names there)."""
    return any(" " in h.strip() or not h.isascii() for h in header)


def _records(table: list[list[str]], sheet: str = "") -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    header = [h.strip() for h in table[0]]
    out = []
    for n, row in enumerate(table[1:], start=2):
        if not any(str(c).strip() for c in row):
            continue
        if len(row) != len(header):
            where = f"trang {sheet}: " if sheet else ""
            raise ExportUnreadable(f"{where}có {len(row)} cột, tiêu đề có {len(header)} cột.", n)
        out.append((n, {h: str(c).strip() for h, c in zip(header, row)}))
    return header, out


def _fields(record: dict[str, str], select_multiple: set[str]) -> dict[str, str]:
    """The form's fields of one record: system columns, generated fields and Kobo's one column per option of
    a select_multiple (``rated/SNV``) dropped; a field name seen in two columns keeps the first."""
    fields: dict[str, str] = {}
    for column, value in record.items():
        name = leaf(column)
        parts = re.split(r"[/-]", column)
        if (column in CENTRAL_SYSTEM or name in CENTRAL_SYSTEM or name.startswith("_") or column.startswith("_")
                or column.startswith("SET-OF-")
                or name in METADATA or GENERATED.match(name) or parts[0] == "meta"
                or (len(parts) > 1 and parts[-2] in select_multiple)):
            continue
        fields.setdefault(name, value)
    return fields


def _central_zip(archive: zipfile.ZipFile) -> Export:
    csvs = sorted(n for n in archive.namelist() if n.endswith(".csv"))
    if not csvs:
        raise ExportUnreadable("tệp zip không có tệp CSV nào (cần bản xuất CSV của ODK Central).")
    root = min(csvs, key=len)  # <formId>.csv; each repeat is <formId>-<repeat>.csv
    tables = {}
    for name in csvs:
        tables[name] = _table(unicodedata.normalize("NFC", _text(archive.read(name))), ",")
    return _central(tables[root], {n: t for n, t in tables.items() if n != root})


def _central(table: list[list[str]], repeats: dict[str, list[list[str]]]) -> Export:
    header, records = _records(table)
    if _is_labels(header):
        raise ExportUnreadable(LABELS_HINT)
    if "KEY" not in header:
        raise ExportUnreadable("thiếu cột KEY (cần bản xuất CSV của ODK Central).")
    submissions = {r["KEY"]: Submission(n, r["KEY"], _fields(r, {"rated"})) for n, r in records}
    columns = [c for c in header
               if c not in CENTRAL_SYSTEM and not c.startswith("SET-OF-") and c.split("-")[0] != "meta"]
    for name, rows in repeats.items():
        rep_header, rep_records = _records(rows, name)
        columns += [c for c in rep_header if c not in CENTRAL_SYSTEM]
        if "PARENT_KEY" not in rep_header:
            raise ExportUnreadable(f"{name}: thiếu cột PARENT_KEY.")
        for n, r in rep_records:
            parent = submissions.get(r["PARENT_KEY"])
            if parent is None:
                raise ExportUnreadable(f"{name} dòng {n}: PARENT_KEY {r['PARENT_KEY'][:60]!r} không có trong tệp "
                                       "chính.", n)
            parent.repeats.append(_fields(r, {"rated"}))
    return Export("central", list(submissions.values()), columns)


def _kobo_xlsx(data: bytes) -> Export:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    tables = [[["" if v is None else str(v) for v in row] for row in ws.iter_rows(values_only=True)]
              for ws in book.worksheets]
    names = [ws.title for ws in book.worksheets]
    book.close()
    tables = [t for t in tables if t and any(t[0])]
    if not tables:
        raise ExportUnreadable("tệp rỗng.")
    if _is_labels(tables[0][0]):
        raise ExportUnreadable(LABELS_HINT)
    return _kobo(tables[0], list(zip(names[1:], tables[1:])))


def _kobo(root: list[list[str]], repeats: list[tuple[str, list[list[str]]]]) -> Export:
    header, records = _records(root)
    if "_uuid" not in header:
        raise ExportUnreadable("thiếu cột _uuid (cần bản xuất của KoboToolbox).")
    by_index: dict[str, Submission] = {}
    submissions = []
    for n, r in records:
        key = r.get("rootUuid") or r.get("meta/rootUuid") or r["_uuid"]
        s = Submission(n, key.removeprefix("uuid:"), _fields(r, {"rated"}))
        submissions.append(s)
        by_index[r.get("_index", str(n - 1))] = s
    columns = [c for c in header if not leaf(c).startswith("_") and not c.startswith(("meta/", "rated/"))]
    for name, table in repeats:
        rep_header, rep_records = _records(table, name)
        columns += [c for c in rep_header if not leaf(c).startswith("_")]
        if "_parent_index" not in rep_header:
            raise ExportUnreadable(f"trang {name}: thiếu cột _parent_index.")
        for n, r in rep_records:
            parent = by_index.get(r["_parent_index"])
            if parent is None:
                raise ExportUnreadable(f"trang {name} dòng {n}: _parent_index {r['_parent_index']!r} không có ở "
                                       "trang chính.", n)
            parent.repeats.append(_fields(r, {"rated"}))
    return Export("kobo", submissions, columns)


def rows_of(submission: Submission, rates: str, text_items: set[str]) -> list[dict[str, str]]:
    """The import rows (:mod:`survey_service.services.imports`' columns) of one submission: one for a form
    rating one agency, one per repeat otherwise, the submission's key grouping them (never stored)."""
    f = submission.fields
    base = {"form": f.get("form_code", ""), "respondent": submission.key}
    if rates in ("own", "assigned"):
        return [{**base, **f}]
    rows = []
    for n, rep in enumerate(submission.repeats):
        row = {**base, **rep}
        if rates == "supervising":
            row.update(division=f.get("division", ""), district=f.get("district", ""))
        else:  # the sheet-level texts of a matrix form on its first row
            row.update({code: f.get(code, "") for code in text_items if n == 0})
        rows.append(row)
    return rows
