"""A questionnaire version as an XLSForm workbook (for ODK Collect, KoboToolbox, Enketo) and back.

The workbook follows the XLSForm spec (xlsform.org): a ``survey``, a ``choices`` and a ``settings`` sheet,
Vietnamese labels under ``label::Vietnamese (vi)``. What identifies our questionnaire travels in the data of
every submission: two hidden ``calculate`` fields, ``form_code`` (spelled with Đ) and ``q_version`` (the
16-hex version), since KoboToolbox rewrites ``form_id`` and ``version`` on deployment. The ``form_id`` is the
ASCII file stem (``LD-CP``): non-ASCII form ids break ODK Central uploads. No ``start``, ``end``, ``today``,
``deviceid``, ``username`` or ``audit`` field is written: we store no time of day and no identity.

Each section is a group named by its criterion (``A1``); items keep their codes as names and option codes as
choice names. Who is rated comes first: ``agency`` (one agency: own and assigned forms), or ``district`` and
``division`` then the supervising agencies chosen in ``rated`` with one ``rating`` repeat per agency
(supervising forms), or ``rated`` and a ``rating`` repeat per agency of a matrix form, whose free-text
sections follow the repeat (they belong to the sheet). A paper form first asks for the printed sheet's QR
(``sheet``, a ``barcode``), which names the quota cell: its ``agency`` is asked only without one.

What XLSForm has no column for (scale coefficients, channel, how the form rates, the wording before the round
filled in its province) sits in extra columns, which pyxform ignores, so :func:`definition_from_workbook`
rebuilds exactly the definition, and the version, the workbook was made from.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from survey_service.questionnaires.types import Questionnaire, QuestionnaireError, file_name_for

LANGUAGE = "Vietnamese (vi)"
LABEL = f"label::{LANGUAGE}"
REQUIRED_MESSAGE, CONSTRAINT_MESSAGE = f"required_message::{LANGUAGE}", f"constraint_message::{LANGUAGE}"
SURVEY_COLUMNS = ("type", "name", LABEL, "required", REQUIRED_MESSAGE, "appearance", "relevant",
                  "constraint", CONSTRAINT_MESSAGE, "calculation", "choice_filter", "repeat_count",
                  "criterion", "criterion_name", "source_text")
CHOICE_COLUMNS = ("list_name", "name", LABEL, "scale_title", "coefficient", "positive", "excluded", "divisions")
SETTINGS_COLUMNS = ("form_title", "form_id", "version", "default_language", "style", "form_code", "channel",
                    "rates", "rated_kinds", "respondent_group", "source_title")
#: The hidden fields and the fields saying who is rated, beside the items: the importer's fixed names.
IDENTITY_FIELDS = ("form_code", "q_version")
WHO_FIELDS = ("agency", "district", "division", "rated")
INTRO, REPEAT = "intro", "rating"
#: A paper form's ``barcode`` question: the QR of the printed sheet the interview follows (its signed serial),
#: which then decides the quota cell in place of ``agency``.
SHEET = "sheet"
SHEET_LABEL = ("Mã QR trên phiếu giấy: quét mã in ở góc phiếu nếu phỏng vấn theo một phiếu đã in "
               "(bỏ qua nếu không có phiếu).")
#: Metadata XLSForm can add that must never be in our workbooks (time of day, device, identity).
FORBIDDEN_TYPES = ("start", "end", "today", "deviceid", "username", "audit", "phonenumber", "email",
                   "subscriberid", "simserial", "start-geopoint")
SCALE_REQUIRED = "Vui lòng chọn một mức đánh giá (nếu không có thông tin, chọn “Không biết / không đánh giá”)."
TEXT_REQUIRED = "Vui lòng trả lời câu hỏi này."


@dataclass
class Choice:
    """One entry of a round's list: an agency, district or division (code and name)."""

    code: str
    label: str
    divisions: tuple[str, ...] = ()


@dataclass
class RoundLists:
    """What a round adds to a form: who can be rated and where the respondent sits."""

    agencies: list[Choice] = field(default_factory=list)
    districts: list[Choice] = field(default_factory=list)
    divisions: list[Choice] = field(default_factory=list)
    who_label: str = "Cơ quan được đánh giá"
    district_label: str = "Đơn vị của Anh/Chị"
    division_label: str = "Phòng của Anh/Chị"


def form_id(code: str) -> str:
    """The ASCII ``form_id`` of a form code: its file stem (``LĐ-CP`` -> ``LD-CP``)."""
    return file_name_for(code).removesuffix(".yaml")


def group_names(q: Questionnaire) -> list[str]:
    """The group name of every section: its criterion, or ``S<n>`` without one or when taken."""
    names: list[str] = []
    for n, section in enumerate(q.sections, start=1):
        name = section.criterion or f"S{n}"
        names.append(name if name not in names else f"S{n}")
    return names


def _row(**cells) -> dict:
    return {k.replace("__", "::"): v for k, v in cells.items() if v not in (None, "")}


def survey_rows(q: Questionnaire, raw: Questionnaire, lists: RoundLists) -> list[dict]:
    """The ``survey`` sheet of ``q`` (worded for the round); ``raw`` is the stored wording."""
    def source(worded: str, stored: str) -> str | None:
        return stored if stored != worded else None

    rows = [
        _row(type="calculate", name="form_code", calculation=f"'{q.code}'"),
        _row(type="calculate", name="q_version", calculation=f"'{q.version}'"),
        {"type": "note", "name": INTRO, LABEL: q.instructions, "source_text": source(q.instructions, raw.instructions)},
    ]
    paper = q.channel == "paper"
    if paper:
        rows.append({"type": "barcode", "name": SHEET, LABEL: SHEET_LABEL, "required": "no"})
    if q.rates in ("own", "assigned"):
        rows.append({"type": "select_one agencies", "name": "agency", LABEL: lists.who_label, "required": "yes",
                     REQUIRED_MESSAGE: "Vui lòng chọn cơ quan được đánh giá.",
                     "relevant": f"${{{SHEET}}} = ''" if paper else None})
    elif q.rates == "supervising":
        rows += [
            {"type": "select_one districts", "name": "district", LABEL: lists.district_label, "required": "yes",
             REQUIRED_MESSAGE: "Vui lòng chọn đơn vị của Anh/Chị."},
            {"type": "select_one divisions", "name": "division", LABEL: lists.division_label, "required": "yes",
             REQUIRED_MESSAGE: "Vui lòng chọn phòng của Anh/Chị."},
            {"type": "select_multiple agencies", "name": "rated", LABEL: lists.who_label, "required": "yes",
             REQUIRED_MESSAGE: "Vui lòng chọn ít nhất một cơ quan.",
             "choice_filter": "selected(divisions, ${division})"},
        ]
    else:
        rows.append({"type": "select_multiple agencies", "name": "rated", LABEL: lists.who_label, "required": "yes",
                     REQUIRED_MESSAGE: "Vui lòng chọn ít nhất một cơ quan."})
    names = group_names(q)
    repeated = q.rates in ("supervising", "matrix")
    inside = [i for i, s in enumerate(q.sections)
              if q.rates == "supervising" or any(item.kind == "scale" for item in s.items)]
    outside = [i for i in range(len(q.sections)) if i not in inside] if repeated else []
    if repeated:
        rows += [{"type": "begin_repeat", "name": REPEAT, LABEL: lists.who_label,
                  "repeat_count": "count-selected(${rated})"},
                 _row(type="calculate", name="agency", calculation="selected-at(${rated}, position(..) - 1)")]
        order = inside
    else:
        order = list(range(len(q.sections)))
    for i in order + (["end"] if repeated else []) + outside:
        if i == "end":
            rows.append({"type": "end_repeat", "name": REPEAT})
            continue
        section, raw_section = q.sections[i], raw.sections[i]
        rows.append({"type": "begin_group", "name": names[i], LABEL: section.title, "appearance": "field-list",
                     "criterion": section.criterion,
                     "criterion_name": q.criteria[section.criterion].name if section.criterion else None,
                     "source_text": source(section.title, raw_section.title)})
        for item, raw_item in zip(section.items, raw_section.items):
            row = {"name": item.code, LABEL: item.text, "required": "yes" if item.required else "no",
                   "source_text": source(item.text, raw_item.text)}
            if item.kind == "scale":
                row.update({"type": f"select_one {item.scale}", "appearance": "likert"})
                if item.required:
                    row[REQUIRED_MESSAGE] = SCALE_REQUIRED
                if item.criterion != section.criterion:
                    row.update(criterion=item.criterion, criterion_name=q.criteria[item.criterion].name)
            else:
                row.update({"type": "text", "appearance": "multiline"})
                if item.required:
                    row[REQUIRED_MESSAGE] = TEXT_REQUIRED
                if item.max_length:
                    row.update({"constraint": f"string-length(.) <= {item.max_length}",
                                CONSTRAINT_MESSAGE: f"Tối đa {item.max_length} ký tự."})
            rows.append(row)
        rows.append({"type": "end_group", "name": names[i]})
    return rows


def choice_rows(q: Questionnaire, lists: RoundLists) -> list[dict]:
    """The ``choices`` sheet: one list per scale (named by its code), then the round's lists."""
    rows = []
    for code, scale in q.scales.items():
        for o in scale.options:
            rows.append({"list_name": code, "name": o.code, LABEL: o.label, "scale_title": scale.title,
                         "coefficient": "" if o.coefficient is None else repr(o.coefficient),
                         "positive": "yes" if o.positive else "no", "excluded": "yes" if o.excluded else "no"})
    wanted = [("agencies", lists.agencies)]
    if q.rates == "supervising":
        wanted += [("districts", lists.districts), ("divisions", lists.divisions)]
    for name, entries in wanted:
        rows += [{"list_name": name, "name": c.code, LABEL: c.label,
                  "divisions": " ".join(c.divisions) or None} for c in entries]
    return rows


def settings_row(q: Questionnaire, raw: Questionnaire) -> dict:
    return {"form_title": q.title, "form_id": form_id(q.code), "version": q.version,
            "default_language": LANGUAGE, "style": "pages", "form_code": q.code, "channel": q.channel,
            "rates": q.rates, "rated_kinds": " ".join(q.rated_kinds), "respondent_group": raw.respondent_group,
            "source_title": raw.title if raw.title != q.title else None}


def write_workbook(path, q: Questionnaire, raw: Questionnaire, lists: RoundLists) -> None:
    """Write the XLSForm of ``q`` (worded for a round; ``raw`` as stored) with the round's ``lists``."""
    from openpyxl import Workbook

    book = Workbook()
    sheets = (("survey", SURVEY_COLUMNS, survey_rows(q, raw, lists)),
              ("choices", CHOICE_COLUMNS, choice_rows(q, lists)),
              ("settings", SETTINGS_COLUMNS, [settings_row(q, raw)]))
    for n, (title, columns, rows) in enumerate(sheets):
        ws = book.active if n == 0 else book.create_sheet()
        ws.title = title
        ws.append(list(columns))
        for row in rows:
            ws.append([row.get(c) for c in columns])
    book.save(path)


def read_sheets(path) -> dict[str, list[dict]]:
    """The rows of each sheet of a workbook as dicts keyed by the header (empty rows skipped)."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    sheets = {}
    for ws in book.worksheets:
        rows = ws.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        sheets[ws.title] = [{h: ("" if v is None else str(v).strip()) for h, v in zip(header, values) if h}
                            for values in rows if any(v not in (None, "") for v in values)]
    book.close()
    return sheets


def check_with_pyxform(path, name: str) -> None:
    """pyxform's own checks of the spec (names, lists, groups, ``${references}``, duplicate choices), without
    ODK Validate (Java); its message names the row.

    :raises QuestionnaireError: what pyxform refuses, or a warning it gives.
    """
    from pyxform.errors import PyXFormError
    from pyxform.xls2xform import convert

    try:
        result = convert(xlsform=str(path), validate=False)
    except PyXFormError as exc:
        raise QuestionnaireError(name, None, f"XLSForm không hợp lệ theo pyxform: {_rows_in_vietnamese(exc)}") from None
    if result.warnings:
        raise QuestionnaireError(name, None, "XLSForm có cảnh báo của pyxform: " + "; ".join(result.warnings))


def _rows_in_vietnamese(exc: Exception) -> str:
    """pyxform's ``[row : 7]`` as ``dòng 7``."""
    return re.sub(r"\[row : (\d+)\]", r"dòng \1:", str(exc)).strip()


_MAX_LENGTH = re.compile(r"string-length\(\.\)\s*<=\s*(\d+)")


def definition_from_workbook(path) -> dict:
    """The questionnaire definition an XLSForm made by :func:`write_workbook` describes (``source_text``
    before the label, so the round's wording goes back to the stored one). Kobo's ``$``-columns and
    ``__version__`` are ignored.

    :raises QuestionnaireError: for a workbook that is not one of ours, or a list that is not a scale.
    """
    name = getattr(path, "name", str(path))
    check_with_pyxform(path, name)
    sheets = read_sheets(path)
    for needed in ("survey", "choices", "settings"):
        if needed not in sheets:
            raise QuestionnaireError(name, None, f"thiếu trang '{needed}'")
    if not sheets["settings"]:
        raise QuestionnaireError(name, None, "trang 'settings' trống")
    settings = sheets["settings"][0]
    for key in ("form_code", "channel", "rates", "rated_kinds", "respondent_group", "form_title"):
        if not settings.get(key):
            raise QuestionnaireError(name, None, f"trang 'settings' thiếu cột '{key}' (không phải tệp do "
                                     "survey-service questionnaires xlsform xuất)")
    scales: dict[str, dict] = {}
    for row in sheets["choices"]:
        if row.get("scale_title"):
            scale = scales.setdefault(row["list_name"], {"title": row["scale_title"], "options": []})
            scale["options"].append({
                "code": row["name"], "label": row.get(LABEL, ""),
                "coefficient": float(row["coefficient"]) if row.get("coefficient") else None,
                "positive": row.get("positive") == "yes", "excluded": row.get("excluded") == "yes"})
    sections, criteria, instructions = [], {}, ""
    current = None
    for n, row in enumerate(sheets["survey"], start=2):
        kind = row.get("type", "")
        text = row.get("source_text") or row.get(LABEL, "")
        if row.get("criterion"):
            criteria[row["criterion"]] = {"name": row.get("criterion_name", "")}
        if kind.split(" ")[0] in FORBIDDEN_TYPES:
            raise QuestionnaireError(name, str(n), f"kiểu '{kind}' ghi thời điểm hoặc danh tính", label="dòng")
        if row.get("name") == INTRO:
            instructions = text
        elif kind == "begin_group":
            current = {"title": text, "criterion": row.get("criterion") or None, "items": []}
            sections.append(current)
        elif kind == "end_group":
            current = None
        elif current is not None and (kind.startswith("select_one ") or kind == "text"):
            scale = kind.split(" ", 1)[1] if kind != "text" else None
            if scale is not None and scale not in scales:
                raise QuestionnaireError(name, str(n), f"danh sách '{scale}' không phải thang đo", label="dòng")
            limit = _MAX_LENGTH.search(row.get("constraint", ""))
            current["items"].append({
                "code": row.get("name", ""), "text": text, "type": "scale" if scale else "text", "scale": scale,
                "criterion": (row.get("criterion") or current["criterion"]) if scale else None,
                "required": row.get("required") == "yes", "max_length": int(limit.group(1)) if limit else None})
    used = {i["scale"] for s in sections for i in s["items"] if i["scale"]}
    return {
        "code": settings["form_code"], "title": settings.get("source_title") or settings["form_title"],
        "channel": settings["channel"], "respondent_group": settings["respondent_group"],
        "rates": settings["rates"], "rated_kinds": settings["rated_kinds"].split(),
        "instructions": instructions, "sections": sections,
        "scales": {code: scales[code] for code in sorted(used)},
        "criteria": {code: criteria[code] for code in sorted(criteria)},
    }


def form_yaml(definition: Mapping) -> str:
    """The form file (``questionnaires/<FORM>.yaml``) of a definition: its scales and criteria are the
    questionnaire directory's, so only the form's own keys, with an item's defaults left out."""
    import yaml

    sections = []
    for s in definition["sections"]:
        items = []
        for i in s["items"]:
            item = {"code": i["code"], "text": i["text"]}
            if i["type"] == "text":
                item["type"] = "text"
                if i["required"]:
                    item["required"] = True
                if i["max_length"]:
                    item["max_length"] = i["max_length"]
            else:
                item["scale"] = i["scale"]
                if i["criterion"] != s["criterion"]:
                    item["criterion"] = i["criterion"]
                if not i["required"]:
                    item["required"] = False
            items.append(item)
        sections.append({**({"criterion": s["criterion"]} if s["criterion"] else {}), "title": s["title"],
                         "items": items})
    body = {k: definition[k] for k in ("code", "title", "channel", "respondent_group", "rates", "rated_kinds",
                                       "instructions")}
    body["sections"] = sections
    return yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=120)

