"""Strict readers for the data files: YAML without duplicate keys, CSV with a checked header, typed values.

Every reader raises :class:`QuestionnaireError` naming the file, the item (or row) and the reason; all text
comes back NFC-normalised.
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from survey_service.dates import DateError, parse_iso_date
from survey_service.questionnaires.types import QuestionnaireError

FORM_CODE_RE = re.compile(r"^[A-ZĐ]+(?:-[A-ZĐ]+)*$")
CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
OPTION_CODE_RE = re.compile(r"^[0-9A-Z]{1,3}$")
ROUND_CODE_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*$")
#: Agency kind codes are declared by each round (``department``, ``commune``, ...).
KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def nfc(obj: Any) -> Any:
    if isinstance(obj, str):
        return unicodedata.normalize("NFC", obj)
    if isinstance(obj, Mapping):
        return {nfc(k): nfc(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nfc(v) for v in obj]
    return obj


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (plain safe_load keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            duplicate = False  # unhashable key: SafeLoader raises its own error below
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark,
            )
        if not isinstance(key, list):
            seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise QuestionnaireError(name, None, "không tìm thấy tệp") from None
    except UnicodeDecodeError as exc:
        raise QuestionnaireError(name, None, f"không phải văn bản UTF-8 ({exc.reason})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise QuestionnaireError(name, None, f"sai cú pháp YAML: {reason}") from None
    normalised = nfc(data)
    _check_nfc_collisions(data, name)
    return normalised


def _check_nfc_collisions(obj: Any, name: str) -> None:
    if isinstance(obj, dict):
        keys = [unicodedata.normalize("NFC", k) if isinstance(k, str) else k for k in obj]
        if len(set(keys)) != len(keys):
            raise QuestionnaireError(name, None, "hai mục chỉ khác nhau ở cách mã hóa Unicode của chữ có dấu")
        for v in obj.values():
            _check_nfc_collisions(v, name)
    elif isinstance(obj, list):
        for v in obj:
            _check_nfc_collisions(v, name)


def check_keys(
    d: Any,
    required: set[str],
    optional: set[str],
    file: str,
    item: str | None,
    what: str,
    label: str = "item",
) -> None:
    """Raise unless ``d`` is a mapping with all ``required`` keys and nothing outside required|optional."""
    where = f"{what}: " if what else ""
    if not isinstance(d, dict):
        raise QuestionnaireError(file, item, f"{where}phải gồm các mục dạng khóa: giá trị, nhưng là "
                                             f"{type_name(d)}", label=label)
    unknown = sorted(str(k) for k in d if k not in required | optional)
    if unknown:
        raise QuestionnaireError(
            file, item, f"{where}mục không được hỗ trợ (unknown key): {', '.join(unknown)}", label=label
        )
    missing = sorted(k for k in required if k not in d)
    if missing:
        raise QuestionnaireError(
            file, item, f"{where}thiếu mục bắt buộc (missing key): {', '.join(missing)}", label=label
        )


def known(value: Any, mapping: Mapping) -> bool:
    """``value in mapping`` that is False (not TypeError) for unhashable YAML values."""
    return isinstance(value, str) and value in mapping


#: What a YAML value is, in the words of a message to the round's author.
_TYPE_NAMES = {type(None): "trống", bool: "true/false", int: "số nguyên", float: "số", str: "chữ",
               list: "danh sách", dict: "nhóm mục khóa: giá trị", dt.date: "ngày"}


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def as_text(value: Any, file: str, item: str | None, key: str, label: str = "item") -> str:
    if not isinstance(value, str):
        raise QuestionnaireError(file, item, f"{key} phải là chữ, nhưng là {type_name(value)}", label=label)
    value = value.strip()
    if not value:
        raise QuestionnaireError(file, item, f"{key} không được để trống", label=label)
    return value


def as_code(
    value: Any, pattern: re.Pattern, file: str, item: str | None, key: str, label: str = "item"
) -> str:
    if not isinstance(value, str):
        hint = ' (đặt trong dấu nháy, ví dụ "4")' if isinstance(value, (int, float, bool)) else ""
        raise QuestionnaireError(
            file, item, f"{key} phải là chữ{hint}, nhưng là {type_name(value)}", label=label
        )
    if not pattern.match(value):
        raise QuestionnaireError(
            file, item, f"{key} {value!r} không phải mã hợp lệ (chữ, số, dấu gạch ngang)", label=label
        )
    return value


def as_bool(value: Any, file: str, item: str | None, key: str, label: str = "item") -> bool:
    if not isinstance(value, bool):
        raise QuestionnaireError(
            file, item, f"{key} phải là true (có) hoặc false (không), nhưng là {value!r}", label=label
        )
    return value


def as_number(value: Any, file: str, item: str | None, key: str, label: str = "item") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QuestionnaireError(file, item, f"{key} phải là một số, nhưng là {value!r}", label=label)
    return float(value)


def as_int(value: Any, file: str, item: str | None, key: str, minimum: int, label: str = "item") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuestionnaireError(file, item, f"{key} phải là số nguyên, nhưng là {value!r}", label=label)
    if value < minimum:
        raise QuestionnaireError(file, item, f"{key} phải từ {minimum} trở lên, nhưng là {value}", label=label)
    return value


def as_list(value: Any, file: str, item: str | None, key: str, label: str = "item") -> list:
    if not isinstance(value, list) or not value:
        raise QuestionnaireError(file, item, f"{key} phải là một danh sách có ít nhất một phần tử", label=label)
    return value


def as_date(value: Any, file: str, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise QuestionnaireError(file, None, f"{key} phải là một ngày dạng YYYY-MM-DD, không kèm giờ")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return parse_iso_date(value)  # not date.fromisoformat: it also takes 20261201
        except DateError:
            pass
    raise QuestionnaireError(file, None, f"{key} phải là một ngày dạng YYYY-MM-DD, nhưng là {value!r}")


def read_csv(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[tuple[int, dict]]:
    """Rows of a UTF-8 CSV as (line number, NFC-normalised stripped values); header checked strictly."""
    name = path.name
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise QuestionnaireError(name, None, "không tìm thấy tệp") from None
    rows = []
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise QuestionnaireError(name, None, "tệp trống (cần dòng tiêu đề cột)")
            header = [unicodedata.normalize("NFC", h.strip()) for h in header]
            unknown = [h for h in header if h not in required + optional]
            if unknown:
                raise QuestionnaireError(name, None, f"cột không được hỗ trợ: {', '.join(unknown)}")
            missing = [h for h in required if h not in header]
            if missing:
                raise QuestionnaireError(name, None, f"thiếu cột: {', '.join(missing)}")
            if len(set(header)) != len(header):
                raise QuestionnaireError(name, None, "một cột có hai lần trong dòng tiêu đề")
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                line = reader.line_num
                if len(values) != len(header):
                    raise QuestionnaireError(
                        name, str(line), f"có {len(values)} ô, dòng tiêu đề có {len(header)} cột",
                        label="row",
                    )
                rows.append(
                    (line, {h: unicodedata.normalize("NFC", v.strip()) for h, v in zip(header, values)})
                )
        except UnicodeDecodeError as exc:
            raise QuestionnaireError(name, None, f"không phải văn bản UTF-8 ({exc.reason})") from None
        except csv.Error as exc:
            raise QuestionnaireError(name, None, f"sai định dạng CSV: {exc}") from None
    return rows


def csv_int(value: str, file: str, line: int, key: str) -> int:
    if not value:
        raise QuestionnaireError(file, str(line), f"thiếu {key}", label="row")
    if not re.fullmatch(r"-?\d+", value):
        raise QuestionnaireError(file, str(line), f"{key} {value!r} không phải số nguyên", label="row")
    number = int(value)
    if number < 0:
        raise QuestionnaireError(file, str(line), f"{key} không được âm, nhưng là {number}", label="row")
    return number
