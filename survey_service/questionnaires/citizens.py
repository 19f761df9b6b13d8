"""A citizens' round's ``citizens.yaml`` and ``populations.csv``: which items of its forms are the five
elements' satisfaction items, the overall item, the improvements wanted, the screening and the
demographics; and the population of each agency's cell, from which the analysis weights.

A citizens' round (``kind: citizens`` in round.yaml) has these two files in place of ``methodology.yaml``:
it is not scored into PAR points, it is counted into shares of satisfied respondents
(:mod:`analysis.citizens`).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from survey_service.questionnaires.readers import as_list, as_text, check_keys, csv_int, read_csv
from survey_service.questionnaires.types import AgencyDef, Questionnaire, QuestionnaireError

CITIZENS_FILE = "citizens.yaml"
POPULATIONS_FILE = "populations.csv"
#: What an element index is: "official" once checked against the formula of Quyết định 1001/QĐ-BNV,
#: "working" (our working definition: the share of valid answers that are satisfied) until then.
DEFINITIONS = ("official", "working")
_REQUIRED = {"definition", "definition_note", "elements", "overall", "improvements", "screening", "field",
             "demographics"}
_OPTIONAL = {"previous_round"}


def validate_citizens(data: Any, forms: Mapping[str, Questionnaire], criteria: Mapping[str, Any]) -> dict:
    """Check ``citizens.yaml`` against the round's forms: every item it names is in every form, satisfaction
    items are on a scale with satisfied (positive) options. Returns the plain settings."""
    file = CITIZENS_FILE
    if isinstance(data, dict) and "targets" in data:
        raise QuestionnaireError(file, "targets", "targets are set in round.yaml, as in every round (indicator "
                                 "satisfaction or an element code, at_least in %)", label="key")
    check_keys(data, _REQUIRED, _OPTIONAL, file, None, "")

    def err(key: str, reason: str) -> QuestionnaireError:
        return QuestionnaireError(file, key, reason, label="key")

    if data["definition"] not in DEFINITIONS:
        raise err("definition", f"must be one of {', '.join(DEFINITIONS)}")
    as_text(data["definition_note"], file, "definition_note", "definition_note", label="key")

    def item(key: str, code: Any, *, satisfaction: bool = False) -> str:
        if not isinstance(code, str):
            raise err(key, f"{code!r} is not an item code")
        for form in forms.values():
            if code not in form.item_codes:
                raise err(key, f"item {code} is not in form {form.code}")
            found = form.item(code)
            if found.kind != "scale":
                raise err(key, f"item {code} of {form.code} is free text, not a scale item")
            if satisfaction and not form.scales[found.scale].positive_codes:
                raise err(key, f"item {code} of {form.code}: scale {found.scale} has no satisfied option")
        return code

    elements = []
    for n, raw in enumerate(as_list(data["elements"], file, "elements", "elements", label="key"), 1):
        check_keys(raw, {"code", "satisfaction"}, set(), file, f"elements[{n}]", "", label="key")
        if raw["code"] not in criteria:
            raise err(f"elements[{n}]", f"unknown criterion {raw['code']!r} (criteria.yaml)")
        elements.append({"code": raw["code"], "name": criteria[raw["code"]].name,
                         "satisfaction": item(f"elements[{n}]", raw["satisfaction"], satisfaction=True)})
    if len({e["code"] for e in elements}) != len(elements):
        raise err("elements", "an element is listed twice")
    improvements = [item("improvements", c) for c in as_list(data["improvements"], file, "improvements",
                                                             "improvements", label="key")]
    if not 1 <= len(improvements) <= 3:
        raise err("improvements", "one to three items (the improvements wanted, up to three)")
    screening = data["screening"]
    check_keys(screening, {"item", "eligible"}, set(), file, "screening", "", label="key")
    item("screening", screening["item"])
    eligible = [str(c) for c in as_list(screening["eligible"], file, "screening", "eligible", label="key")]
    for form in forms.values():
        codes = form.scales[form.item(screening["item"]).scale].codes
        if not set(eligible) <= set(codes):
            raise err("screening", f"eligible answers {eligible} are not all options of {form.code}'s "
                      f"{screening['item']}")
    return {
        "definition": data["definition"], "definition_note": data["definition_note"],
        "elements": elements, "overall": item("overall", data["overall"], satisfaction=True),
        "improvements": improvements, "screening": {"item": screening["item"], "eligible": eligible},
        "field": item("field", data["field"]),
        "demographics": [item("demographics", c) for c in as_list(data["demographics"], file, "demographics",
                                                                   "demographics", label="key")],
        "previous_round": data.get("previous_round"),
    }


def load_populations(path: Path, agencies: Mapping[str, AgencyDef]) -> dict[str, dict]:
    """``populations.csv`` (agency,population,source): the people each agency served in the period (its
    frame's size), ``N`` of the weight ``N / n``. Every agency of the round needs one."""
    name = path.name
    if not path.exists():
        raise QuestionnaireError(name, None, "a citizens' round needs the population of each agency's cell")
    found: dict[str, dict] = {}
    for line, row in read_csv(path, ("agency", "population", "source")):
        agency = row["agency"]
        if agency not in agencies:
            raise QuestionnaireError(name, str(line), f"unknown agency {agency!r}", label="row")
        if agency in found:
            raise QuestionnaireError(name, str(line), f"agency {agency} is listed twice", label="row")
        population = csv_int(row["population"], name, line, "population")
        if population < 1:
            raise QuestionnaireError(name, str(line), "population must be at least 1", label="row")
        if not row["source"]:
            raise QuestionnaireError(name, str(line), "source is missing (say where the figure comes from)",
                                     label="row")
        found[agency] = {"population": population, "source": row["source"]}
    missing = sorted(set(agencies) - set(found))
    if missing:
        raise QuestionnaireError(name, None, f"no population for {', '.join(missing)}")
    return found
