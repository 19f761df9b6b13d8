"""A round directory (``questionnaires/rounds/<CODE>/``): its structure (agency kinds, own-staff groups,
supervising mappings), agencies and what they continue, quota plan, staff counts and methodology, checked
as a whole."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from survey_service.questionnaires.citizens import (
    CITIZENS_FILE,
    POPULATIONS_FILE,
    load_populations,
    validate_citizens,
)
from survey_service.questionnaires.forms import CRITERIA_FILE, SCALES_FILE, load_criteria, load_scales
from survey_service.questionnaires.methodology import validate_methodology
from survey_service.questionnaires.readers import (
    CODE_RE,
    KIND_RE,
    ROUND_CODE_RE,
    as_bool,
    as_code,
    as_date,
    as_int,
    as_list,
    as_number,
    as_text,
    check_keys,
    csv_int,
    known,
    read_csv,
    read_yaml,
)
from survey_service.questionnaires.types import (
    CHANNELS,
    AgencyDef,
    AgencyKindDef,
    Criterion,
    DivisionDef,
    Questionnaire,
    QuestionnaireError,
    QuotaDef,
    RoundDef,
    Scale,
    StaffCount,
    SupervisionDef,
    plain,
)

ROUND_FILE = "round.yaml"
AGENCIES_FILE = "agencies.csv"
QUOTAS_FILE = "quotas.csv"
SUPERVISING_FILE = "supervising.yaml"
STAFF_FILE = "staff_counts.csv"
METHODOLOGY_FILE = "methodology.yaml"


@dataclass(frozen=True)
class FieldSpec:
    """One key of a round file (or column of its CSV files): what the loader accepts and the reference page
    (docs/round-format.md) says. ``default`` None means the key is required."""

    key: str
    type: str
    meaning: str
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


#: The indicators a round's targets may name.
TARGET_INDICATORS = ("satisfaction", "survey_points")
#: A province-level unit is a province (tỉnh) or a centrally run city (thành phố), as in "thành phố Đà Nẵng".
PROVINCE_TYPES = ("tỉnh", "thành phố")
#: What a round surveys: ``par``, staff and leaders rating agencies for the PAR INDEX (scored by
#: methodology.yaml); ``citizens``, people rating the agencies that served them (citizens.yaml).
ROUND_KINDS = ("par", "citizens")
#: The organiser when round.yaml names none: the home affairs department of the province.
DEFAULT_ORGANISER = "Sở Nội vụ {unit} {province}"

ROUND_FIELDS = (
    FieldSpec("kind", " or ".join(ROUND_KINDS), "What the round surveys: par (staff and leaders rate agencies "
              "for the PAR INDEX, methodology.yaml) or citizens (people rate the agencies that served them, "
              "citizens.yaml and populations.csv instead of methodology.yaml).", ROUND_KINDS[0]),
    FieldSpec("code", "text", "The round code, e.g. HYN-2026 (letters, a hyphen, the year); the directory's "
              "name."),
    FieldSpec("name", "text", "The round's title on pages, sheets and exports."),
    FieldSpec("province", "text", "The province's name without its kind of unit, e.g. \"Hưng Yên\"; fills "
              "`{province}` in the forms' texts."),
    FieldSpec("province_type", " or ".join(PROVINCE_TYPES), "Its kind of unit; fills `{unit}` in the forms' "
              "texts and heads the printed sheets (\"TỈNH HƯNG YÊN\").", PROVINCE_TYPES[0]),
    FieldSpec("organiser", "text", "Who runs the survey, as invitation slips, page headers and printed "
              "sheets name it.", "Sở Nội vụ <province_type> <province>"),
    FieldSpec("year", "integer (2000 or later)", "The year the round evaluates."),
    FieldSpec("legal_basis", "text", "The plan or decision the survey is run under."),
    FieldSpec("opens_on", "date (YYYY-MM-DD)", "First day codes and sheets are accepted."),
    FieldSpec("closes_on", "date (YYYY-MM-DD)", "Last day they are accepted (not before opens_on)."),
    FieldSpec("portal", "text", "The province's portal address, as the invitations print it."),
    FieldSpec("forms", "list of form codes", "The questionnaires of the round, each a file of the "
              "questionnaire directory (forms.yaml)."),
    FieldSpec("agency_kinds", "list of {code, label, plural}", "The kinds of agency rated, in the order of "
              "pages and exports; code is lower-case (department, commune, …)."),
    FieldSpec("own_staff_forms", "list of form codes", "Forms answered by the rated agency's own staff "
              "(rates: own); [] for none."),
    FieldSpec("settings", "mapping", "The round's switches, below."),
    FieldSpec("targets", "list of targets", "What the province expects of its agencies (below): each agency × "
              "indicator is then Đạt, Không đạt or Chưa đủ căn cứ.", "[]"),
)
#: ``settings:`` of round.yaml; the type is what the loader checks (share: a number in [0, 1]).
SETTINGS_FIELDS = (
    FieldSpec("double_entry_rate", "share", "Share of paper sheets keyed a second time by another clerk."),
    FieldSpec("double_entry_first_sheets", "count", "Sheets of each clerk keyed twice from their first one."),
    FieldSpec("unsampled_keyed_count_as_verified", "bool", "A sheet not drawn for double entry counts as "
              "verified once keyed."),
    FieldSpec("surplus_in_analysis", "bool", "Responses beyond a quota cell's target are analysed too."),
    FieldSpec("min_breakdown", "count (1 or more)", "No figure about fewer respondents than this, of any "
              "group about one agency, is shown or exported.", "5"),
    FieldSpec("phuc_tra_share", "share (0.05 to 0.10)", "Share of each investigator's returned sheets drawn at "
              "random for phúc tra (re-contacting the respondent), stratified by commune.", "0.05"),
    FieldSpec("phuc_tra_failure_threshold", "share", "An investigator whose phúc tra failures exceed this share "
              "of the respondents reached is quarantined: their sheets leave the index pending review.", "0.2"),
    FieldSpec("phuc_tra_min_failures", "count (1 or more)", "Failures an investigator must have before the "
              "threshold quarantines them.", "2"),
    FieldSpec("phuc_tra_sheets_per_day", "count (1 or more)", "More sheets than this returned by one "
              "investigator in one day are all drawn for phúc tra.", "30"),
    FieldSpec("offline_portal", "bool", "The online form keeps answering without a connection: a draft and the "
              "answers to send wait in the browser until the connection returns (docs/field-tools.md).", "false"),
)
#: ``targets:`` entries of round.yaml; the most specific entry of an indicator applies to an agency.
TARGET_FIELDS = (
    FieldSpec("indicator", " or ".join(TARGET_INDICATORS) + " (or an element code)",
              "`satisfaction`: the satisfaction share in % (a citizens' round: of its overall item); "
              "`survey_points`: the total survey points (PAR rounds); in a citizens' round also an element code of "
              "citizens.yaml: the share satisfied with that element."),
    FieldSpec("at_least", "number", "The target: a share in % (0–100) or points (above 0)."),
    FieldSpec("kinds", "list of agency kinds", "Only agencies of these kinds.", "(all)"),
    FieldSpec("agencies", "list of agency codes", "Only these agencies (a field such as land and "
              "construction); wins over `kinds` and over an entry for all.", "(all)"),
    FieldSpec("label", "text", "What the entry is called in the report, e.g. \"Lĩnh vực đất đai, xây dựng\".",
              "(blank)"),
    FieldSpec("source", "text", "Where the target comes from (a resolution, the province's plan).", "(blank)"),
)
AGENCY_KIND_FIELDS = (
    FieldSpec("code", "text", "Lower-case code, used by agencies.csv and the forms' rated_kinds."),
    FieldSpec("label", "text", "One agency of the kind, e.g. \"Sở, ban, ngành\"."),
    FieldSpec("plural", "text", "The kind as a heading, e.g. \"Các sở, ban, ngành\"."),
)
AGENCY_COLUMNS = (
    FieldSpec("code", "code", "The agency's code (upper-case letters and digits), unique in the round."),
    FieldSpec("kind", "agency kind", "One of round.yaml agency_kinds."),
    FieldSpec("name", "text", "The agency's name as pages and sheets show it."),
    FieldSpec("continues", "ROUND:AGENCY …", "Agencies of earlier rounds it continues (merged ones: several, "
              "separated by spaces), for comparisons across rounds.", "(blank)"),
)
QUOTA_COLUMNS = (
    FieldSpec("form", "form code", "A form of the round."),
    FieldSpec("agency", "agency code", "The agency of the cell (a supervising form: the unit of its "
              "cells_per kind); blank for a matrix form's single cell."),
    FieldSpec("channel", " or ".join(CHANNELS), "Must be the form's channel."),
    FieldSpec("target", "integer", "Responses wanted in the cell."),
    FieldSpec("note", "text", "Where the figure comes from.", "(blank)"),
)
SUPERVISING_FIELDS = (
    FieldSpec("cells_per", "agency kind", "The kind whose agencies the form's respondents are sampled in."),
    FieldSpec("unit", "text", "What a division is called, e.g. \"phòng chuyên môn\"."),
    FieldSpec("supervisor", "text", "What a supervising agency is called."),
    FieldSpec("divisions", "list of {code, name, supervised_by}", "The divisions and the agencies (codes) "
              "supervising each."),
)
STAFF_COLUMNS = (
    FieldSpec("agency", "agency code", "An agency of the round."),
    FieldSpec("form", "form code", "An online form about the respondent's own or supervising agency."),
    FieldSpec("staff", "integer", "Staff who may answer it there (sizes the online sample)."),
    FieldSpec("source", "text", "Where the figure comes from."),
)


def _required(specs) -> tuple[str, ...]:
    return tuple(f.key for f in specs if f.required)


def _optional(specs) -> tuple[str, ...]:
    return tuple(f.key for f in specs if not f.required)


_ROUND_REQUIRED = set(_required(ROUND_FIELDS))
_SETTINGS = {f.key: f.type for f in SETTINGS_FIELDS if f.required}
#: Settings a round may leave out, with their default.
OPTIONAL_SETTINGS = {
    #: No figure about fewer respondents than this, of any group about one agency, is shown or exported.
    "min_breakdown": 5,
    "phuc_tra_share": 0.05,
    "phuc_tra_failure_threshold": 0.2,
    "phuc_tra_min_failures": 2,
    "phuc_tra_sheets_per_day": 30,
}


def _load_kinds(raw: Any, file: str) -> tuple[AgencyKindDef, ...]:
    kinds: dict[str, AgencyKindDef] = {}
    for n, entry in enumerate(as_list(raw, file, None, "agency_kinds"), start=1):
        where = str(entry.get("code", f"#{n}")) if isinstance(entry, dict) else f"#{n}"
        check_keys(entry, set(_required(AGENCY_KIND_FIELDS)), set(), file, where, "", label="agency kind")
        code = as_code(entry["code"], KIND_RE, file, where, "code", label="agency kind")
        if code in kinds:
            raise QuestionnaireError(file, code, "khai báo hai lần", label="agency kind")
        if code == "matrix":
            raise QuestionnaireError(file, code, "'matrix' là tên dành cho ô chỉ tiêu của phiếu dạng ma "
                                                 "trận, không dùng làm loại cơ quan",
                                     label="agency kind")
        kinds[code] = AgencyKindDef(
            code=code,
            label=as_text(entry["label"], file, code, "label", label="agency kind"),
            plural=as_text(entry["plural"], file, code, "plural", label="agency kind"),
        )
    return tuple(kinds.values())


def _load_targets(raw: Any, kinds: Mapping[str, AgencyKindDef], agencies: Mapping[str, AgencyDef],
                  max_points: float | None, elements: Sequence[str] = ()) -> tuple[dict, ...]:
    """round.yaml ``targets``: each entry checked, and no two entries of the same reach for one indicator
    (two answers for the same agency). A citizens' round (``max_points`` None: it has no points) sets shares
    only: satisfaction overall or with one of its ``elements``."""
    if raw is None or raw == []:
        return ()
    if not isinstance(raw, list):
        raise QuestionnaireError(ROUND_FILE, None, "targets phải là một danh sách mục tiêu ([] nếu không có)")
    targets, seen = [], {}
    for n, entry in enumerate(raw, start=1):
        where = f"#{n}"
        check_keys(entry, set(_required(TARGET_FIELDS)), set(_optional(TARGET_FIELDS)), ROUND_FILE, where, "",
                   label="target")
        indicator = entry["indicator"]
        allowed = (*TARGET_INDICATORS, *elements) if max_points is not None else ("satisfaction", *elements)
        if indicator not in allowed:
            raise QuestionnaireError(ROUND_FILE, where, f"indicator phải là một trong {', '.join(allowed)}, "
                                     f"nhưng là {indicator!r}", label="target")
        value = as_number(entry["at_least"], ROUND_FILE, where, "at_least", label="target")
        top = max_points if indicator == "survey_points" else 100.0
        if not 0 < value <= top:
            raise QuestionnaireError(ROUND_FILE, where, f"at_least của {indicator} phải lớn hơn 0 và không quá "
                                     f"{top:g}, nhưng là {value:g}", label="target")
        target = {"indicator": indicator, "at_least": value}
        for key, names in (("kinds", kinds), ("agencies", agencies)):
            if key in entry:
                listed = as_list(entry[key], ROUND_FILE, where, key, label="target")
                for code in listed:
                    if not known(code, names):
                        raise QuestionnaireError(ROUND_FILE, where, f"{key}: {code!r} không phải là "
                                                 f"{'loại cơ quan' if key == 'kinds' else 'cơ quan'} của đợt này",
                                                 label="target")
                target[key] = sorted(set(listed))
        for key in ("label", "source"):
            if key in entry:
                target[key] = as_text(entry[key], ROUND_FILE, where, key, label="target")
        if "agencies" in target:
            reach = {(indicator, "agency", code) for code in target["agencies"]}
        elif "kinds" in target:
            reach = {(indicator, "kind", code) for code in target["kinds"]}
        else:
            reach = {(indicator, "all", "")}
        for key in sorted(reach & set(seen)):
            raise QuestionnaireError(ROUND_FILE, where, f"mục tiêu {indicator} thứ hai cho "
                                     f"{key[2] or 'mọi cơ quan'} (mục {seen[key]} đã đặt một mục tiêu)", label="target")
        seen.update(dict.fromkeys(reach, where))
        targets.append(target)
    return tuple(targets)


def _parse_continues(value: str, file: str, row_id: str, round_code: str) -> tuple[tuple[str, str], ...]:
    refs: list[tuple[str, str]] = []
    for token in value.split():
        earlier, sep, agency = token.partition(":")
        if not sep or not ROUND_CODE_RE.match(earlier) or not CODE_RE.match(agency):
            raise QuestionnaireError(
                file, row_id, f"continues {token!r} phải có dạng MÃ_ĐỢT:MÃ_CƠ_QUAN (ví dụ QNA-2023:SNV)", label="row"
            )
        if earlier == round_code:
            raise QuestionnaireError(
                file, row_id, f"continues {token!r}: một cơ quan chỉ nối tiếp cơ quan của đợt trước, "
                "không nối tiếp cơ quan của chính đợt này", label="row",
            )
        if (earlier, agency) in refs:
            raise QuestionnaireError(file, row_id, f"continues ghi {token!r} hai lần", label="row")
        refs.append((earlier, agency))
    return tuple(refs)


def _load_agencies(path: Path, kinds: Mapping[str, AgencyKindDef], round_code: str) -> tuple[AgencyDef, ...]:
    agencies: dict[str, AgencyDef] = {}
    for line, row in read_csv(path, _required(AGENCY_COLUMNS), _optional(AGENCY_COLUMNS)):
        row_id = str(line)
        code = row["code"]
        if not CODE_RE.match(code):
            raise QuestionnaireError(
                path.name, row_id, f"mã cơ quan {code!r} không hợp lệ (chữ in hoa, số, dấu gạch ngang)", label="row"
            )
        if code in agencies:
            raise QuestionnaireError(path.name, row_id, f"mã cơ quan {code!r} bị trùng", label="row")
        if row["kind"] not in kinds:
            raise QuestionnaireError(
                path.name, row_id,
                f"loại cơ quan {row['kind']!r} chưa khai báo trong agency_kinds của {ROUND_FILE} ({', '.join(kinds)})",
                label="row",
            )
        if not row["name"]:
            raise QuestionnaireError(path.name, row_id, "thiếu tên cơ quan (name)", label="row")
        continues = _parse_continues(row.get("continues", ""), path.name, row_id, round_code)
        agencies[code] = AgencyDef(code=code, kind=row["kind"], name=row["name"], continues=continues)
    if not agencies:
        raise QuestionnaireError(path.name, None, "chưa có cơ quan nào")
    return tuple(agencies.values())


def _load_supervision(
    path: Path,
    forms: Mapping[str, Questionnaire],
    agencies: Mapping[str, AgencyDef],
    kinds: Mapping[str, AgencyKindDef],
) -> tuple[SupervisionDef, ...]:
    supervising = [code for code, q in forms.items() if q.rates == "supervising"]
    if not path.exists():
        if supervising:
            raise QuestionnaireError(
                path.name, None,
                f"không tìm thấy tệp: mẫu phiếu {', '.join(supervising)} đánh giá các cơ quan quản lý đơn vị của "
                "người trả lời, và tệp này cho biết cơ quan nào quản lý đơn vị nào",
            )
        return ()
    name = path.name
    data = read_yaml(path)
    check_keys(data, set(supervising), set(), name, None, "tệp (mỗi mẫu phiếu đánh giá cơ quan quản lý một mục)")
    seen: dict[str, str] = {}
    mappings = []
    for form in supervising:
        raw = data[form]
        check_keys(raw, set(_required(SUPERVISING_FIELDS)), set(), name, form, "", label="form")
        cells_per = raw["cells_per"]
        if not known(cells_per, kinds):
            raise QuestionnaireError(
                name, form, f"cells_per {cells_per!r} không phải loại cơ quan của đợt này", label="form"
            )
        divisions = []
        for entry in as_list(raw["divisions"], name, form, "divisions", label="form"):
            where = str(entry.get("code", "?")) if isinstance(entry, dict) else "?"
            check_keys(entry, {"code", "name", "supervised_by"}, set(), name, where, "", label="division")
            code = as_code(entry["code"], CODE_RE, name, where, "code", label="division")
            if code in seen:
                raise QuestionnaireError(name, code, f"mã đơn vị bị trùng (đã có ở {seen[code]})",
                                         label="division")
            seen[code] = form
            title = as_text(entry["name"], name, code, "name", label="division")
            supervisors = as_list(entry["supervised_by"], name, code, "supervised_by", label="division")
            for agency in supervisors:
                if not known(agency, agencies):
                    raise QuestionnaireError(
                        name, code, f"không có cơ quan {agency!r} trong agencies.csv", label="division"
                    )
                if agencies[agency].kind not in forms[form].rated_kinds:
                    raise QuestionnaireError(
                        name, code, f"{agency} thuộc loại {agencies[agency].kind}; mẫu {form} đánh giá cơ quan loại "
                        f"{' hoặc '.join(forms[form].rated_kinds)}", label="division",
                    )
            if len(set(supervisors)) != len(supervisors):
                raise QuestionnaireError(name, code, "một cơ quan được ghi hai lần", label="division")
            divisions.append(DivisionDef(code=code, name=title, supervised_by=tuple(supervisors)))
        mappings.append(SupervisionDef(
            form_code=form, cells_per=cells_per,
            unit=as_text(raw["unit"], name, form, "unit", label="form"),
            supervisor=as_text(raw["supervisor"], name, form, "supervisor", label="form"),
            divisions=tuple(divisions),
        ))
    return tuple(mappings)


def _cell_kinds(
    forms: Mapping[str, Questionnaire], supervision: Sequence[SupervisionDef]
) -> dict[str, tuple[str, ...]]:
    """Kinds of agency each form's quota cells (and invitation codes) are per.

    A supervising form's respondents (QNA-2023 LĐ-CP: division heads of a district) are sampled per agency
    of its mapping's ``cells_per`` kind, not per agency rated; every other form's cells are per agency rated.
    """
    cells_per = {m.form_code: (m.cells_per,) for m in supervision}
    return {code: cells_per.get(code, q.rated_kinds) for code, q in forms.items()}


def _covered_kinds(
    forms: Mapping[str, Questionnaire],
    quotas: Sequence[QuotaDef],
    agencies: Mapping[str, AgencyDef],
    supervision: Sequence[SupervisionDef],
) -> dict[str, set[str]]:
    """Kinds of agency each form's quota plan brings answers about (what a group weight can use)."""
    covered: dict[str, set[str]] = {code: set() for code in forms}
    mappings = {m.form_code: m for m in supervision}
    for cell in quotas:
        q = forms[cell.form_code]
        if q.rates == "matrix":
            covered[cell.form_code] |= set(q.rated_kinds)
        elif q.rates == "supervising":
            covered[cell.form_code] |= {agencies[a].kind for d in mappings[cell.form_code].divisions
                                        for a in d.supervised_by}
        else:
            covered[cell.form_code].add(agencies[cell.agency].kind)
    return covered


def _load_quotas(
    path: Path,
    forms: Mapping[str, Questionnaire],
    agencies: Mapping[str, AgencyDef],
    cell_kinds: Mapping[str, tuple[str, ...]],
) -> tuple[QuotaDef, ...]:
    name = path.name
    quotas: dict[tuple[str, str | None], QuotaDef] = {}
    for line, row in read_csv(path, _required(QUOTA_COLUMNS), _optional(QUOTA_COLUMNS)):
        row_id = str(line)
        form = row["form"]
        if form not in forms:
            raise QuestionnaireError(
                name, row_id, f"mẫu phiếu {form!r} không có trong đợt này (forms của round.yaml)", label="row"
            )
        q = forms[form]
        agency = row["agency"] or None
        if q.rates == "matrix":
            if agency is not None:
                raise QuestionnaireError(
                    name, row_id, f"{form} là phiếu dạng ma trận: ô chỉ tiêu duy nhất của nó để trống cột agency",
                    label="row",
                )
        else:
            if agency is None:
                raise QuestionnaireError(
                    name, row_id, f"mẫu {form} cần mã cơ quan ở mọi ô chỉ tiêu", label="row"
                )
            if agency not in agencies:
                raise QuestionnaireError(name, row_id, f"không có cơ quan {agency!r} trong agencies.csv", label="row")
            kind = agencies[agency].kind
            if kind not in cell_kinds[form]:
                raise QuestionnaireError(
                    name, row_id,
                    f"ô chỉ tiêu của mẫu {form} chia theo cơ quan loại {' hoặc '.join(cell_kinds[form])} "
                    f"({agency} thuộc loại {kind})",
                    label="row",
                )
        channel = row["channel"]
        if channel not in CHANNELS:
            raise QuestionnaireError(name, row_id, f"kênh {channel!r} không hợp lệ (online hoặc paper)", label="row")
        if channel != q.channel:
            raise QuestionnaireError(
                name, row_id, f"kênh {channel!r} khác kênh của mẫu {form} ({q.channel!r})",
                label="row",
            )
        target = csv_int(row["target"], name, line, "target")
        key = (form, agency)
        if key in quotas:
            raise QuestionnaireError(
                name, row_id, f"ô chỉ tiêu bị trùng ({form}, {agency or 'để trống'})", label="row"
            )
        quotas[key] = QuotaDef(
            form_code=form, agency=agency, channel=channel, target=target, note=row.get("note", "")
        )
    return tuple(quotas.values())


def _load_staff_counts(
    path: Path,
    forms: Mapping[str, Questionnaire],
    agencies: Mapping[str, AgencyDef],
    cell_kinds: Mapping[str, tuple[str, ...]],
) -> tuple[StaffCount, ...]:
    if not path.exists():
        return ()
    name = path.name
    counts: dict[tuple[str, str], StaffCount] = {}
    for line, row in read_csv(path, _required(STAFF_COLUMNS)):
        row_id = str(line)
        form, agency = row["form"], row["agency"]
        if form not in forms:
            raise QuestionnaireError(
                name, row_id, f"mẫu phiếu {form!r} không có trong đợt này (forms của round.yaml)", label="row"
            )
        q = forms[form]
        if q.channel != "online" or q.rates not in ("own", "supervising"):
            raise QuestionnaireError(
                name, row_id, f"số cán bộ chỉ dùng cho mẫu phiếu trực tuyến theo từng cơ quan; {form} không "
                              "phải mẫu như vậy",
                label="row",
            )
        if agency not in agencies:
            raise QuestionnaireError(name, row_id, f"không có cơ quan {agency!r} trong agencies.csv", label="row")
        if agencies[agency].kind not in cell_kinds[form]:
            raise QuestionnaireError(
                name, row_id, f"số cán bộ của mẫu {form} tính theo cơ quan loại "
                              f"{' hoặc '.join(cell_kinds[form])} ({agency} không thuộc loại đó)",
                label="row",
            )
        staff = csv_int(row["staff"], name, line, "staff")
        if not row["source"]:
            raise QuestionnaireError(
                name, row_id, "thiếu nguồn (source: số liệu lấy từ đâu)", label="row"
            )
        if (agency, form) in counts:
            raise QuestionnaireError(name, row_id, f"số cán bộ bị trùng ({agency}, {form})", label="row")
        counts[(agency, form)] = StaffCount(agency=agency, form_code=form, staff=staff, source=row["source"])
    return tuple(counts.values())


def _support_dirs(directory: Path, questionnaire_dir: str | Path | None) -> list[Path]:
    """Where a round's scales and criteria files are looked for: the questionnaire directory its forms
    come from, then the questionnaire root two levels up (``questionnaires/rounds/<CODE>/``)."""
    found = [Path(questionnaire_dir)] if questionnaire_dir is not None else []
    if directory.parent.name == "rounds":
        found.append(directory.parent.parent)
    return list(dict.fromkeys(p.resolve() for p in found))


def _discover(folders: Sequence[Path], loader, file_name: str) -> dict:
    """The definitions of ``file_name`` in ``folders``, the first folder winning a code found twice."""
    found: dict = {}
    for folder in reversed(folders):
        if (folder / file_name).is_file():
            found.update(loader(folder / file_name))
    return found


def _name_searched(exc: QuestionnaireError, folders: Sequence[Path]) -> QuestionnaireError:
    """A methodology error about an unknown scale or criterion, saying where they were looked for."""
    for what, file_name in (("không có thang đo", SCALES_FILE), ("không có lĩnh vực", CRITERIA_FILE)):
        if what in exc.reason:
            places = ", ".join(str(f / file_name) for f in folders) or "không có thư mục mẫu phiếu nào"
            return QuestionnaireError(exc.file, exc.item, f"{exc.reason} (đã tìm trong {places} và trong "
                                      "các mẫu phiếu của đợt; chỉ thư mục bằng --questionnaires DIR)", label=exc.label)
    return exc


def _check_form_kinds(
    forms: Mapping[str, Questionnaire], kinds: Mapping[str, AgencyKindDef], agencies: Sequence[AgencyDef]
) -> None:
    present = {a.kind for a in agencies}
    for code, kind in kinds.items():
        if code not in present:
            raise QuestionnaireError(
                ROUND_FILE, code, f"không có cơ quan nào thuộc loại này trong {AGENCIES_FILE}", label="agency kind"
            )
    for form, q in forms.items():
        for kind in q.rated_kinds:
            if kind not in kinds:
                raise QuestionnaireError(
                    ROUND_FILE, form, f"đánh giá cơ quan loại {kind!r}, loại mà đợt này chưa khai báo "
                    f"(agency_kinds: {', '.join(kinds)})", label="form",
                )


def _own_staff_forms(raw: Any, forms: Mapping[str, Questionnaire]) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise QuestionnaireError(ROUND_FILE, None, "own_staff_forms phải là danh sách mã mẫu phiếu ([] nếu không có)")
    for form in raw:
        if not known(form, forms):
            raise QuestionnaireError(
                ROUND_FILE, None, f"own_staff_forms: {form!r} không phải mẫu phiếu của đợt này"
            )
        if forms[form].rates != "own":
            raise QuestionnaireError(
                ROUND_FILE, None, f"own_staff_forms: {form} đánh giá cơ quan loại {forms[form].rates!r}; chỉ "
                                  "mẫu phiếu về chính cơ quan "
                "của người trả lời (rates: own) mới do cán bộ của cơ quan đó trả lời",
            )
    if len(set(raw)) != len(raw):
        raise QuestionnaireError(ROUND_FILE, None, "own_staff_forms ghi một mẫu phiếu hai lần")
    return tuple(raw)


def _check_continuations(
    agencies: Sequence[AgencyDef], opens_on, search: Sequence[Path]
) -> None:
    """Every ``continues`` reference names an agency of an earlier round found in ``search``."""
    earlier: dict[str, set[str]] = {}
    for agency in agencies:
        for round_code, code in agency.continues:
            if round_code not in earlier:
                earlier[round_code] = _earlier_agencies(round_code, opens_on, search, agency.code)
            if code not in earlier[round_code]:
                raise QuestionnaireError(
                    AGENCIES_FILE, agency.code, f"continues {round_code}:{code}, nhưng đợt {round_code} "
                    f"không có cơ quan {code}", label="agency",
                )


def _earlier_agencies(round_code: str, opens_on, search: Sequence[Path], agency: str) -> set[str]:
    for folder in search:
        directory = Path(folder) / round_code
        if (directory / ROUND_FILE).is_file():
            break
    else:
        raise QuestionnaireError(
            AGENCIES_FILE, agency, f"nối tiếp một cơ quan của đợt {round_code}, nhưng không tìm thấy thư mục "
            f"đợt {round_code} bên cạnh thư mục đợt này", label="agency",
        )
    data = read_yaml(directory / ROUND_FILE)
    their_opening = as_date(data.get("opens_on") if isinstance(data, dict) else None,
                            f"{round_code}/{ROUND_FILE}", "opens_on")
    if their_opening >= opens_on:
        raise QuestionnaireError(
            AGENCIES_FILE, agency, f"nối tiếp một cơ quan của đợt {round_code}, nhưng đợt đó không mở trước "
            "đợt này", label="agency",
        )
    return {row["code"] for _, row in read_csv(directory / AGENCIES_FILE, ("code", "kind", "name"), ("continues",))}


def load_round(
    directory: str | Path,
    questionnaires: Mapping[str, Questionnaire],
    *,
    scales: Mapping[str, Scale] | None = None,
    criteria: Mapping[str, Criterion] | None = None,
    earlier_rounds: Sequence[str | Path] = (),
    questionnaire_dir: str | Path | None = None,
) -> RoundDef:
    """Load and cross-check a round directory against the loaded questionnaires.

    Files: ``round.yaml`` (with its ``agency_kinds`` and ``own_staff_forms``), ``agencies.csv``
    (code,kind,name[,continues]), ``quotas.csv`` (form,agency,channel,target[,note]), ``methodology.yaml``,
    and optionally ``supervising.yaml`` (required with a ``rates: supervising`` form) and
    ``staff_counts.csv`` (agency,form,staff,source). ``scales``/``criteria`` are what the methodology may
    reference; by default those of ``questionnaire_dir`` and of the questionnaire root (``../../scales.yaml``)
    plus those the forms use.
    The rounds an agency ``continues`` are looked up next to this one, then in ``earlier_rounds``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise QuestionnaireError(str(directory), None, "không tìm thấy thư mục đợt khảo sát")
    rname = ROUND_FILE
    data = read_yaml(directory / ROUND_FILE)
    check_keys(data, _ROUND_REQUIRED, set(_optional(ROUND_FIELDS)), rname, None, "")
    code = as_code(data["code"], ROUND_CODE_RE, rname, None, "round code")
    if directory.name != code:
        raise QuestionnaireError(
            rname, None, f"mã đợt {code!r} phải trùng tên thư mục {directory.name!r}"
        )
    year = as_int(data["year"], rname, None, "year", 2000)
    opens_on = as_date(data["opens_on"], rname, "opens_on")
    closes_on = as_date(data["closes_on"], rname, "closes_on")
    if closes_on < opens_on:
        raise QuestionnaireError(rname, None, "closes_on (ngày đóng) trước opens_on (ngày mở)")
    form_codes = as_list(data["forms"], rname, None, "forms")
    for form in form_codes:
        if not known(form, questionnaires):
            raise QuestionnaireError(rname, None, f"không có mẫu phiếu {form!r} (không có tệp mẫu phiếu nào "
                                                  "mang mã này)")
    if len(set(form_codes)) != len(form_codes):
        raise QuestionnaireError(rname, None, "một mẫu phiếu được ghi hai lần trong forms")
    settings = data["settings"]
    check_keys(settings, set(_SETTINGS), {*OPTIONAL_SETTINGS, "offline_portal"}, rname, "settings", "", label="key")
    if "offline_portal" in settings:  # only when given: a round that leaves it out keeps its definition
        as_bool(settings["offline_portal"], rname, "settings", "offline_portal", label="key")
    for key in ("min_breakdown", "phuc_tra_min_failures", "phuc_tra_sheets_per_day"):
        if key in settings:
            as_int(settings[key], rname, "settings", key, 1, label="key")
    if "phuc_tra_share" in settings and not (
            0.05 <= as_number(settings["phuc_tra_share"], rname, "settings", "phuc_tra_share", label="key") <= 0.10):
        raise QuestionnaireError(rname, "settings", "phuc_tra_share must be in [0.05, 0.10]", label="key")
    if "phuc_tra_failure_threshold" in settings and not (
            0 <= as_number(settings["phuc_tra_failure_threshold"], rname, "settings", "phuc_tra_failure_threshold",
                           label="key") < 1):
        raise QuestionnaireError(rname, "settings", "phuc_tra_failure_threshold must be in [0, 1)", label="key")
    for key, kind in _SETTINGS.items():
        value = settings[key]
        if kind == "bool":
            as_bool(value, rname, "settings", key, label="key")
        elif kind == "count":
            as_int(value, rname, "settings", key, 0, label="key")
        elif not 0 <= as_number(value, rname, "settings", key, label="key") <= 1:
            raise QuestionnaireError(rname, "settings", f"{key} phải nằm trong khoảng từ 0 đến 1", label="key")
    province_type = data.get("province_type", PROVINCE_TYPES[0])
    if province_type not in PROVINCE_TYPES:
        raise QuestionnaireError(
            rname, None, f"province_type phải là {' hoặc '.join(PROVINCE_TYPES)}, nhưng là {province_type!r}"
        )
    province = as_text(data["province"], rname, None, "province")
    organiser = (as_text(data["organiser"], rname, None, "organiser") if "organiser" in data
                 else DEFAULT_ORGANISER.format(unit=province_type, province=province))
    forms = {f: questionnaires[f] for f in form_codes}
    kinds_t = _load_kinds(data["agency_kinds"], rname)
    kinds = {k.code: k for k in kinds_t}
    own_staff = _own_staff_forms(data["own_staff_forms"], forms)

    agencies_t = _load_agencies(directory / AGENCIES_FILE, kinds, code)
    agencies = {a.code: a for a in agencies_t}
    _check_form_kinds(forms, kinds, agencies_t)
    _check_continuations(agencies_t, opens_on, [directory.parent, *map(Path, earlier_rounds)])
    supervision = _load_supervision(directory / SUPERVISING_FILE, forms, agencies, kinds)
    cell_kinds = _cell_kinds(forms, supervision)
    quotas = _load_quotas(directory / QUOTAS_FILE, forms, agencies, cell_kinds)
    staff = _load_staff_counts(directory / STAFF_FILE, forms, agencies, cell_kinds)

    folders = _support_dirs(directory, questionnaire_dir)
    known_scales = _discover(folders, load_scales, SCALES_FILE) if scales is None else dict(scales)
    known_criteria = _discover(folders, load_criteria, CRITERIA_FILE) if criteria is None else dict(criteria)
    for q in forms.values():
        known_scales.update({k: v for k, v in q.scales.items() if k not in known_scales})
        known_criteria.update({k: v for k, v in q.criteria.items() if k not in known_criteria})
    round_kind = data.get("kind", ROUND_KINDS[0])
    if round_kind not in ROUND_KINDS:
        raise QuestionnaireError(rname, None, f"kind must be one of {', '.join(ROUND_KINDS)}, got {round_kind!r}")
    try:
        if round_kind == "citizens":
            methodology = _citizens_methodology(directory, forms, settings, agencies, known_criteria)
        else:
            methodology = validate_methodology(
                read_yaml(directory / METHODOLOGY_FILE), METHODOLOGY_FILE, forms,
                list(kinds), known_scales, known_criteria, _covered_kinds(forms, quotas, agencies, supervision),
            )
    except QuestionnaireError as exc:
        raise _name_searched(exc, folders if scales is None else []) from None
    if round_kind == "citizens":  # shares satisfied only, overall or with an element
        targets = _load_targets(data.get("targets"), kinds, agencies, None,
                                [e["code"] for e in methodology["elements"]])
    else:
        most_points = max(sum(points.values()) for points in methodology["max_points"].values())
        targets = _load_targets(data.get("targets"), kinds, agencies, most_points)
    return RoundDef(
        code=code,
        name=as_text(data["name"], rname, None, "name"),
        province=province,
        year=year,
        opens_on=opens_on,
        closes_on=closes_on,
        legal_basis=as_text(data["legal_basis"], rname, None, "legal_basis"),
        portal=as_text(data["portal"], rname, None, "portal"),
        form_codes=tuple(form_codes),
        settings=plain({**OPTIONAL_SETTINGS, **settings}),
        kinds=kinds_t,
        own_staff_forms=own_staff,
        agencies=agencies_t,
        quotas=quotas,
        supervision=supervision,
        staff_counts=staff,
        methodology=methodology,
        source_dir=str(directory),
        form_versions={f: q.version for f, q in forms.items()},
        province_type=province_type,
        organiser=organiser,
        targets=targets,
        round_kind=round_kind,
    )


def _citizens_methodology(directory: Path, forms: Mapping[str, Questionnaire], settings: Mapping[str, Any],
                          agencies: Mapping[str, AgencyDef], criteria: Mapping[str, Criterion]) -> dict:
    """A citizens' round: its forms rate one agency each, its paper answers go straight into the ballot box
    (so no sheet is keyed twice: a second keying would keep the answers beside the serial), and its
    analysis settings and populations come from citizens.yaml and populations.csv."""
    for code, q in forms.items():
        if q.rates not in ("own", "assigned"):
            raise QuestionnaireError(ROUND_FILE, code, f"a citizens' round's forms rate the one agency that served "
                                     f"the respondent (own or assigned), not {q.rates!r}", label="form")
    for key in ("double_entry_rate", "double_entry_first_sheets"):
        if settings[key]:
            raise QuestionnaireError(ROUND_FILE, "settings", f"{key} must be 0 in a citizens' round: its paper "
                                     "answers are sealed at the first keying, never kept beside the serial",
                                     label="key")
    if (directory / METHODOLOGY_FILE).exists():
        raise QuestionnaireError(METHODOLOGY_FILE, None, f"a citizens' round is not scored into PAR points: "
                                 f"its settings are in {CITIZENS_FILE}")
    methodology = validate_citizens(read_yaml(directory / CITIZENS_FILE), forms, criteria)
    methodology["populations"] = load_populations(directory / POPULATIONS_FILE, agencies)
    return methodology


#: "tỉnh Quảng Nam", "thành phố Đà Nẵng", "Tỉnh Quảng Nam": a province-level unit named in a text.
_CAPITAL = "A-ZĐÂĂÊÔƠƯÁÀẢÃẠ"
_PLACE_RE = re.compile(rf"\b([Tt]ỉnh|[Tt]hành phố)\s+((?:[{_CAPITAL}]\w*)(?:\s+[{_CAPITAL}]\w*)*)")


def other_places(questionnaire: Questionnaire, province: str) -> list[str]:
    """Province-level units other than ``province`` that a form's texts name ("thành phố Đà Nẵng" in a
    Hưng Yên round): a form written for another province whose words were not made ``{province}``."""
    texts = [questionnaire.title, questionnaire.respondent_group, questionnaire.instructions]
    texts += [s.title for s in questionnaire.sections] + [i.text for i in questionnaire.items]
    found = []
    for text in texts:
        for match in _PLACE_RE.finditer(text):
            if match.group(2) != province and match.group(0) not in found:
                found.append(" ".join(match.group(0).split()))
    return found


def _table(specs) -> list[str]:
    rows = ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    for f in specs:
        default = "required" if f.required else f"`{f.default}`"
        rows.append(f"| `{f.key}` | {f.type} | {default} | {f.meaning} |")
    return rows + [""]


def format_reference() -> str:
    """docs/round-format.md, written from the field specs the loader validates with (a test keeps the
    committed page equal to this)."""
    lines = [
        "# The round directory", "",
        "<!-- Generated by survey_service.questionnaires.rounds.format_reference(); do not edit by hand. -->",
        "",
        "A round lives in a directory named after its code (`questionnaires/rounds/HYN-2026/` or anywhere,",
        "with `--questionnaires DIR` naming the forms). `survey-service round new CODE --province NAME",
        "--unit tỉnh|thành phố [--from QNA-2023|DNG-2026] --out DIR` writes one to start from;",
        "`round check DIR` reads it exactly as `round load` does.", "",
        f"## {ROUND_FILE}", "",
        *_table(ROUND_FIELDS),
        "The forms' texts write the province as `{unit} {province}` (\"trên địa bàn {unit} {province}\"):",
        "the round fills them in on pages, previews, printed sheets and exports. `round check` warns when a",
        "form names another province.", "",
        "### settings", "",
        *_table(SETTINGS_FIELDS),
        "### targets entries", "",
        *_table(TARGET_FIELDS),
        "A target is met (Đạt) when the one-sided 95% lower bound of the agency's estimate reaches it, missed",
        "(Không đạt) when the upper bound is below it, and otherwise not decided (Chưa đủ căn cứ); see",
        "[the results guide](results.md#targets).", "",
        "### agency_kinds entries", "",
        *_table(AGENCY_KIND_FIELDS),
        f"## {AGENCIES_FILE}", "", "One row per agency rated, in the order of pages and exports.", "",
        *_table(AGENCY_COLUMNS),
        f"## {QUOTAS_FILE}", "",
        "One row per quota cell: a form and the agency its respondents are sampled in.", "",
        *_table(QUOTA_COLUMNS),
        f"## {SUPERVISING_FILE} (with a `rates: supervising` form)", "",
        "One entry per supervising form, keyed by its code.", "",
        *_table(SUPERVISING_FIELDS),
        f"## {STAFF_FILE} (optional)", "",
        *_table(STAFF_COLUMNS),
        f"## {METHODOLOGY_FILE}", "",
        "The scoring settings: the coefficient preset of each scale (`coefficient_presets`), the options",
        "counted as positive (`positive_options`), the satisfaction scale and items, the maximum points per",
        "criterion and agency kind (`max_points`), the weight of each respondent group (`group_weights`),",
        "the smallest group reported (`n_min`), the validity rule (`validity`) and the online sample sizing",
        "(`online_sample_size`). The keys and their checks are those of the methodology validation",
        "(`survey_service/questionnaires/methodology.py`); the bundled rounds' files comment each one.",
        "Scales and criteria named there are looked for in",
        "`scales.yaml`/`criteria.yaml` of the `--questionnaires` directory and of the questionnaire root two",
        "levels above the round.", "",
        f"## {CITIZENS_FILE} and {POPULATIONS_FILE} (a `kind: citizens` round, instead of {METHODOLOGY_FILE})", "",
        "A citizens' round's forms rate the one agency that served the respondent (`rates: own` online,",
        "`assigned` on paper) and share their items; its `double_entry_rate` and `double_entry_first_sheets`",
        "are 0 (a keyed sheet is sealed into the ballot box at once). `citizens.yaml` names the items:",
        "`definition` (`official` or `working`) and `definition_note` (what the element index is, shown on every",
        "page and export), `elements` (`{code, satisfaction}`: a criterion of `criteria.yaml` and its",
        "satisfaction item), `overall`, `improvements` (one to three items), `screening` (`{item, eligible}`:",
        "the answers that make a respondent count), `field` (the field of the procedure, which receipt codes",
        "record), `demographics`, and optionally `previous_round`. Its targets are round.yaml's `targets`, as in",
        "every round: `indicator: satisfaction` is the overall item's share, an element code that element's share,",
        "`at_least` in %; `survey_points` is refused (a citizens' round has no points). Every item must be in",
        "every form of the round. `populations.csv` has one row per",
        "agency: `agency,population,source`, the people its frame lists (the weight is population over",
        "respondents). See [the citizens' survey](citizens.md).",
    ]
    return "\n".join(lines) + "\n"
