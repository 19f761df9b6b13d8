"""Load and validate the questionnaire data files and survey rounds.

``questionnaires/`` is the single source of truth for items, answer scales, criteria, the form registry
and each round's agencies, quota plan and methodology settings. Everything is read here into frozen
dataclasses and checked strictly: any unknown key, missing key, dangling reference or out-of-range
number raises :class:`QuestionnaireError` naming the file, the item (or row) and the reason, so a bad
edit fails at startup instead of corrupting a round.

Layout of the questionnaire directory::

    scales.yaml      answer scales (option codes, labels, coefficients, positive flags, "K" excluded)
    criteria.yaml    the PAR areas (A1..A8) items are scored into
    forms.yaml       the declared form codes, spelled exactly (with Đ)
    <FILE>.yaml      one questionnaire per form code; <FILE> = file_name_for(code)
    rounds/<CODE>/   one directory per survey round (see load_round)

All text is NFC-normalised on load, so an NFD-encoded copy of a file yields the same version hash.
Only the standard library, PyYAML and the pure `analysis` package are imported: this module sits below
services and web.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analysis import coefficient_preset, recommend_sample_size

__all__ = [
    "AGENCY_KINDS",
    "CHANNELS",
    "ITEM_TYPES",
    "PRESETS",
    "RATES",
    "AgencyDef",
    "Criterion",
    "DivisionDef",
    "FrozenMap",
    "Item",
    "Questionnaire",
    "QuestionnaireError",
    "QuotaDef",
    "RoundDef",
    "Scale",
    "ScaleOption",
    "Section",
    "StaffCount",
    "canonical_json",
    "file_name_for",
    "load_criteria",
    "load_form_codes",
    "load_questionnaire",
    "load_questionnaires",
    "load_round",
    "load_scales",
    "preset_coefficients",
    "recommend_online_quotas",
]

CHANNELS = ("online", "paper")
#: own = own agency fixed by the invitation; supervising = the departments supervising the respondent's
#: district division; assigned = one agency printed on the sheet; matrix = every agency of the round.
RATES = ("own", "supervising", "assigned", "matrix")
AGENCY_KINDS = ("department", "district", "vertical")
ITEM_TYPES = ("scale", "text")
#: Coefficient presets (methodology §5.1): linear v=(x-1)/(k-1), ratio v=x/k, top2 v=1 for the top two.
PRESETS = ("linear", "ratio", "top2")
#: Number of hex digits of the sha256 kept as a questionnaire version.
VERSION_LENGTH = 16

SCALES_FILE = "scales.yaml"
CRITERIA_FILE = "criteria.yaml"
FORMS_FILE = "forms.yaml"
_SUPPORT_FILES = (SCALES_FILE, CRITERIA_FILE, FORMS_FILE)

ROUND_FILE = "round.yaml"
AGENCIES_FILE = "agencies.csv"
QUOTAS_FILE = "quotas.csv"
DIVISIONS_FILE = "divisions.yaml"
STAFF_FILE = "staff_counts.csv"
METHODOLOGY_FILE = "methodology.yaml"

_FORM_CODE_RE = re.compile(r"^[A-ZĐ]+(?:-[A-ZĐ]+)*$")
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_OPTION_CODE_RE = re.compile(r"^[0-9A-Z]{1,3}$")
_ROUND_CODE_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*$")


class QuestionnaireError(ValueError):
    """A data file is invalid. ``str()`` reads ``"CC-CT.yaml: item I05: unknown scale 'XX'"``.

    :ivar file: the file name (or ``<definition CODE>`` for a stored snapshot)
    :ivar item: the item code, row number, scale code… the error is about, or ``None`` for the whole file
    :ivar reason: what is wrong
    :ivar label: what ``item`` is ("item", "row", "section", "scale", "key", …)
    """

    def __init__(self, file: str, item: str | None, reason: str, *, label: str = "item"):
        self.file = file
        self.item = item
        self.reason = reason
        self.label = label
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.label} {self.item}: " if self.item is not None else ""
        return f"{self.file}: {where}{self.reason}"

    def __reduce__(self):
        return (_rebuild_error, (self.file, self.item, self.reason, self.label))


def _rebuild_error(file, item, reason, label):
    return QuestionnaireError(file, item, reason, label=label)


class FrozenMap(Mapping):
    """A read-only, hashable, picklable mapping used inside frozen dataclasses."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping | Any = ()):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


# --------------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleOption:
    """One answer option. ``coefficient`` is the score in [0, 1]; ``None`` only for excluded options."""

    code: str
    label: str
    coefficient: float | None
    positive: bool = False
    excluded: bool = False


@dataclass(frozen=True)
class Scale:
    """An answer scale; option codes are what a clerk types ("1".."5", "K")."""

    code: str
    title: str
    options: tuple[ScaleOption, ...]

    def option(self, code: str) -> ScaleOption:
        """Return the option with ``code``; raise ``KeyError`` if the scale has none."""
        for opt in self.options:
            if opt.code == code:
                return opt
        raise KeyError(f"scale {self.code} has no option {code!r}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(opt.code for opt in self.options)

    @property
    def valid_codes(self) -> tuple[str, ...]:
        """Codes that carry a score (everything but the excluded "don't know")."""
        return tuple(opt.code for opt in self.options if not opt.excluded)

    @property
    def positive_codes(self) -> tuple[str, ...]:
        return tuple(opt.code for opt in self.options if opt.positive)

    @property
    def excluded_codes(self) -> tuple[str, ...]:
        return tuple(opt.code for opt in self.options if opt.excluded)

    def definition(self) -> dict:
        return {
            "title": self.title,
            "options": [
                {
                    "code": o.code,
                    "label": o.label,
                    "coefficient": o.coefficient,
                    "positive": o.positive,
                    "excluded": o.excluded,
                }
                for o in self.options
            ],
        }


@dataclass(frozen=True)
class Criterion:
    """A scoring criterion: one PAR area (A1..A8) or, later, a finer sub-criterion."""

    code: str
    name: str


@dataclass(frozen=True)
class Item:
    """A question. ``kind`` is "scale" (scored, has ``scale`` and ``criterion``) or "text" (free text)."""

    code: str
    text: str
    kind: str
    scale: str | None
    criterion: str | None
    required: bool
    max_length: int | None = None


@dataclass(frozen=True)
class Section:
    title: str
    criterion: str | None
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Questionnaire:
    """An immutable questionnaire version.

    ``version`` is the first :data:`VERSION_LENGTH` (16) hex digits of the sha256 of
    :func:`canonical_json` of :meth:`definition`. ``source`` says where it was loaded from (a file path
    or ``"<definition>"``) and is ignored by equality.
    """

    code: str
    title: str
    channel: str
    respondent_group: str
    rates: str
    target_kinds: tuple[str, ...]
    instructions: str
    sections: tuple[Section, ...]
    scales: Mapping[str, Scale]
    criteria: Mapping[str, Criterion]
    version: str
    source: str = field(default="", compare=False)

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)

    def item(self, code: str) -> Item:
        """Return the item with ``code``; raise ``KeyError`` if the form has none."""
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(f"form {self.code} has no item {code!r}")

    @property
    def item_codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.items)

    @property
    def scale_items(self) -> tuple[Item, ...]:
        return tuple(item for item in self.items if item.kind == "scale")

    @property
    def text_items(self) -> tuple[Item, ...]:
        return tuple(item for item in self.items if item.kind == "text")

    @property
    def file_name(self) -> str:
        return file_name_for(self.code)

    def definition(self) -> dict:
        """The full normalised definition: plain JSON types, enough to rebuild the questionnaire."""
        return {
            "code": self.code,
            "title": self.title,
            "channel": self.channel,
            "respondent_group": self.respondent_group,
            "rates": self.rates,
            "target_kinds": list(self.target_kinds),
            "instructions": self.instructions,
            "sections": [
                {
                    "title": s.title,
                    "criterion": s.criterion,
                    "items": [
                        {
                            "code": i.code,
                            "text": i.text,
                            "type": i.kind,
                            "scale": i.scale,
                            "criterion": i.criterion,
                            "required": i.required,
                            "max_length": i.max_length,
                        }
                        for i in s.items
                    ],
                }
                for s in self.sections
            ],
            "scales": {code: scale.definition() for code, scale in self.scales.items()},
            "criteria": {code: {"name": c.name} for code, c in self.criteria.items()},
        }

    @classmethod
    def from_definition(
        cls, d: Mapping, *, version: str | None = None, source: str = "<definition>"
    ) -> "Questionnaire":
        """Rebuild a questionnaire from a stored :meth:`definition` snapshot.

        The snapshot must be exactly normalised (as written by :meth:`definition`); if ``version`` is
        given it must match the recomputed one. Raises :class:`QuestionnaireError` otherwise.
        """
        d = _nfc(d)
        name = f"<definition {d.get('code', '?')}>" if isinstance(d, dict) else "<definition>"
        if not isinstance(d, dict):
            raise QuestionnaireError(name, None, "definition must be a mapping")
        _check_keys(d, _Q_REQUIRED | {"scales", "criteria"}, set(), name, None, "")
        scales = _parse_scales(d["scales"], name)
        criteria = _parse_criteria(d["criteria"], name)
        body = {k: v for k, v in d.items() if k not in ("scales", "criteria")}
        q = _build_questionnaire(body, scales=scales, criteria=criteria, file=name, source=source)
        if q.definition() != d:
            raise QuestionnaireError(name, None, "definition does not round-trip (not in normalised form)")
        if version is not None and q.version != version:
            raise QuestionnaireError(name, None, f"version mismatch: stored {version}, computed {q.version}")
        return q


@dataclass(frozen=True)
class AgencyDef:
    code: str
    kind: str
    name: str


@dataclass(frozen=True)
class QuotaDef:
    """A quota cell. ``agency`` is ``None`` for a matrix form (one cell for the round)."""

    form: str
    agency: str | None
    channel: str
    target: int
    note: str = ""


@dataclass(frozen=True)
class DivisionDef:
    """A district division (phòng chuyên môn cấp huyện) and the departments that supervise it."""

    code: str
    name: str
    departments: tuple[str, ...]


@dataclass(frozen=True)
class StaffCount:
    """Population size of an online respondent group for one agency; ``source`` says where from."""

    agency: str
    form: str
    staff: int
    source: str


@dataclass(frozen=True)
class RoundDef:
    """A survey round as defined by ``questionnaires/rounds/<CODE>/``.

    ``form_versions`` maps each form code to the questionnaire version the round was loaded with.
    ``source_dir`` is ignored by equality and by :meth:`definition`.
    """

    code: str
    name: str
    province: str
    year: int
    opens_on: dt.date
    closes_on: dt.date
    legal_basis: str
    portal: str
    forms: tuple[str, ...]
    settings: Mapping[str, Any] = field(hash=False)
    agencies: tuple[AgencyDef, ...]
    quotas: tuple[QuotaDef, ...]
    divisions: tuple[DivisionDef, ...]
    staff_counts: tuple[StaffCount, ...]
    methodology: Mapping[str, Any] = field(hash=False)
    source_dir: str = field(default="", compare=False)
    form_versions: Mapping[str, str] = field(default_factory=dict, hash=False)

    def agency(self, code: str) -> AgencyDef:
        """Return the agency with ``code``; raise ``KeyError`` if the round has none."""
        for agency in self.agencies:
            if agency.code == code:
                return agency
        raise KeyError(f"round {self.code} has no agency {code!r}")

    def agencies_of_kind(self, kind: str) -> tuple[AgencyDef, ...]:
        return tuple(a for a in self.agencies if a.kind == kind)

    def quotas_for(self, form: str) -> tuple[QuotaDef, ...]:
        return tuple(q for q in self.quotas if q.form == form)

    def supervising_departments(self, division: str) -> tuple[str, ...]:
        """Department codes supervising the district division ``division``."""
        for d in self.divisions:
            if d.code == division:
                return d.departments
        raise KeyError(f"round {self.code} has no division {division!r}")

    def definition(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "province": self.province,
            "year": self.year,
            "opens_on": self.opens_on.isoformat(),
            "closes_on": self.closes_on.isoformat(),
            "legal_basis": self.legal_basis,
            "portal": self.portal,
            "forms": list(self.forms),
            "form_versions": dict(self.form_versions),
            "settings": _plain(self.settings),
            "agencies": [{"code": a.code, "kind": a.kind, "name": a.name} for a in self.agencies],
            "quotas": [
                {"form": q.form, "agency": q.agency, "channel": q.channel, "target": q.target, "note": q.note}
                for q in self.quotas
            ],
            "divisions": [
                {"code": d.code, "name": d.name, "departments": list(d.departments)} for d in self.divisions
            ],
            "staff_counts": [
                {"agency": s.agency, "form": s.form, "staff": s.staff, "source": s.source}
                for s in self.staff_counts
            ],
            "methodology": _plain(self.methodology),
        }

    @property
    def content_hash(self) -> str:
        """Full sha256 hex digest of the canonical JSON of :meth:`definition`."""
        return hashlib.sha256(canonical_json(self.definition()).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------------------------------


def canonical_json(obj: Any) -> str:
    """The JSON text hashed for versions: sorted keys, UTF-8 text, no spaces."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def file_name_for(code: str) -> str:
    """The ASCII file name of a form code: ``"LĐH-CH"`` -> ``"LDH-CH.yaml"``."""
    text = unicodedata.normalize("NFC", code).replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return f"{ascii_text}.yaml"


def _nfc(obj: Any) -> Any:
    if isinstance(obj, str):
        return unicodedata.normalize("NFC", obj)
    if isinstance(obj, Mapping):
        return {_nfc(k): _nfc(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nfc(v) for v in obj]
    return obj


def _plain(obj: Any) -> Any:
    """Deep copy into plain JSON types (dates become ISO strings)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
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


def _read_yaml(path: Path) -> Any:
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
    normalised = _nfc(data)
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


def _check_keys(
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
        raise QuestionnaireError(file, item, f"{where}must be a mapping, got {_type_name(d)}", label=label)
    unknown = sorted(str(k) for k in d if k not in required | optional)
    if unknown:
        raise QuestionnaireError(file, item, f"{where}unknown key(s): {', '.join(unknown)}", label=label)
    missing = sorted(k for k in required if k not in d)
    if missing:
        raise QuestionnaireError(
            file, item, f"{where}missing required key(s): {', '.join(missing)}", label=label
        )


def _known(value: Any, mapping: Mapping) -> bool:
    """``value in mapping`` that is False (not TypeError) for unhashable YAML values."""
    return isinstance(value, str) and value in mapping


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(value: Any, file: str, item: str | None, key: str, label: str = "item") -> str:
    if not isinstance(value, str):
        raise QuestionnaireError(file, item, f"{key} must be a string, got {_type_name(value)}", label=label)
    value = value.strip()
    if not value:
        raise QuestionnaireError(file, item, f"{key} must not be empty", label=label)
    return value


def _code(value: Any, pattern: re.Pattern, file: str, item: str | None, key: str, label: str = "item") -> str:
    if not isinstance(value, str):
        hint = ' (quote it, e.g. "4")' if isinstance(value, (int, float, bool)) else ""
        raise QuestionnaireError(
            file, item, f"{key} must be a string{hint}, got {_type_name(value)}", label=label
        )
    if not pattern.match(value):
        raise QuestionnaireError(file, item, f"{key} {value!r} is not a valid code", label=label)
    return value


def _bool(value: Any, file: str, item: str | None, key: str, label: str = "item") -> bool:
    if not isinstance(value, bool):
        raise QuestionnaireError(file, item, f"{key} must be true or false, got {value!r}", label=label)
    return value


def _number(value: Any, file: str, item: str | None, key: str, label: str = "item") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QuestionnaireError(file, item, f"{key} must be a number, got {value!r}", label=label)
    return float(value)


def _int(value: Any, file: str, item: str | None, key: str, minimum: int, label: str = "item") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuestionnaireError(file, item, f"{key} must be an integer, got {value!r}", label=label)
    if value < minimum:
        raise QuestionnaireError(file, item, f"{key} must be >= {minimum}, got {value}", label=label)
    return value


def _list(value: Any, file: str, item: str | None, key: str, label: str = "item") -> list:
    if not isinstance(value, list) or not value:
        raise QuestionnaireError(file, item, f"{key} must be a non-empty list", label=label)
    return value


# --------------------------------------------------------------------------------------------------
# Scales, criteria, form registry
# --------------------------------------------------------------------------------------------------


def _parse_scales(raw: Any, file: str) -> dict[str, Scale]:
    if not isinstance(raw, dict) or not raw:
        raise QuestionnaireError(file, None, "scales must be a non-empty mapping of scale code -> scale")
    scales = {}
    for code, body in raw.items():
        code = _code(code, _CODE_RE, file, str(code), "scale code", label="scale")
        _check_keys(body, {"title", "options"}, set(), file, code, "", label="scale")
        title = _text(body["title"], file, code, "title", label="scale")
        options = []
        seen = set()
        for raw_opt in _list(body["options"], file, code, "options", label="scale"):
            options.append(_parse_option(raw_opt, file, code, seen))
        if len([o for o in options if not o.excluded]) < 2:
            raise QuestionnaireError(
                file, code, "needs at least two scored (non-excluded) options", label="scale"
            )
        scales[code] = Scale(code=code, title=title, options=tuple(options))
    return scales


def _parse_option(raw: Any, file: str, scale: str, seen: set[str]) -> ScaleOption:
    if not isinstance(raw, dict):
        raise QuestionnaireError(
            file, scale, f"option must be a mapping, got {_type_name(raw)}", label="scale"
        )
    label_where = f"option {raw.get('code', '?')!s}"
    optional = {"coefficient", "positive", "excluded"}
    _check_keys(raw, {"code", "label"}, optional, file, scale, label_where, "scale")
    code = _code(raw["code"], _OPTION_CODE_RE, file, scale, f"{label_where}: code", label="scale")
    label_where = f"option {code!r}:"
    if code in seen:
        raise QuestionnaireError(file, scale, f"duplicate option code {code!r}", label="scale")
    seen.add(code)
    label = _text(raw["label"], file, scale, f"{label_where} label", label="scale")
    excluded = _bool(raw.get("excluded", False), file, scale, f"{label_where} excluded", label="scale")
    positive = _bool(raw.get("positive", False), file, scale, f"{label_where} positive", label="scale")
    coefficient = raw.get("coefficient")
    if excluded:
        if coefficient is not None:
            raise QuestionnaireError(
                file, scale, f"{label_where} an excluded option must have coefficient null", label="scale"
            )
        if positive:
            raise QuestionnaireError(
                file, scale, f"{label_where} an excluded option cannot be positive", label="scale"
            )
    else:
        if coefficient is None:
            raise QuestionnaireError(file, scale, f"{label_where} missing coefficient", label="scale")
        coefficient = _number(coefficient, file, scale, f"{label_where} coefficient", label="scale")
        if not 0.0 <= coefficient <= 1.0:
            raise QuestionnaireError(
                file, scale, f"{label_where} coefficient {coefficient} outside [0, 1]", label="scale"
            )
    return ScaleOption(code=code, label=label, coefficient=coefficient, positive=positive, excluded=excluded)


def _parse_criteria(raw: Any, file: str) -> dict[str, Criterion]:
    if not isinstance(raw, dict) or not raw:
        raise QuestionnaireError(
            file, None, "criteria must be a non-empty mapping of criterion code -> {name}"
        )
    criteria = {}
    for code, body in raw.items():
        code = _code(code, _CODE_RE, file, str(code), "criterion code", label="criterion")
        _check_keys(body, {"name"}, set(), file, code, "", label="criterion")
        criteria[code] = Criterion(code=code, name=_text(body["name"], file, code, "name", label="criterion"))
    return criteria


def load_scales(path: str | Path) -> dict[str, Scale]:
    """Read ``scales.yaml``: ``scales: {CODE: {title, options: [{code, label, coefficient, …}]}}``."""
    path = Path(path)
    data = _read_yaml(path)
    _check_keys(data, {"scales"}, set(), path.name, None, "file")
    return _parse_scales(data["scales"], path.name)


def load_criteria(path: str | Path) -> dict[str, Criterion]:
    """Read ``criteria.yaml``: ``criteria: {A1: {name: …}, …}``."""
    path = Path(path)
    data = _read_yaml(path)
    _check_keys(data, {"criteria"}, set(), path.name, None, "file")
    return _parse_criteria(data["criteria"], path.name)


def load_form_codes(path: str | Path) -> tuple[str, ...]:
    """Read ``forms.yaml``: the declared form codes, spelled exactly (with Đ)."""
    path = Path(path)
    data = _read_yaml(path)
    _check_keys(data, {"forms"}, set(), path.name, None, "file")
    codes: list[str] = []
    files: dict[str, str] = {}
    for raw in _list(data["forms"], path.name, None, "forms"):
        code = _code(raw, _FORM_CODE_RE, path.name, str(raw), "form code", label="form")
        if code in codes:
            raise QuestionnaireError(path.name, code, "declared twice", label="form")
        fname = file_name_for(code)
        if fname in files:
            raise QuestionnaireError(
                path.name, code, f"same file name {fname} as {files[fname]}", label="form"
            )
        files[fname] = code
        codes.append(code)
    return tuple(codes)


# --------------------------------------------------------------------------------------------------
# Questionnaires
# --------------------------------------------------------------------------------------------------

_Q_REQUIRED = {
    "code", "title", "channel", "respondent_group", "rates", "target_kinds", "instructions", "sections",
}
_ITEM_REQUIRED = {"code", "text"}
_ITEM_OPTIONAL = {"type", "scale", "criterion", "required", "max_length"}


def _build_questionnaire(
    raw: Any, *, scales: Mapping[str, Scale], criteria: Mapping[str, Criterion], file: str, source: str
) -> Questionnaire:
    _check_keys(raw, _Q_REQUIRED, set(), file, None, "")
    code = _code(raw["code"], _FORM_CODE_RE, file, None, "form code")
    title = _text(raw["title"], file, None, "title")
    respondent_group = _text(raw["respondent_group"], file, None, "respondent_group")
    instructions = _text(raw["instructions"], file, None, "instructions")
    channel = raw["channel"]
    if channel not in CHANNELS:
        raise QuestionnaireError(file, None, f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    rates = raw["rates"]
    if rates not in RATES:
        raise QuestionnaireError(file, None, f"rates {rates!r} is not one of {', '.join(RATES)}")
    kinds = _list(raw["target_kinds"], file, None, "target_kinds")
    for kind in kinds:
        if kind not in AGENCY_KINDS:
            raise QuestionnaireError(
                file, None, f"target kind {kind!r} is not one of {', '.join(AGENCY_KINDS)}"
            )
    if len(set(kinds)) != len(kinds):
        raise QuestionnaireError(file, None, "target_kinds lists a kind twice")
    # The channel follows from how the target is fixed: an invitation (own) is an online link, a
    # pre-assigned target is printed on a paper sheet; divisions are supervised by departments only.
    if rates == "own" and channel != "online":
        raise QuestionnaireError(
            file, None, "rates 'own' (target fixed by the invitation) requires channel online"
        )
    if rates == "assigned" and channel != "paper":
        raise QuestionnaireError(
            file, None, "rates 'assigned' (target printed on the sheet) requires channel paper"
        )
    if rates == "supervising" and tuple(kinds) != ("department",):
        raise QuestionnaireError(file, None, "rates 'supervising' requires target_kinds [department]")

    sections = []
    seen_items: set[str] = set()
    for index, raw_section in enumerate(_list(raw["sections"], file, None, "sections"), start=1):
        sections.append(_build_section(raw_section, index, scales, criteria, file, seen_items))
    if not any(item.kind == "scale" for s in sections for item in s.items):
        raise QuestionnaireError(file, None, "form has no scale items")

    used_scales = sorted({i.scale for s in sections for i in s.items if i.scale})
    used_criteria = sorted({i.criterion for s in sections for i in s.items if i.criterion})
    used_criteria += sorted({s.criterion for s in sections if s.criterion} - set(used_criteria))
    fields = dict(
        code=code,
        title=title,
        channel=channel,
        respondent_group=respondent_group,
        rates=rates,
        target_kinds=tuple(kinds),
        instructions=instructions,
        sections=tuple(sections),
        scales=FrozenMap((c, scales[c]) for c in used_scales),
        criteria=FrozenMap((c, criteria[c]) for c in sorted(used_criteria)),
    )
    draft = Questionnaire(**fields, version="", source=source)
    digest = hashlib.sha256(canonical_json(draft.definition()).encode("utf-8")).hexdigest()
    return Questionnaire(**fields, version=digest[:VERSION_LENGTH], source=source)


def _build_section(
    raw: Any,
    index: int,
    scales: Mapping[str, Scale],
    criteria: Mapping[str, Criterion],
    file: str,
    seen_items: set[str],
) -> Section:
    where = str(index)
    _check_keys(raw, {"title", "items"}, {"criterion"}, file, where, "", label="section")
    title = _text(raw["title"], file, where, "title", label="section")
    criterion = raw.get("criterion")
    if criterion is not None and not _known(criterion, criteria):
        raise QuestionnaireError(file, where, f"unknown criterion {criterion!r}", label="section")
    items = []
    for n, raw_item in enumerate(_list(raw["items"], file, where, "items", label="section"), start=1):
        item = _build_item(raw_item, f"{index}.{n}", criterion, scales, criteria, file)
        if item.code in seen_items:
            raise QuestionnaireError(file, item.code, "duplicate item code")
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
    _check_keys(raw, _ITEM_REQUIRED, _ITEM_OPTIONAL, file, name, "")
    code = _code(raw["code"], _CODE_RE, file, name, "code")
    text = _text(raw["text"], file, code, "text")
    kind = raw.get("type", "scale")
    if kind is None:
        kind = "scale"
    if kind not in ITEM_TYPES:
        raise QuestionnaireError(file, code, f"type {kind!r} is not one of {', '.join(ITEM_TYPES)}")
    scale = raw.get("scale")
    explicit_criterion = raw.get("criterion")
    max_length = raw.get("max_length")
    if kind == "text":
        if scale is not None:
            raise QuestionnaireError(file, code, "a text item cannot have a scale")
        if explicit_criterion is not None:
            raise QuestionnaireError(file, code, "a text item is not scored and cannot have a criterion")
        criterion = None
        if max_length is not None:
            max_length = _int(max_length, file, code, "max_length", 1)
        required = _bool(raw.get("required", False), file, code, "required")
    else:
        if scale is None:
            raise QuestionnaireError(file, code, "a scale item needs a scale")
        if not isinstance(scale, str) or scale not in scales:
            raise QuestionnaireError(file, code, f"unknown scale {scale!r}")
        if max_length is not None:
            raise QuestionnaireError(file, code, "max_length applies to text items only")
        criterion = explicit_criterion if explicit_criterion is not None else section_criterion
        if criterion is None:
            raise QuestionnaireError(
                file, code, "a scale item needs a criterion (from its section or its own)"
            )
        if not _known(criterion, criteria):
            raise QuestionnaireError(file, code, f"unknown criterion {criterion!r}")
        required = _bool(raw.get("required", True), file, code, "required")
    return Item(
        code=code, text=text, kind=kind, scale=scale, criterion=criterion, required=required,
        max_length=max_length,
    )


def load_questionnaire(
    path: str | Path, *, scales: Mapping[str, Scale], criteria: Mapping[str, Criterion]
) -> Questionnaire:
    """Load one form file; its name must be ``file_name_for(code)``."""
    path = Path(path)
    raw = _read_yaml(path)
    q = _build_questionnaire(raw, scales=scales, criteria=criteria, file=path.name, source=str(path))
    expected = file_name_for(q.code)
    if path.name != expected:
        raise QuestionnaireError(path.name, None, f"form code {q.code!r} must live in {expected}")
    return q


def load_questionnaires(directory: str | Path) -> dict[str, Questionnaire]:
    """Load every form of a questionnaire directory, keyed by form code (in ``forms.yaml`` order).

    Every ``*.yaml`` file other than scales/criteria/forms must be the file of a declared code and
    must state exactly that code; every declared code must have its file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise QuestionnaireError(str(directory), None, "questionnaire directory not found")
    scales = load_scales(directory / SCALES_FILE)
    criteria = load_criteria(directory / CRITERIA_FILE)
    declared = load_form_codes(directory / FORMS_FILE)
    by_file = {file_name_for(code): code for code in declared}
    loaded: dict[str, Questionnaire] = {}
    for path in sorted(directory.glob("*.yml")):
        raise QuestionnaireError(path.name, None, "questionnaire files use the .yaml extension")
    for path in sorted(directory.glob("*.yaml")):
        if path.name in _SUPPORT_FILES:
            continue
        if path.name not in by_file:
            raise QuestionnaireError(
                path.name, None, f"file does not belong to any form code declared in {FORMS_FILE}"
            )
        q = load_questionnaire(path, scales=scales, criteria=criteria)
        if q.code != by_file[path.name]:
            raise QuestionnaireError(
                path.name, None,
                f"code {q.code!r} is not one of the declared codes "
                f"({FORMS_FILE} declares {by_file[path.name]!r})",
            )
        loaded[q.code] = q
    missing = [code for code in declared if code not in loaded]
    if missing:
        raise QuestionnaireError(
            FORMS_FILE, None,
            "declared form(s) without a file: " + ", ".join(f"{c} ({file_name_for(c)})" for c in missing),
        )
    return {code: loaded[code] for code in declared}


def preset_coefficients(scale: Scale, preset: str) -> dict[str, float | None]:
    """Coefficients of ``scale``'s options under a methodology preset (rounded to 4 decimals).

    Scored options are ranked x = 1..k by their numeric code (higher code = better answer);
    excluded options map to ``None``. ``linear``: (x-1)/(k-1); ``ratio``: x/k; ``top2``: 1 for the
    two highest options, else 0.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    scored = [o for o in scale.options if not o.excluded]
    try:
        ranked = [o.code for o in sorted(scored, key=lambda o: int(o.code))]
    except ValueError:
        raise ValueError(f"scale {scale.code}: presets need numeric option codes") from None
    result: dict[str, float | None] = {o.code: None for o in scale.options}
    result.update({code: round(v, 4) for code, v in coefficient_preset(ranked, preset).items()})
    return result


# --------------------------------------------------------------------------------------------------
# Rounds
# --------------------------------------------------------------------------------------------------

_ROUND_REQUIRED = {
    "code", "name", "province", "year", "legal_basis", "opens_on", "closes_on", "portal", "forms", "settings",
}
_SETTINGS = {
    "double_entry_rate": "share",
    "double_entry_first_sheets": "count",
    "unsampled_keyed_count_as_verified": "bool",
    "surplus_in_analysis": "bool",
}
_METHODOLOGY_REQUIRED = {
    "coefficient_presets", "positive_options", "satisfaction_scale", "max_points", "group_weights", "n_min",
    "validity", "online_sample_size",
}
_METHODOLOGY_OPTIONAL = {"satisfaction_items"}


def _date(value: Any, file: str, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise QuestionnaireError(file, None, f"{key} must be a date (YYYY-MM-DD), not a timestamp")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise QuestionnaireError(file, None, f"{key} must be a date (YYYY-MM-DD), got {value!r}")


def _read_csv(
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


def _csv_int(value: str, file: str, line: int, key: str) -> int:
    if not value:
        raise QuestionnaireError(file, str(line), f"{key} is missing", label="row")
    if not re.fullmatch(r"-?\d+", value):
        raise QuestionnaireError(file, str(line), f"{key} {value!r} is not an integer", label="row")
    number = int(value)
    if number < 0:
        raise QuestionnaireError(file, str(line), f"{key} must not be negative, got {number}", label="row")
    return number


def _load_agencies(path: Path) -> tuple[AgencyDef, ...]:
    agencies: dict[str, AgencyDef] = {}
    for line, row in _read_csv(path, ("code", "kind", "name")):
        row_id = str(line)
        code = row["code"]
        if not _CODE_RE.match(code):
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
    data = _read_yaml(path)
    _check_keys(data, {"divisions"}, set(), name, None, "file")
    divisions: dict[str, DivisionDef] = {}
    for raw in _list(data["divisions"], name, None, "divisions"):
        where = str(raw.get("code", "?")) if isinstance(raw, dict) else "?"
        _check_keys(raw, {"code", "name", "departments"}, set(), name, where, "", label="division")
        code = _code(raw["code"], _CODE_RE, name, where, "code", label="division")
        if code in divisions:
            raise QuestionnaireError(name, code, "duplicate division code", label="division")
        title = _text(raw["name"], name, code, "name", label="division")
        departments = _list(raw["departments"], name, code, "departments", label="division")
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
    for line, row in _read_csv(path, ("form", "agency", "channel", "target"), ("note",)):
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
        target = _csv_int(row["target"], name, line, "target")
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
    for line, row in _read_csv(path, ("agency", "form", "staff", "source")):
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
        staff = _csv_int(row["staff"], name, line, "staff")
        if not row["source"]:
            raise QuestionnaireError(
                name, row_id, "source is missing (say where the figure comes from)", label="row"
            )
        if (agency, form) in counts:
            raise QuestionnaireError(name, row_id, f"duplicate staff count ({agency}, {form})", label="row")
        counts[(agency, form)] = StaffCount(agency=agency, form=form, staff=staff, source=row["source"])
    return tuple(counts.values())


def _validate_methodology(
    data: Any,
    file: str,
    forms: Mapping[str, Questionnaire],
    kinds_present: set[str],
    scales: Mapping[str, Scale],
    criteria: Mapping[str, Criterion],
) -> dict:
    _check_keys(data, _METHODOLOGY_REQUIRED, _METHODOLOGY_OPTIONAL, file, None, "")

    def err(key: str, reason: str) -> QuestionnaireError:
        return QuestionnaireError(file, key, reason, label="setting")

    def mapping(key: str) -> dict:
        value = data[key]
        if not isinstance(value, dict) or not value:
            raise err(key, "must be a non-empty mapping")
        return value

    def known_scale(key: str, code: Any) -> Scale:
        if not _known(code, scales):
            raise err(key, f"unknown scale {code!r}")
        return scales[code]

    def known_kind(key: str, kind: Any) -> None:
        if kind not in AGENCY_KINDS:
            raise err(key, f"unknown agency kind {kind!r}")

    def known_form(key: str, form: Any) -> Questionnaire:
        if not _known(form, forms):
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
            if kind not in q.target_kinds:
                raise err("group_weights", f"{kind}: form {form} does not rate {kind} agencies")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise err(
                    "group_weights", f"{kind}.{form}: weight must be a non-negative number, got {weight!r}"
                )
        if sum(table.values()) <= 0:
            raise err(
                "group_weights", f"{kind}: weights sum to {sum(table.values())}; they must sum to more than 0"
            )
    for key, table in (("max_points", max_points), ("group_weights", weights)):
        missing = sorted(kinds_present - set(table))
        if missing:
            raise err(key, f"no entry for agency kind(s) {', '.join(missing)} of this round")

    n_min = mapping("n_min")
    for form, value in n_min.items():
        known_form("n_min", form)
        _int(value, file, "n_min", f"{form}", 1, label="setting")
    missing = [f for f in forms if f not in n_min]
    if missing:
        raise err("n_min", f"no minimum for form(s) {', '.join(missing)}")

    validity = data["validity"]
    _check_keys(validity, {"min_answered_share"}, set(), file, "validity", "", label="setting")
    share = _number(validity["min_answered_share"], file, "validity", "min_answered_share", label="setting")
    if not 0 < share <= 1:
        raise err("validity", f"min_answered_share must be in (0, 1], got {share}")

    sample = data["online_sample_size"]
    _check_keys(sample, {"margin", "floor"}, set(), file, "online_sample_size", "", label="setting")
    margin = _number(sample["margin"], file, "online_sample_size", "margin", label="setting")
    if not 0 < margin < 1:
        raise err("online_sample_size", f"margin must be in (0, 1), got {margin}")
    _int(sample["floor"], file, "online_sample_size", "floor", 1, label="setting")
    return _plain(data)


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
    data = _read_yaml(directory / ROUND_FILE)
    _check_keys(data, _ROUND_REQUIRED, set(), rname, None, "")
    code = _code(data["code"], _ROUND_CODE_RE, rname, None, "round code")
    if directory.name != code:
        raise QuestionnaireError(
            rname, None, f"round code {code!r} must match its directory name {directory.name!r}"
        )
    year = _int(data["year"], rname, None, "year", 2000)
    opens_on = _date(data["opens_on"], rname, "opens_on")
    closes_on = _date(data["closes_on"], rname, "closes_on")
    if closes_on < opens_on:
        raise QuestionnaireError(rname, None, "closes_on is before opens_on")
    form_codes = _list(data["forms"], rname, None, "forms")
    for form in form_codes:
        if not _known(form, questionnaires):
            raise QuestionnaireError(rname, None, f"unknown form {form!r} (no such questionnaire)")
    if len(set(form_codes)) != len(form_codes):
        raise QuestionnaireError(rname, None, "a form is listed twice")
    settings = data["settings"]
    _check_keys(settings, set(_SETTINGS), set(), rname, "settings", "", label="key")
    for key, kind in _SETTINGS.items():
        value = settings[key]
        if kind == "bool":
            _bool(value, rname, "settings", key, label="key")
        elif kind == "count":
            _int(value, rname, "settings", key, 0, label="key")
        elif not 0 <= _number(value, rname, "settings", key, label="key") <= 1:
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
    methodology = _validate_methodology(
        _read_yaml(directory / METHODOLOGY_FILE), METHODOLOGY_FILE, forms,
        {a.kind for a in agencies_t}, known_scales, known_criteria,
    )
    return RoundDef(
        code=code,
        name=_text(data["name"], rname, None, "name"),
        province=_text(data["province"], rname, None, "province"),
        year=year,
        opens_on=opens_on,
        closes_on=closes_on,
        legal_basis=_text(data["legal_basis"], rname, None, "legal_basis"),
        portal=_text(data["portal"], rname, None, "portal"),
        forms=tuple(form_codes),
        settings=_plain(settings),
        agencies=agencies_t,
        quotas=quotas,
        divisions=divisions,
        staff_counts=staff,
        methodology=methodology,
        source_dir=str(directory),
        form_versions={f: q.version for f, q in forms.items()},
    )


def recommend_online_quotas(
    round_def: RoundDef, *, margin: float | None = None, floor: int | None = None
) -> list[QuotaDef]:
    """Recommended online quota cells, one per staff count, in ``staff_counts.csv`` order.

    ``margin`` and ``floor`` default to the round's ``methodology.online_sample_size``.
    """
    rule = round_def.methodology.get("online_sample_size", {})
    margin = rule["margin"] if margin is None else margin
    floor = rule["floor"] if floor is None else floor
    return [
        QuotaDef(
            form=s.form,
            agency=s.agency,
            channel="online",
            target=recommend_sample_size(s.staff, margin=margin, floor=floor),
        )
        for s in round_def.staff_counts
    ]
