"""Export files as ODK Central and KoboToolbox write them, for submissions of our exported XLSForms.

Headers follow what each tool documents: Central's root CSV (``SubmissionDate, meta-instanceID, <fields>,
KEY, SubmitterID, SubmitterName, AttachmentsPresent, AttachmentsExpected, Status, ReviewState, DeviceID,
Edits, FormVersion``, groups joined with ``-``, one ``<formId>-<repeat>.csv`` per repeat with ``PARENT_KEY``
and ``KEY``, zipped); Kobo's "XML values and headers" with groups joined with ``/``, its system columns,
a ``;``-separated CSV with every value quoted, or an XLSX with one sheet per repeat (``_index``,
``_parent_table_name``, ``_parent_index``, ``_submission__uuid``).
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field

from survey_service.questionnaires import xlsform

CENTRAL_AFTER = ["KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent", "AttachmentsExpected", "Status",
                 "ReviewState", "DeviceID", "Edits", "FormVersion"]
KOBO_AFTER = ["__version__", "meta/instanceID", "_id", "_uuid", "_submission_time", "_validation_status", "_notes",
              "_status", "_submitted_by", "_tags", "_index"]


@dataclass
class Sub:
    """One submission: root fields by name and, per repeat, fields by name."""

    uuid: str
    fields: dict[str, str]
    repeats: list[dict[str, str]] = field(default_factory=list)


def paths(rows: list[dict]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(group path, name) of the root's fields and of the repeat's, in the survey sheet's order."""
    root, repeat, stack = [], [], []
    for r in rows:
        kind = r["type"]
        if kind in ("begin_group", "begin_repeat"):
            stack.append(r["name"])
        elif kind in ("end_group", "end_repeat"):
            stack.pop()
        else:
            target = repeat if xlsform.REPEAT in stack else root
            target.append(([s for s in stack], r["name"]))
    return root, repeat


def central_zip(form_id: str, rows: list[dict], subs: list[Sub]) -> bytes:
    root, repeat = paths(rows)
    header = ["SubmissionDate", *["-".join([*g, n]) for g, n in root], "meta-instanceID", *CENTRAL_AFTER]
    if repeat:
        header.insert(header.index("meta-instanceID"), f"SET-OF-{xlsform.REPEAT}")
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    rep_out = io.StringIO()
    rw = csv.writer(rep_out, lineterminator="\r\n")
    rw.writerow([*["-".join([*g, n]) for g, n in repeat], "PARENT_KEY", "KEY"])
    for s in subs:
        key = f"uuid:{s.uuid}"
        w.writerow(["2023-09-12T08:41:07.123Z", *[s.fields.get(n, "") for _, n in root],
                    *([f"{key}/{xlsform.REPEAT}"] if repeat else []), key, key, "17", "Điều tra viên Nguyễn Văn A",
                    "0", "0", "", "", "collect:abc123", "0", s.fields.get("q_version", "")])
        for i, rep in enumerate(s.repeats, start=1):
            rw.writerow([*[rep.get(n, "") for _, n in repeat], key, f"{key}/{xlsform.REPEAT}[{i}]"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{form_id}.csv", out.getvalue())
        if repeat:
            z.writestr(f"{form_id}-{xlsform.REPEAT}.csv", rep_out.getvalue())
    return buf.getvalue()


def _kobo_root(rows: list[dict], subs: list[Sub], agencies: list[str]) -> tuple[list[str], list[list[str]]]:
    root, _ = paths(rows)
    header = []
    for g, n in root:
        header.append("/".join([*g, n]))
        if n == "rated":  # Kobo adds a 0/1 column per option of a select_multiple
            header += [f"rated/{a}" for a in agencies]
    header += KOBO_AFTER
    body = []
    for i, s in enumerate(subs, start=1):
        values = []
        for _, n in root:
            values.append(s.fields.get(n, ""))
            if n == "rated":
                chosen = s.fields.get("rated", "").split()
                values += ["1" if a in chosen else "0" for a in agencies]
        values += ["vGx7hT2", f"uuid:{s.uuid}", str(1000 + i), s.uuid, "2023-09-12T15:41:07", "", "",
                   "submitted_via_web", "dtv_hoian", "", str(i)]
        body.append(values)
    return header, body


def kobo_csv(rows: list[dict], subs: list[Sub]) -> bytes:
    header, body = _kobo_root(rows, subs, [])
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(body)
    return out.getvalue().encode("utf-8")


def kobo_xlsx(title: str, rows: list[dict], subs: list[Sub], agencies: list[str]) -> bytes:
    from openpyxl import Workbook

    header, body = _kobo_root(rows, subs, agencies)
    book = Workbook()
    ws = book.active
    ws.title = title[:31]
    ws.append(header)
    for values in body:
        ws.append(values)
    _, repeat = paths(rows)
    if repeat:
        rs = book.create_sheet(xlsform.REPEAT)
        rs.append([*["/".join([*g, n]) for g, n in repeat], "_index", "_parent_table_name", "_parent_index",
                   "_submission__id", "_submission__uuid", "_submission__submission_time"])
        n = 0
        for i, s in enumerate(subs, start=1):
            for rep in s.repeats:
                n += 1
                rs.append([*[rep.get(name, "") for _, name in repeat], n, title[:31], i, 1000 + i, s.uuid,
                           "2023-09-12T15:41:07"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
