"""Scales, criteria, the form registry and the questionnaires (one YAML file per form code)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from survey_service.questionnaires.readers import (
    CODE_RE,
    FORM_CODE_RE,
    KIND_RE,
    OPTION_CODE_RE,
    as_bool,
    as_code,
    as_int,
    as_list,
    as_number,
    as_text,
    check_keys,
    known,
    nfc,
    read_yaml,
    type_name,
)
from survey_service.questionnaires.types import (
    CHANNELS,
    ITEM_TYPES,
    RATES,
    RENAMED_KEYS,
    Criterion,
    FrozenMap,
    Item,
    Questionnaire,
    QuestionnaireError,
    Scale,
    ScaleOption,
    Section,
    file_name_for,
    version_of,
)

SCALES_FILE = "scales.yaml"
CRITERIA_FILE = "criteria.yaml"
FORMS_FILE = "forms.yaml"
_SUPPORT_FILES = (SCALES_FILE, CRITERIA_FILE, FORMS_FILE)


def parse_scales(raw: Any, file: str) -> dict[str, Scale]:
    if not isinstance(raw, dict) or not raw:
        raise QuestionnaireError(file, None, "phải ghi các thang đo theo mã thang đo (mã: nội dung), không để trống")
    scales = {}
    for code, body in raw.items():
        code = as_code(code, CODE_RE, file, str(code), "scale code", label="scale")
        check_keys(body, {"title", "options"}, set(), file, code, "", label="scale")
        title = as_text(body["title"], file, code, "title", label="scale")
        options = []
        seen = set()
        for raw_opt in as_list(body["options"], file, code, "options", label="scale"):
            options.append(_parse_option(raw_opt, file, code, seen))
        if len([o for o in options if not o.excluded]) < 2:
            raise QuestionnaireError(
                file, code, "cần ít nhất hai phương án có điểm (không tính phương án loại trừ)", label="scale"
            )
        scales[code] = Scale(code=code, title=title, options=tuple(options))
    return scales


def _parse_option(raw: Any, file: str, scale: str, seen: set[str]) -> ScaleOption:
    if not isinstance(raw, dict):
        raise QuestionnaireError(
            file, scale, f"mỗi phương án phải là một nhóm mục khóa: giá trị, nhưng là {type_name(raw)}", label="scale"
        )
    label_where = f"phương án {raw.get('code', '?')!s}"
    optional = {"coefficient", "positive", "excluded"}
    check_keys(raw, {"code", "label"}, optional, file, scale, label_where, "scale")
    code = as_code(raw["code"], OPTION_CODE_RE, file, scale, f"{label_where}: code", label="scale")
    label_where = f"phương án {code!r}:"
    if code in seen:
        raise QuestionnaireError(file, scale, f"mã phương án {code!r} bị trùng", label="scale")
    seen.add(code)
    label = as_text(raw["label"], file, scale, f"{label_where} label", label="scale")
    excluded = as_bool(raw.get("excluded", False), file, scale, f"{label_where} excluded", label="scale")
    positive = as_bool(raw.get("positive", False), file, scale, f"{label_where} positive", label="scale")
    coefficient = raw.get("coefficient")
    if excluded:
        if coefficient is not None:
            raise QuestionnaireError(
                file, scale, f"{label_where} phương án loại trừ phải có coefficient: null", label="scale"
            )
        if positive:
            raise QuestionnaireError(
                file, scale, f"{label_where} phương án loại trừ không thể là tích cực (positive)", label="scale"
            )
    else:
        if coefficient is None:
            raise QuestionnaireError(file, scale, f"{label_where} thiếu hệ số (coefficient)", label="scale")
        coefficient = as_number(coefficient, file, scale, f"{label_where} coefficient", label="scale")
        if not 0.0 <= coefficient <= 1.0:
            raise QuestionnaireError(
                file, scale, f"{label_where} hệ số {coefficient} phải nằm trong khoảng từ 0 đến 1", label="scale"
            )
    return ScaleOption(code=code, label=label, coefficient=coefficient, positive=positive, excluded=excluded)


def parse_criteria(raw: Any, file: str) -> dict[str, Criterion]:
    if not isinstance(raw, dict) or not raw:
        raise QuestionnaireError(
            file, None, "phải ghi các lĩnh vực theo mã lĩnh vực (mã: {name: ...}), không để trống"
        )
    criteria = {}
    for code, body in raw.items():
        code = as_code(code, CODE_RE, file, str(code), "criterion code", label="criterion")
        check_keys(body, {"name"}, set(), file, code, "", label="criterion")
        name = as_text(body["name"], file, code, "name", label="criterion")
        criteria[code] = Criterion(code=code, name=name)
    return criteria


def load_scales(path: str | Path) -> dict[str, Scale]:
    """Read ``scales.yaml``: ``scales: {CODE: {title, options: [{code, label, coefficient, …}]}}``."""
    path = Path(path)
    data = read_yaml(path)
    check_keys(data, {"scales"}, set(), path.name, None, "tệp")
    return parse_scales(data["scales"], path.name)


def load_criteria(path: str | Path) -> dict[str, Criterion]:
    """Read ``criteria.yaml``: ``criteria: {A1: {name: …}, …}``."""
    path = Path(path)
    data = read_yaml(path)
    check_keys(data, {"criteria"}, set(), path.name, None, "tệp")
    return parse_criteria(data["criteria"], path.name)


def load_form_codes(path: str | Path) -> tuple[str, ...]:
    """Read ``forms.yaml``: the declared form codes, spelled exactly (with Đ)."""
    path = Path(path)
    data = read_yaml(path)
    check_keys(data, {"forms"}, set(), path.name, None, "tệp")
    codes: list[str] = []
    files: dict[str, str] = {}
    for raw in as_list(data["forms"], path.name, None, "forms"):
        code = as_code(raw, FORM_CODE_RE, path.name, str(raw), "form code", label="form")
        if code in codes:
            raise QuestionnaireError(path.name, code, "khai báo hai lần", label="form")
        fname = file_name_for(code)
        if fname in files:
            raise QuestionnaireError(
                path.name, code, f"chỉ khác {files[fname]} ở chữ Đ/D hoặc dấu "
                f"(cả hai đều thành tệp {fname})", label="form"
            )
        files[fname] = code
        codes.append(code)
    return tuple(codes)


_Q_REQUIRED = {
    "code", "title", "channel", "respondent_group", "rates", "rated_kinds", "instructions", "sections",
}
_ITEM_REQUIRED = {"code", "text"}
_ITEM_OPTIONAL = {"type", "scale", "criterion", "required", "max_length"}


def _build_questionnaire(
    raw: Any, *, scales: Mapping[str, Scale], criteria: Mapping[str, Criterion], file: str, source: str
) -> Questionnaire:
    check_keys(raw, _Q_REQUIRED, set(), file, None, "")
    code = as_code(raw["code"], FORM_CODE_RE, file, None, "form code")
    title = as_text(raw["title"], file, None, "title")
    respondent_group = as_text(raw["respondent_group"], file, None, "respondent_group")
    instructions = as_text(raw["instructions"], file, None, "instructions")
    channel = raw["channel"]
    if channel not in CHANNELS:
        raise QuestionnaireError(file, None, f"kênh (channel) {channel!r} phải là {' hoặc '.join(CHANNELS)}")
    rates = raw["rates"]
    if rates not in RATES:
        raise QuestionnaireError(file, None, f"rates {rates!r} phải là một trong {', '.join(RATES)}")
    kinds = as_list(raw["rated_kinds"], file, None, "rated_kinds")
    for kind in kinds:
        as_code(kind, KIND_RE, file, None, "rated kind")
    if len(set(kinds)) != len(kinds):
        raise QuestionnaireError(file, None, "rated_kinds ghi một loại cơ quan hai lần")
    # The channel follows from how the rated agency is fixed: an invitation (own) is an online link, a
    # pre-assigned agency is printed on a paper sheet; choosing one's division is a step of the online form.
    if rates == "own" and channel != "online":
        raise QuestionnaireError(
            file, None, "rates 'own' (cơ quan được đánh giá do mã mời xác định) cần channel online"
        )
    if rates == "assigned" and channel != "paper":
        raise QuestionnaireError(
            file, None, "rates 'assigned' (cơ quan được đánh giá in sẵn trên phiếu) cần channel paper"
        )
    if rates == "supervising" and channel != "online":
        raise QuestionnaireError(
            file, None, "rates 'supervising' (người trả lời chọn đơn vị của mình) cần channel online"
        )

    sections = []
    seen_items: set[str] = set()
    for index, raw_section in enumerate(as_list(raw["sections"], file, None, "sections"), start=1):
        sections.append(_build_section(raw_section, index, scales, criteria, file, seen_items))
    if not any(item.kind == "scale" for s in sections for item in s.items):
        raise QuestionnaireError(file, None, "mẫu phiếu không có câu hỏi đánh giá theo thang đo nào")

    used_scales = sorted({i.scale for s in sections for i in s.items if i.scale})
    used_criteria = sorted({i.criterion for s in sections for i in s.items if i.criterion})
    used_criteria += sorted({s.criterion for s in sections if s.criterion} - set(used_criteria))
    fields = dict(
        code=code,
        title=title,
        channel=channel,
        respondent_group=respondent_group,
        rates=rates,
        rated_kinds=tuple(kinds),
        instructions=instructions,
        sections=tuple(sections),
        scales=FrozenMap((c, scales[c]) for c in used_scales),
        criteria=FrozenMap((c, criteria[c]) for c in sorted(used_criteria)),
    )
    draft = Questionnaire(**fields, version="", source=source)
    return Questionnaire(**fields, version=version_of(draft.definition()), source=source)


def _build_section(
    raw: Any,
    index: int,
    scales: Mapping[str, Scale],
    criteria: Mapping[str, Criterion],
    file: str,
    seen_items: set[str],
) -> Section:
    where = str(index)
    check_keys(raw, {"title", "items"}, {"criterion"}, file, where, "", label="section")
    title = as_text(raw["title"], file, where, "title", label="section")
    criterion = raw.get("criterion")
    if criterion is not None and not known(criterion, criteria):
        raise QuestionnaireError(file, where, f"không có lĩnh vực {criterion!r}", label="section")
    items = []
    for n, raw_item in enumerate(as_list(raw["items"], file, where, "items", label="section"), start=1):
        item = _build_item(raw_item, f"{index}.{n}", criterion, scales, criteria, file)
        if item.code in seen_items:
            raise QuestionnaireError(file, item.code, "mã câu hỏi bị trùng")
        seen_items.add(item.code)
        items.append(item)
    return Section(title=title, criterion=criterion, items=tuple(items))


def _build_item(
    raw: Any,
    position: str,
    section_criterion: str | None,
    scales: Mapping[str, Scale],
    criteria: Mapping[str, Criterion],
    file: str,
) -> Item:
    name = str(raw.get("code", f"#{position}")) if isinstance(raw, dict) else f"#{position}"
    check_keys(raw, _ITEM_REQUIRED, _ITEM_OPTIONAL, file, name, "")
    code = as_code(raw["code"], CODE_RE, file, name, "code")
    text = as_text(raw["text"], file, code, "text")
    kind = raw.get("type", "scale")
    if kind is None:
        kind = "scale"
    if kind not in ITEM_TYPES:
        raise QuestionnaireError(file, code, f"loại câu (type) {kind!r} phải là {' hoặc '.join(ITEM_TYPES)}")
    scale = raw.get("scale")
    explicit_criterion = raw.get("criterion")
    max_length = raw.get("max_length")
    if kind == "text":
        if scale is not None:
            raise QuestionnaireError(file, code, "câu trả lời bằng chữ (text) không có thang đo")
        if explicit_criterion is not None:
            raise QuestionnaireError(file, code, "câu trả lời bằng chữ (text) không tính điểm nên không "
                                                 "thuộc lĩnh vực nào")
        criterion = None
        if max_length is not None:
            max_length = as_int(max_length, file, code, "max_length", 1)
        required = as_bool(raw.get("required", False), file, code, "required")
    else:
        if scale is None:
            raise QuestionnaireError(file, code, "câu đánh giá cần thang đo (scale)")
        if not isinstance(scale, str) or scale not in scales:
            raise QuestionnaireError(file, code, f"không có thang đo {scale!r}")
        if max_length is not None:
            raise QuestionnaireError(file, code, "max_length chỉ dùng cho câu trả lời bằng chữ (text)")
        criterion = explicit_criterion if explicit_criterion is not None else section_criterion
        if criterion is None:
            raise QuestionnaireError(
                file, code, "câu đánh giá cần lĩnh vực (criterion), ghi ở câu hoặc ở phần chứa nó"
            )
        if not known(criterion, criteria):
            raise QuestionnaireError(file, code, f"không có lĩnh vực {criterion!r}")
        required = as_bool(raw.get("required", True), file, code, "required")
    return Item(
        code=code, text=text, kind=kind, scale=scale, criterion=criterion, required=required,
        max_length=max_length,
    )


def load_questionnaire(
    path: str | Path, *, scales: Mapping[str, Scale], criteria: Mapping[str, Criterion]
) -> Questionnaire:
    """Load one form file; its name must be ``file_name_for(code)``."""
    path = Path(path)
    raw = read_yaml(path)
    for new, old in RENAMED_KEYS.items():
        if isinstance(raw, dict) and old in raw:
            raise QuestionnaireError(
                path.name, None, f"mục {old!r} nay gọi là {new!r} (cùng nội dung: chỉ đổi tên mục; "
                "mẫu phiếu giữ nguyên phiên bản)",
            )
    q = _build_questionnaire(raw, scales=scales, criteria=criteria, file=path.name, source=str(path))
    expected = file_name_for(q.code)
    if path.name != expected:
        raise QuestionnaireError(path.name, None, f"mẫu phiếu mã {q.code!r} phải nằm trong tệp {expected}")
    return q


def load_questionnaires(directory: str | Path) -> dict[str, Questionnaire]:
    """Load every form of a questionnaire directory, keyed by form code (in ``forms.yaml`` order).

    Every ``*.yaml`` file other than scales/criteria/forms must be the file of a declared code and
    must state exactly that code; every declared code must have its file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise QuestionnaireError(str(directory), None, "không tìm thấy thư mục mẫu phiếu")
    scales = load_scales(directory / SCALES_FILE)
    criteria = load_criteria(directory / CRITERIA_FILE)
    declared = load_form_codes(directory / FORMS_FILE)
    by_file = {file_name_for(code): code for code in declared}
    loaded: dict[str, Questionnaire] = {}
    for path in sorted(directory.glob("*.yml")):
        raise QuestionnaireError(path.name, None, "tệp mẫu phiếu phải có đuôi .yaml")
    for path in sorted(directory.glob("*.yaml")):
        if path.name in _SUPPORT_FILES:
            continue
        if path.name not in by_file:
            raise QuestionnaireError(
                path.name, None, f"tệp không thuộc mã mẫu phiếu nào khai báo trong {FORMS_FILE}"
            )
        q = load_questionnaire(path, scales=scales, criteria=criteria)
        if q.code != by_file[path.name]:
            raise QuestionnaireError(
                path.name, None,
                f"mã {q.code!r} không phải mã đã khai báo "
                f"({FORMS_FILE} khai báo {by_file[path.name]!r})",
            )
        loaded[q.code] = q
    missing = [code for code in declared if code not in loaded]
    if missing:
        raise QuestionnaireError(
            FORMS_FILE, None,
            "mẫu phiếu đã khai báo nhưng không có tệp: " + ", ".join(f"{c} ({file_name_for(c)})" for c in missing),
        )
    return {code: loaded[code] for code in declared}


def questionnaire_from_definition(
    d: Mapping, *, version: str | None = None, source: str = "<definition>"
) -> Questionnaire:
    """Rebuild a questionnaire from a stored :meth:`definition` snapshot.

    The snapshot must be exactly normalised (as written by :meth:`definition`, or before a key of
    :data:`~survey_service.questionnaires.types.RENAMED_KEYS` was renamed, under its old name); if
    ``version`` is given it must match the recomputed one. Raises :class:`QuestionnaireError` otherwise.
    """
    d = nfc(d)
    name = f"<definition {d.get('code', '?')}>" if isinstance(d, dict) else "<definition>"
    if not isinstance(d, dict):
        raise QuestionnaireError(name, None, "definition must be a mapping")
    for new, old in RENAMED_KEYS.items():
        if old in d:
            if new in d:
                raise QuestionnaireError(name, None, f"definition has both {old!r} and {new!r}")
            d = {new if key == old else key: value for key, value in d.items()}
    check_keys(d, _Q_REQUIRED | {"scales", "criteria"}, set(), name, None, "")
    scales = parse_scales(d["scales"], name)
    criteria = parse_criteria(d["criteria"], name)
    body = {k: v for k, v in d.items() if k not in ("scales", "criteria")}
    q = _build_questionnaire(body, scales=scales, criteria=criteria, file=name, source=source)
    if q.definition() != d:
        raise QuestionnaireError(name, None, "definition does not round-trip (not in normalised form)")
    if version is not None and q.version != version:
        raise QuestionnaireError(name, None, f"version mismatch: stored {version}, computed {q.version}")
    return q
