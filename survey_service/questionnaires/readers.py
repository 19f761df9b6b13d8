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
        raise QuestionnaireError(name, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise QuestionnaireError(name, None, f"not valid UTF-8 ({exc.reason})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise QuestionnaireError(name, None, f"invalid YAML: {reason}") from None
    normalised = nfc(data)
    _check_nfc_collisions(data, name)
    return normalised


def _check_nfc_collisions(obj: Any, name: str) -> None:
    if isinstance(obj, dict):
        keys = [unicodedata.normalize("NFC", k) if isinstance(k, str) else k for k in obj]
        if len(set(keys)) != len(keys):
            raise QuestionnaireError(name, None, "two keys differ only in Unicode normalisation")
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
    where = f"{what} " if what else ""
    if not isinstance(d, dict):
        raise QuestionnaireError(file, item, f"{where}must be a mapping, got {type_name(d)}", label=label)
    unknown = sorted(str(k) for k in d if k not in required | optional)
    if unknown:
        raise QuestionnaireError(file, item, f"{where}unknown key(s): {', '.join(unknown)}", label=label)
    missing = sorted(k for k in required if k not in d)
    if missing:
        raise QuestionnaireError(
            file, item, f"{where}missing required key(s): {', '.join(missing)}", label=label
        )


def known(value: Any, mapping: Mapping) -> bool:
    """``value in mapping`` that is False (not TypeError) for unhashable YAML values."""
    return isinstance(value, str) and value in mapping


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def as_text(value: Any, file: str, item: str | None, key: str, label: str = "item") -> str:
    if not isinstance(value, str):
        raise QuestionnaireError(file, item, f"{key} must be a string, got {type_name(value)}", label=label)
    value = value.strip()
    if not value:
        raise QuestionnaireError(file, item, f"{key} must not be empty", label=label)
    return value


def as_code(
    value: Any, pattern: re.Pattern, file: str, item: str | None, key: str, label: str = "item"
) -> str:
    if not isinstance(value, str):
        hint = ' (quote it, e.g. "4")' if isinstance(value, (int, float, bool)) else ""
        raise QuestionnaireError(
            file, item, f"{key} must be a string{hint}, got {type_name(value)}", label=label
        )
    if not pattern.match(value):
        raise QuestionnaireError(file, item, f"{key} {value!r} is not a valid code", label=label)
    return value


def as_bool(value: Any, file: str, item: str | None, key: str, label: str = "item") -> bool:
    if not isinstance(value, bool):
        raise QuestionnaireError(file, item, f"{key} must be true or false, got {value!r}", label=label)
    return value


def as_number(value: Any, file: str, item: str | None, key: str, label: str = "item") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QuestionnaireError(file, item, f"{key} must be a number, got {value!r}", label=label)
    return float(value)


def as_int(value: Any, file: str, item: str | None, key: str, minimum: int, label: str = "item") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuestionnaireError(file, item, f"{key} must be an integer, got {value!r}", label=label)
    if value < minimum:
        raise QuestionnaireError(file, item, f"{key} must be >= {minimum}, got {value}", label=label)
    return value


def as_list(value: Any, file: str, item: str | None, key: str, label: str = "item") -> list:
    if not isinstance(value, list) or not value:
        raise QuestionnaireError(file, item, f"{key} must be a non-empty list", label=label)
    return value


def as_date(value: Any, file: str, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise QuestionnaireError(file, None, f"{key} must be a date (YYYY-MM-DD), not a timestamp")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return parse_iso_date(value)  # not date.fromisoformat: it also takes 20261201
        except DateError:
            pass
    raise QuestionnaireError(file, None, f"{key} must be a date (YYYY-MM-DD), got {value!r}")


def read_csv(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[tuple[int, dict]]:
    """Rows of a UTF-8 CSV as (line number, NFC-normalised stripped values); header checked strictly."""
    name = path.name
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise QuestionnaireError(name, None, "file not found") from None
    rows = []
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise QuestionnaireError(name, None, "empty file (a header row is required)")
            header = [unicodedata.normalize("NFC", h.strip()) for h in header]
            unknown = [h for h in header if h not in required + optional]
            if unknown:
                raise QuestionnaireError(name, None, f"unknown column(s): {', '.join(unknown)}")
            missing = [h for h in required if h not in header]
            if missing:
                raise QuestionnaireError(name, None, f"missing column(s): {', '.join(missing)}")
            if len(set(header)) != len(header):
                raise QuestionnaireError(name, None, "a column appears twice in the header")
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                line = reader.line_num
                if len(values) != len(header):
                    raise QuestionnaireError(
                        name, str(line), f"has {len(values)} fields, the header has {len(header)}",
                        label="row",
                    )
                rows.append(
                    (line, {h: unicodedata.normalize("NFC", v.strip()) for h, v in zip(header, values)})
                )
        except UnicodeDecodeError as exc:
            raise QuestionnaireError(name, None, f"not valid UTF-8 ({exc.reason})") from None
        except csv.Error as exc:
            raise QuestionnaireError(name, None, f"invalid CSV: {exc}") from None
    return rows


def csv_int(value: str, file: str, line: int, key: str) -> int:
    if not value:
        raise QuestionnaireError(file, str(line), f"{key} is missing", label="row")
    if not re.fullmatch(r"-?\d+", value):
        raise QuestionnaireError(file, str(line), f"{key} {value!r} is not an integer", label="row")
    number = int(value)
    if number < 0:
        raise QuestionnaireError(file, str(line), f"{key} must not be negative, got {number}", label="row")
    return number
