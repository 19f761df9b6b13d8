"""A round's ``methodology.yaml``: the scoring settings of :mod:`analysis` under its own key names, plus the
online sample-size rule.

This module checks what only the round knows (its scales, criteria, agency kinds, forms and quota cells);
what the values mean (presets, lonely-PSU rules, shares and thresholds) is checked by
:func:`analysis.validate_settings`, which the round loader calls (this data layer imports no statistics).
"""
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

#: The keys of :data:`analysis.SETTINGS_KEYS` and the validity share (a test keeps them in step), and the
#: sample-size rule; the optional ones are analysis's too, but for satisfaction_items.
_METHODOLOGY_REQUIRED = {
    "coefficients", "positive", "satisfaction_scale", "max_points", "group_weights", "min_respondents",
    "min_answered_share", "online_sample_size",
}
_METHODOLOGY_OPTIONAL = {"satisfaction_items", "max_half_width", "lonely_psu", "precision", "min_variance_responses"}
#: Names a round stored before the settings took the analysis's names may carry, and their names now.
_RENAMED = {"coefficient_presets": "coefficients", "positive_options": "positive", "n_min": "min_respondents"}
_NESTED = {"validity": ("min_answered_share",), "reliability": ("max_half_width", "lonely_psu")}


def current_names(methodology: Mapping[str, Any] | None) -> dict:
    """A stored round's methodology under today's key names (a round loaded under the old names keeps
    working); settings already under today's names come back unchanged."""
    out: dict = {}
    for key, value in (methodology or {}).items():
        if key in _NESTED and isinstance(value, Mapping):
            out.update({k: value[k] for k in _NESTED[key] if k in value})
        else:
            out[_RENAMED.get(key, key)] = value
    return out


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
            raise err(key, "phải là một nhóm mục khóa: giá trị, không để trống")
        return value

    def known_scale(key: str, code: Any) -> Scale:
        if not known(code, scales):
            raise err(key, f"không có thang đo {code!r}")
        return scales[code]

    def known_kind(key: str, kind: Any) -> None:
        if not isinstance(kind, str) or kind not in kinds:
            raise err(key, f"không có loại cơ quan {kind!r} (đợt khai báo: {', '.join(kinds)})")

    def known_form(key: str, form: Any) -> Questionnaire:
        if not known(form, forms):
            raise err(key, f"không có mẫu phiếu {form!r} trong đợt này")
        return forms[form]

    used_scales = {s for q in forms.values() for s in q.scales}
    presets = mapping("coefficients")
    for code in presets:
        known_scale("coefficients", code)
    missing = sorted(used_scales - set(presets))
    if missing:
        raise err("coefficients", f"chưa có cách quy đổi điểm cho thang đo {', '.join(missing)}")

    for code, options in mapping("positive").items():
        scale = known_scale("positive", code)
        if not isinstance(options, list) or not options:
            raise err("positive", f"{code}: phải là danh sách mã phương án, không để trống")
        for opt in options:
            if opt not in scale.valid_codes:
                raise err("positive", f"{code}: {opt!r} không phải phương án có điểm của thang đo")

    known_scale("satisfaction_scale", data["satisfaction_scale"])
    if "satisfaction_items" in data:
        items = data["satisfaction_items"]
        if not isinstance(items, list) or not items:
            raise err("satisfaction_items", "phải là danh sách mã câu hỏi, không để trống")
        for code in items:
            found = [q.item(code) for q in forms.values() if isinstance(code, str) and code in q.item_codes]
            if not found:
                raise err("satisfaction_items", f"không có câu hỏi {code!r} trong mẫu phiếu nào của đợt")
            if any(i.scale != data["satisfaction_scale"] for i in found):
                raise err("satisfaction_items", f"câu {code} không dùng thang đo mức độ hài lòng (satisfaction_scale)")

    max_points = mapping("max_points")
    for kind, table in max_points.items():
        known_kind("max_points", kind)
        if not isinstance(table, dict) or not table:
            raise err("max_points", f"{kind}: phải ghi điểm tối đa theo mã lĩnh vực")
        for crit in table:
            if crit not in criteria:
                raise err("max_points", f"{kind}: không có lĩnh vực {crit!r}")

    weights = mapping("group_weights")
    for kind, table in weights.items():
        known_kind("group_weights", kind)
        if not isinstance(table, dict) or not table:
            raise err("group_weights", f"{kind}: phải ghi trọng số theo mã mẫu phiếu")
        for form in table:
            q = known_form("group_weights", form)
            if kind not in q.rated_kinds:
                raise err("group_weights", f"{kind}: mẫu {form} không đánh giá cơ quan loại {kind}")
            if kind not in covered[form]:
                raise err(
                    "group_weights", f"{kind}: mẫu {form} không có ô chỉ tiêu nào cho cơ quan loại {kind} "
                                     "trong quotas.csv, "
                    "nên trọng số này không bao giờ được dùng (bỏ trọng số hoặc thêm ô chỉ tiêu)",
                )
    for key, table in (("max_points", max_points), ("group_weights", weights)):
        missing = [kind for kind in kinds if kind not in table]
        if missing:
            raise err(key, f"thiếu loại cơ quan {', '.join(missing)} của đợt")

    n_min = mapping("min_respondents")
    for form in n_min:
        known_form("min_respondents", form)
    missing = [f for f in forms if f not in n_min]
    if missing:
        raise err("min_respondents", f"chưa có số người trả lời tối thiểu cho mẫu {', '.join(missing)}")

    sample = data["online_sample_size"]
    check_keys(sample, {"margin", "floor"}, set(), file, "online_sample_size", "", label="setting")
    margin = as_number(sample["margin"], file, "online_sample_size", "margin", label="setting")
    if not 0 < margin < 1:
        raise err("online_sample_size", f"margin phải lớn hơn 0 và nhỏ hơn 1, nhưng là {margin}")
    as_int(sample["floor"], file, "online_sample_size", "floor", 1, label="setting")
    return plain(data)
