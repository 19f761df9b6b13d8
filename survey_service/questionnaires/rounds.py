"""A round directory (``questionnaires/rounds/<CODE>/``): agencies, quota plan, divisions, staff counts."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from survey_service.questionnaires.forms import CRITERIA_FILE, SCALES_FILE, load_criteria, load_scales
from survey_service.questionnaires.methodology import validate_methodology
from survey_service.questionnaires.readers import (
    CODE_RE,
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
    AGENCY_KINDS,
    CHANNELS,
    AgencyDef,
    Criterion,
    DivisionDef,
    Questionnaire,
    QuestionnaireError,
    QuotaDef,
    RoundDef,
    Scale,
    StaffCount,
    plain,
)

ROUND_FILE = "round.yaml"
AGENCIES_FILE = "agencies.csv"
QUOTAS_FILE = "quotas.csv"
DIVISIONS_FILE = "divisions.yaml"
STAFF_FILE = "staff_counts.csv"
METHODOLOGY_FILE = "methodology.yaml"


_ROUND_REQUIRED = {
    "code", "name", "province", "year", "legal_basis", "opens_on", "closes_on", "portal", "forms", "settings",
}
_SETTINGS = {
    "double_entry_rate": "share",
    "double_entry_first_sheets": "count",
    "unsampled_keyed_count_as_verified": "bool",
    "surplus_in_analysis": "bool",
}


def _load_agencies(path: Path) -> tuple[AgencyDef, ...]:
    agencies: dict[str, AgencyDef] = {}
    for line, row in read_csv(path, ("code", "kind", "name")):
        row_id = str(line)
        code = row["code"]
        if not CODE_RE.match(code):
            raise QuestionnaireError(
                path.name, row_id, f"agency code {code!r} is not a valid code", label="row"
            )
        if code in agencies:
            raise QuestionnaireError(path.name, row_id, f"duplicate agency code {code!r}", label="row")
        if row["kind"] not in AGENCY_KINDS:
            raise QuestionnaireError(
                path.name, row_id, f"unknown kind {row['kind']!r} (expected {', '.join(AGENCY_KINDS)})",
                label="row",
            )
        if not row["name"]:
            raise QuestionnaireError(path.name, row_id, "name is missing", label="row")
        agencies[code] = AgencyDef(code=code, kind=row["kind"], name=row["name"])
    if not agencies:
        raise QuestionnaireError(path.name, None, "no agencies")
    return tuple(agencies.values())


def _load_divisions(path: Path, agencies: Mapping[str, AgencyDef]) -> tuple[DivisionDef, ...]:
    if not path.exists():
        return ()
    name = path.name
    data = read_yaml(path)
    check_keys(data, {"divisions"}, set(), name, None, "file")
    divisions: dict[str, DivisionDef] = {}
    for raw in as_list(data["divisions"], name, None, "divisions"):
        where = str(raw.get("code", "?")) if isinstance(raw, dict) else "?"
        check_keys(raw, {"code", "name", "departments"}, set(), name, where, "", label="division")
        code = as_code(raw["code"], CODE_RE, name, where, "code", label="division")
        if code in divisions:
            raise QuestionnaireError(name, code, "duplicate division code", label="division")
        title = as_text(raw["name"], name, code, "name", label="division")
        departments = as_list(raw["departments"], name, code, "departments", label="division")
        for dep in departments:
            if dep not in agencies:
                raise QuestionnaireError(name, code, f"unknown agency {dep!r}", label="division")
            if agencies[dep].kind != "department":
                raise QuestionnaireError(
                    name, code, f"{dep} is a {agencies[dep].kind} agency, not a department", label="division"
                )
        if len(set(departments)) != len(departments):
            raise QuestionnaireError(name, code, "a department is listed twice", label="division")
        divisions[code] = DivisionDef(code=code, name=title, departments=tuple(departments))
    return tuple(divisions.values())


def quota_kinds(q: Questionnaire) -> tuple[str, ...]:
    """Kinds of agency a form's quota cells (and invitation codes) are per.

    LĐ-CP respondents are division heads of a district who rate the departments supervising their
    division, so its cells are per district (where the respondents are sampled), not per department rated.
    """
    return ("district",) if q.rates == "supervising" else q.target_kinds


def _load_quotas(
    path: Path,
    forms: Mapping[str, Questionnaire],
    agencies: Mapping[str, AgencyDef],
) -> tuple[QuotaDef, ...]:
    name = path.name
    quotas: dict[tuple[str, str | None], QuotaDef] = {}
    for line, row in read_csv(path, ("form", "agency", "channel", "target"), ("note",)):
        row_id = str(line)
        form = row["form"]
        if form not in forms:
            raise QuestionnaireError(
                name, row_id, f"unknown form {form!r} (not a form of this round)", label="row"
            )
        q = forms[form]
        agency = row["agency"] or None
        if q.rates == "matrix":
            if agency is not None:
                raise QuestionnaireError(
                    name, row_id, f"{form} is a matrix form: its single quota cell has a blank agency",
                    label="row",
                )
        else:
            if agency is None:
                raise QuestionnaireError(
                    name, row_id, f"{form} needs an agency in every quota cell", label="row"
                )
            if agency not in agencies:
                raise QuestionnaireError(name, row_id, f"unknown agency {agency!r}", label="row")
            kind = agencies[agency].kind
            if kind not in quota_kinds(q):
                raise QuestionnaireError(
                    name, row_id, f"{form} quota cells are per {' or '.join(quota_kinds(q))} ({agency} is a {kind})",
                    label="row",
                )
        channel = row["channel"]
        if channel not in CHANNELS:
            raise QuestionnaireError(name, row_id, f"unknown channel {channel!r}", label="row")
        if channel != q.channel:
            raise QuestionnaireError(
                name, row_id, f"channel {channel!r} does not match {form}'s channel {q.channel!r}",
                label="row",
            )
        target = csv_int(row["target"], name, line, "target")
        key = (form, agency)
        if key in quotas:
            raise QuestionnaireError(
                name, row_id, f"duplicate quota cell ({form}, {agency or 'blank'})", label="row"
            )
        quotas[key] = QuotaDef(
            form=form, agency=agency, channel=channel, target=target, note=row.get("note", "")
        )
    return tuple(quotas.values())


def _load_staff_counts(
    path: Path,
    forms: Mapping[str, Questionnaire],
    agencies: Mapping[str, AgencyDef],
) -> tuple[StaffCount, ...]:
    if not path.exists():
        return ()
    name = path.name
    counts: dict[tuple[str, str], StaffCount] = {}
    for line, row in read_csv(path, ("agency", "form", "staff", "source")):
        row_id = str(line)
        form, agency = row["form"], row["agency"]
        if form not in forms:
            raise QuestionnaireError(
                name, row_id, f"unknown form {form!r} (not a form of this round)", label="row"
            )
        q = forms[form]
        if q.channel != "online" or q.rates not in ("own", "supervising"):
            raise QuestionnaireError(
                name, row_id, f"staff counts size online per-agency forms only; {form} is not one",
                label="row",
            )
        if agency not in agencies:
            raise QuestionnaireError(name, row_id, f"unknown agency {agency!r}", label="row")
        if agencies[agency].kind not in quota_kinds(q):
            raise QuestionnaireError(
                name, row_id, f"{form} staff counts are per {' or '.join(quota_kinds(q))} ({agency})", label="row"
            )
        staff = csv_int(row["staff"], name, line, "staff")
        if not row["source"]:
            raise QuestionnaireError(
                name, row_id, "source is missing (say where the figure comes from)", label="row"
            )
        if (agency, form) in counts:
            raise QuestionnaireError(name, row_id, f"duplicate staff count ({agency}, {form})", label="row")
        counts[(agency, form)] = StaffCount(agency=agency, form=form, staff=staff, source=row["source"])
    return tuple(counts.values())


def _discover(directory: Path, loader, file_name: str) -> dict:
    """Scales/criteria of the questionnaire root two levels up (questionnaires/rounds/<CODE>/)."""
    candidate = directory.parent.parent / file_name
    if directory.parent.name == "rounds" and candidate.exists():
        return loader(candidate)
    return {}


def load_round(
    directory: str | Path,
    questionnaires: Mapping[str, Questionnaire],
    *,
    scales: Mapping[str, Scale] | None = None,
    criteria: Mapping[str, Criterion] | None = None,
) -> RoundDef:
    """Load and cross-check a round directory against the loaded questionnaires.

    Files: ``round.yaml``, ``agencies.csv`` (code,kind,name), ``quotas.csv``
    (form,agency,channel,target[,note]), ``methodology.yaml``, and optionally ``divisions.yaml`` and
    ``staff_counts.csv`` (agency,form,staff,source). ``scales``/``criteria`` are what the methodology may
    reference; by default those of the questionnaire root (``../../scales.yaml``) plus those the forms use.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise QuestionnaireError(str(directory), None, "round directory not found")
    rname = ROUND_FILE
    data = read_yaml(directory / ROUND_FILE)
    check_keys(data, _ROUND_REQUIRED, set(), rname, None, "")
    code = as_code(data["code"], ROUND_CODE_RE, rname, None, "round code")
    if directory.name != code:
        raise QuestionnaireError(
            rname, None, f"round code {code!r} must match its directory name {directory.name!r}"
        )
    year = as_int(data["year"], rname, None, "year", 2000)
    opens_on = as_date(data["opens_on"], rname, "opens_on")
    closes_on = as_date(data["closes_on"], rname, "closes_on")
    if closes_on < opens_on:
        raise QuestionnaireError(rname, None, "closes_on is before opens_on")
    form_codes = as_list(data["forms"], rname, None, "forms")
    for form in form_codes:
        if not known(form, questionnaires):
            raise QuestionnaireError(rname, None, f"unknown form {form!r} (no such questionnaire)")
    if len(set(form_codes)) != len(form_codes):
        raise QuestionnaireError(rname, None, "a form is listed twice")
    settings = data["settings"]
    check_keys(settings, set(_SETTINGS), set(), rname, "settings", "", label="key")
    for key, kind in _SETTINGS.items():
        value = settings[key]
        if kind == "bool":
            as_bool(value, rname, "settings", key, label="key")
        elif kind == "count":
            as_int(value, rname, "settings", key, 0, label="key")
        elif not 0 <= as_number(value, rname, "settings", key, label="key") <= 1:
            raise QuestionnaireError(rname, "settings", f"{key} must be in [0, 1]", label="key")
    forms = {f: questionnaires[f] for f in form_codes}

    agencies_t = _load_agencies(directory / AGENCIES_FILE)
    agencies = {a.code: a for a in agencies_t}
    divisions = _load_divisions(directory / DIVISIONS_FILE, agencies)
    if any(q.rates == "supervising" for q in forms.values()) and not divisions:
        raise QuestionnaireError(
            DIVISIONS_FILE, None, "the round has a 'supervising' form but no district divisions are defined"
        )
    quotas = _load_quotas(directory / QUOTAS_FILE, forms, agencies)
    staff = _load_staff_counts(directory / STAFF_FILE, forms, agencies)

    known_scales = _discover(directory, load_scales, SCALES_FILE) if scales is None else dict(scales)
    known_criteria = (
        _discover(directory, load_criteria, CRITERIA_FILE) if criteria is None else dict(criteria)
    )
    for q in forms.values():
        known_scales.update({k: v for k, v in q.scales.items() if k not in known_scales})
        known_criteria.update({k: v for k, v in q.criteria.items() if k not in known_criteria})
    methodology = validate_methodology(
        read_yaml(directory / METHODOLOGY_FILE), METHODOLOGY_FILE, forms,
        {a.kind for a in agencies_t}, known_scales, known_criteria,
    )
    return RoundDef(
        code=code,
        name=as_text(data["name"], rname, None, "name"),
        province=as_text(data["province"], rname, None, "province"),
        year=year,
        opens_on=opens_on,
        closes_on=closes_on,
        legal_basis=as_text(data["legal_basis"], rname, None, "legal_basis"),
        portal=as_text(data["portal"], rname, None, "portal"),
        forms=tuple(form_codes),
        settings=plain(settings),
        agencies=agencies_t,
        quotas=quotas,
        divisions=divisions,
        staff_counts=staff,
        methodology=methodology,
        source_dir=str(directory),
        form_versions={f: q.version for f, q in forms.items()},
    )
