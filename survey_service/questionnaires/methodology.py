"""A round's ``methodology.yaml``: coefficient presets, maximum points, group weights, minimum group sizes."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from survey_service.questionnaires.readers import as_int, as_number, check_keys, known
from survey_service.questionnaires.types import (
    Criterion,
    Questionnaire,
    QuestionnaireError,
    Scale,
    plain,
)

#: Coefficient presets (methodology §5.1): linear v=(x-1)/(k-1), ratio v=x/k, top2 v=1 for the top two.
PRESETS = ("linear", "ratio", "top2")


_METHODOLOGY_REQUIRED = {
    "coefficient_presets", "positive_options", "satisfaction_scale", "max_points", "group_weights", "n_min",
    "validity", "online_sample_size",
}
_METHODOLOGY_OPTIONAL = {"satisfaction_items", "reliability"}
#: variance rules for a sampling cell with a single respondent (R's survey.lonely.psu)
LONELY_PSU_RULES = ("certainty", "adjust", "average")


def validate_methodology(
    data: Any,
    file: str,
    forms: Mapping[str, Questionnaire],
    kinds: Sequence[str],
    scales: Mapping[str, Scale],
    criteria: Mapping[str, Criterion],
    covered: Mapping[str, set[str]],
) -> dict:
    """Check the settings against the round: ``kinds`` are its agency kinds, ``covered[form]`` the kinds
    of agency the quota plan brings ``form`` answers about (a group weight needs them)."""
    check_keys(data, _METHODOLOGY_REQUIRED, _METHODOLOGY_OPTIONAL, file, None, "")

    def err(key: str, reason: str) -> QuestionnaireError:
        return QuestionnaireError(file, key, reason, label="setting")

    def mapping(key: str) -> dict:
        value = data[key]
        if not isinstance(value, dict) or not value:
            raise err(key, "must be a non-empty mapping")
        return value

    def known_scale(key: str, code: Any) -> Scale:
        if not known(code, scales):
            raise err(key, f"unknown scale {code!r}")
        return scales[code]

    def known_kind(key: str, kind: Any) -> None:
        if not isinstance(kind, str) or kind not in kinds:
            raise err(key, f"unknown agency kind {kind!r} (the round declares {', '.join(kinds)})")

    def known_form(key: str, form: Any) -> Questionnaire:
        if not known(form, forms):
            raise err(key, f"unknown form {form!r} (not a form of this round)")
        return forms[form]

    used_scales = {s for q in forms.values() for s in q.scales}
    presets = mapping("coefficient_presets")
    for code, preset in presets.items():
        known_scale("coefficient_presets", code)
        if preset not in PRESETS:
            raise err(
                "coefficient_presets", f"{code}: unknown preset {preset!r} (allowed: {', '.join(PRESETS)})"
            )
    missing = sorted(used_scales - set(presets))
    if missing:
        raise err("coefficient_presets", f"no preset for scale(s) {', '.join(missing)}")

    for code, options in mapping("positive_options").items():
        scale = known_scale("positive_options", code)
        if not isinstance(options, list) or not options:
            raise err("positive_options", f"{code}: must be a non-empty list of option codes")
        for opt in options:
            if opt not in scale.valid_codes:
                raise err("positive_options", f"{code}: {opt!r} is not a scored option of the scale")

    known_scale("satisfaction_scale", data["satisfaction_scale"])
    if "satisfaction_items" in data:
        items = data["satisfaction_items"]
        if not isinstance(items, list) or not items:
            raise err("satisfaction_items", "must be a non-empty list of item codes")
        for code in items:
            found = [q.item(code) for q in forms.values() if isinstance(code, str) and code in q.item_codes]
            if not found:
                raise err("satisfaction_items", f"unknown item {code!r} (in no form of this round)")
            if any(i.scale != data["satisfaction_scale"] for i in found):
                raise err("satisfaction_items", f"item {code} is not on the satisfaction scale")

    max_points = mapping("max_points")
    for kind, table in max_points.items():
        known_kind("max_points", kind)
        if not isinstance(table, dict) or not table:
            raise err("max_points", f"{kind}: must map criterion codes to points")
        for crit, points in table.items():
            if crit not in criteria:
                raise err("max_points", f"{kind}: unknown criterion {crit!r}")
            if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
                raise err(
                    "max_points", f"{kind}.{crit}: points must be a non-negative number, got {points!r}"
                )

    weights = mapping("group_weights")
    for kind, table in weights.items():
        known_kind("group_weights", kind)
        if not isinstance(table, dict) or not table:
            raise err("group_weights", f"{kind}: must map form codes to weights")
        for form, weight in table.items():
            q = known_form("group_weights", form)
            if kind not in q.rated_kinds:
                raise err("group_weights", f"{kind}: form {form} does not rate {kind} agencies")
            if kind not in covered[form]:
                raise err(
                    "group_weights", f"{kind}: form {form} has no quota cell for {kind} agencies in quotas.csv, "
                    "so its weight could never count (drop the weight or plan the cells)",
                )
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise err(
                    "group_weights", f"{kind}.{form}: weight must be a non-negative number, got {weight!r}"
                )
        if sum(table.values()) <= 0:
            raise err(
                "group_weights", f"{kind}: weights sum to {sum(table.values())}; they must sum to more than 0"
            )
    for key, table in (("max_points", max_points), ("group_weights", weights)):
        missing = [kind for kind in kinds if kind not in table]
        if missing:
            raise err(key, f"no entry for agency kind(s) {', '.join(missing)} of this round")

    n_min = mapping("n_min")
    for form, value in n_min.items():
        known_form("n_min", form)
        as_int(value, file, "n_min", f"{form}", 1, label="setting")
    missing = [f for f in forms if f not in n_min]
    if missing:
        raise err("n_min", f"no minimum for form(s) {', '.join(missing)}")

    validity = data["validity"]
    check_keys(validity, {"min_answered_share"}, set(), file, "validity", "", label="setting")
    share = as_number(validity["min_answered_share"], file, "validity", "min_answered_share", label="setting")
    if not 0 < share <= 1:
        raise err("validity", f"min_answered_share must be in (0, 1], got {share}")

    reliability = data.get("reliability", {})
    check_keys(reliability, set(), {"max_half_width", "lonely_psu"}, file, "reliability", "", label="setting")
    if reliability.get("lonely_psu", "adjust") not in LONELY_PSU_RULES:
        raise err("reliability", f"lonely_psu must be one of {', '.join(LONELY_PSU_RULES)}, "
                                 f"got {reliability['lonely_psu']!r}")
    if "max_half_width" in reliability:
        half = as_number(reliability["max_half_width"], file, "reliability", "max_half_width", label="setting")
        if not 0 < half <= 1:
            raise err("reliability", f"max_half_width must be in (0, 1], got {half}")

    sample = data["online_sample_size"]
    check_keys(sample, {"margin", "floor"}, set(), file, "online_sample_size", "", label="setting")
    margin = as_number(sample["margin"], file, "online_sample_size", "margin", label="setting")
    if not 0 < margin < 1:
        raise err("online_sample_size", f"margin must be in (0, 1), got {margin}")
    as_int(sample["floor"], file, "online_sample_size", "floor", 1, label="setting")
    return plain(data)
