"""The frozen types a questionnaire directory and a round are read into, and their stable JSON form.

Everything here is plain data: scales, criteria, items, questionnaires, agencies, quota cells, divisions,
staff counts and rounds, each with the ``definition()`` that is hashed into versions.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

CHANNELS = ("online", "paper")
#: own = own agency fixed by the invitation; supervising = the departments supervising the respondent's
#: district division; assigned = one agency printed on the sheet; matrix = every agency of the round.
RATES = ("own", "supervising", "assigned", "matrix")
ITEM_TYPES = ("scale", "text")
#: Number of hex digits of the sha256 kept as a questionnaire version.
VERSION_LENGTH = 16
#: Keys of a questionnaire definition that were renamed after versions had been hashed and stored, each
#: with the name it is hashed under (and that definitions stored before the rename carry). Hashing the old
#: name keeps an unchanged form at its version, so a rename never starts a new version.
RENAMED_KEYS = {"rated_kinds": "target_kinds"}
#: Words of a form's texts that the round fills in, so one form serves any province: ``{province}`` its
#: name ("Hưng Yên") and ``{unit}`` its kind of unit ("tỉnh" or "thành phố").
PLACE_HOLDERS = ("{province}", "{unit}")


#: The place an error names, as the round's author reads it (``label`` keeps the English key).
_LABELS = {"item": "câu", "row": "dòng", "section": "phần", "scale": "thang đo", "key": "mục",
           "agency kind": "loại cơ quan", "agency": "cơ quan", "criterion": "lĩnh vực", "division": "đơn vị",
           "form": "mẫu phiếu", "setting": "thiết lập", "target": "mục tiêu"}


class QuestionnaireError(ValueError):
    """A data file is invalid, in Vietnamese for whoever writes the round, always with the place:
    ``str()`` reads ``"CC-CT.yaml: câu I05: không có thang đo 'XX'"``.

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
        where = f"{_LABELS.get(self.label, self.label)} {self.item}: " if self.item is not None else ""
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

    ``version`` is :func:`version_of` its :meth:`definition`. ``rated_kinds`` are the kinds of agency its
    responses are about. ``source`` says where it was loaded from (a file path or ``"<definition>"``) and
    is ignored by equality.
    """

    code: str
    title: str
    channel: str
    respondent_group: str
    rates: str
    rated_kinds: tuple[str, ...]
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
            "rated_kinds": list(self.rated_kinds),
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

    def worded_for(self, province: str, unit: str) -> "Questionnaire":
        """The form as a round shows it: :data:`PLACE_HOLDERS` in its texts replaced by the round's province
        and kind of unit. Its version stays the stored one, which was hashed with the placeholders."""
        def fill(text: str) -> str:
            return text.replace("{province}", province).replace("{unit}", unit) if "{" in text else text

        sections = tuple(dataclasses.replace(
            s, title=fill(s.title), items=tuple(dataclasses.replace(i, text=fill(i.text)) for i in s.items))
            for s in self.sections)
        return dataclasses.replace(self, title=fill(self.title), respondent_group=fill(self.respondent_group),
                                   instructions=fill(self.instructions), sections=sections)

    @classmethod
    def from_definition(
        cls, d: Mapping, *, version: str | None = None, source: str = "<definition>"
    ) -> "Questionnaire":
        """Rebuild a questionnaire from a stored :meth:`definition` snapshot (see
        :func:`~survey_service.questionnaires.forms.questionnaire_from_definition`)."""
        from survey_service.questionnaires.forms import questionnaire_from_definition  # forms builds on types

        return questionnaire_from_definition(d, version=version, source=source)


@dataclass(frozen=True)
class AgencyKindDef:
    """A kind of agency a round evaluates, with its Vietnamese labels: ``label`` names one agency of the
    kind (tables, exports), ``plural`` the kind as a group (headings, chart titles, filters)."""

    code: str
    label: str
    plural: str


@dataclass(frozen=True)
class AgencyDef:
    """An evaluated agency; ``continues`` lists the agencies of earlier rounds it carries on, as
    ``(round code, agency code)`` pairs, so that results can be compared round over round."""

    code: str
    kind: str
    name: str
    continues: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class QuotaDef:
    """A quota cell: ``target`` respondents of form ``form_code`` about ``agency`` (``None`` for a matrix
    form: one cell for the round)."""

    form_code: str
    agency: str | None
    channel: str
    target: int
    note: str = ""


@dataclass(frozen=True)
class DivisionDef:
    """A respondent's unit under a supervising mapping (QNA-2023: a district division, phòng chuyên môn
    cấp huyện) and the agencies that supervise it, which the respondent rates one by one."""

    code: str
    name: str
    supervised_by: tuple[str, ...]


@dataclass(frozen=True)
class SupervisionDef:
    """How a ``rates: supervising`` form finds what a respondent rates.

    Respondents are sampled per agency of kind ``cells_per`` (the form's quota cells), belong to one of
    ``divisions`` (``unit`` names what a division is, ``supervisor`` what its supervising agencies are, both
    in Vietnamese for the pages) and rate each agency supervising their division.
    """

    form_code: str
    cells_per: str
    unit: str
    supervisor: str
    divisions: tuple[DivisionDef, ...]


@dataclass(frozen=True)
class StaffCount:
    """Population size of an online respondent group for one agency; ``source`` says where from."""

    agency: str
    form_code: str
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
    form_codes: tuple[str, ...]
    settings: Mapping[str, Any] = field(hash=False)
    kinds: tuple[AgencyKindDef, ...]
    own_staff_forms: tuple[str, ...]
    agencies: tuple[AgencyDef, ...]
    quotas: tuple[QuotaDef, ...]
    supervision: tuple[SupervisionDef, ...]
    staff_counts: tuple[StaffCount, ...]
    methodology: Mapping[str, Any] = field(hash=False)
    source_dir: str = field(default="", compare=False)
    form_versions: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: "tỉnh" or "thành phố": what the province-level unit is called on sheets and pages.
    province_type: str = "tỉnh"
    #: Who runs the survey, as slips, page headers and sheets name it ("Sở Nội vụ tỉnh Hưng Yên").
    organiser: str = ""
    #: round.yaml ``targets``: ``{indicator, at_least[, kinds][, agencies][, label]}`` each.
    targets: tuple[dict, ...] = field(default=(), hash=False)
    #: "par" (staff rate agencies, scored into PAR points) or "citizens" (people rate the agencies that
    #: served them; ``methodology`` is then the citizens' settings).
    round_kind: str = "par"

    def agency(self, code: str) -> AgencyDef:
        """Return the agency with ``code``; raise ``KeyError`` if the round has none."""
        for agency in self.agencies:
            if agency.code == code:
                return agency
        raise KeyError(f"round {self.code} has no agency {code!r}")

    def agencies_of_kind(self, kind: str) -> tuple[AgencyDef, ...]:
        return tuple(a for a in self.agencies if a.kind == kind)

    def quotas_for(self, form_code: str) -> tuple[QuotaDef, ...]:
        return tuple(q for q in self.quotas if q.form_code == form_code)

    def kind(self, code: str) -> AgencyKindDef:
        """Return the declared agency kind ``code``; raise ``KeyError`` if the round has none."""
        for kind in self.kinds:
            if kind.code == code:
                return kind
        raise KeyError(f"round {self.code} has no agency kind {code!r}")

    @property
    def divisions(self) -> tuple[DivisionDef, ...]:
        """Every division of every supervising mapping."""
        return tuple(d for mapping in self.supervision for d in mapping.divisions)

    def supervisors_of(self, division: str) -> tuple[str, ...]:
        """Codes of the agencies supervising ``division``."""
        for d in self.divisions:
            if d.code == division:
                return d.supervised_by
        raise KeyError(f"round {self.code} has no division {division!r}")

    def definition(self) -> dict:
        """Plain JSON of the round, hashed into :attr:`content_hash`. Its keys keep the names they were
        first hashed under (``form`` for a form code, ``departments`` for a division's supervisors), so
        that renaming an attribute never makes an unchanged round look changed."""
        return {
            "code": self.code,
            "name": self.name,
            "province": self.province,
            "province_type": self.province_type,
            "organiser": self.organiser,
            "year": self.year,
            "opens_on": self.opens_on.isoformat(),
            "closes_on": self.closes_on.isoformat(),
            "legal_basis": self.legal_basis,
            **({"targets": [dict(t) for t in self.targets]} if self.targets else {}),
            "portal": self.portal,
            "forms": list(self.form_codes),
            "form_versions": dict(self.form_versions),
            "settings": plain(self.settings),
            "kinds": [{"code": k.code, "label": k.label, "plural": k.plural} for k in self.kinds],
            "own_staff_forms": list(self.own_staff_forms),
            "agencies": [
                {"code": a.code, "kind": a.kind, "name": a.name, "continues": [list(c) for c in a.continues]}
                for a in self.agencies
            ],
            "quotas": [
                {"form": q.form_code, "agency": q.agency, "channel": q.channel, "target": q.target, "note": q.note}
                for q in self.quotas
            ],
            "supervision": [
                {
                    "form": m.form_code, "cells_per": m.cells_per, "unit": m.unit, "supervisor": m.supervisor,
                    "divisions": [
                        {"code": d.code, "name": d.name, "departments": list(d.supervised_by)} for d in m.divisions
                    ],
                }
                for m in self.supervision
            ],
            "staff_counts": [
                {"agency": s.agency, "form": s.form_code, "staff": s.staff, "source": s.source}
                for s in self.staff_counts
            ],
            "methodology": plain(self.methodology),
            # Only a citizens' round says its kind: a PAR round's hash stays what it was before kinds.
            **({"kind": self.round_kind} if self.round_kind != "par" else {}),
        }

    @property
    def content_hash(self) -> str:
        """Full sha256 hex digest of the canonical JSON of :meth:`definition`."""
        return hashlib.sha256(canonical_json(self.definition()).encode("utf-8")).hexdigest()


def version_of(definition: Mapping) -> str:
    """The first :data:`VERSION_LENGTH` (16) hex digits of the sha256 of :func:`canonical_json` of
    ``definition``, with the keys of :data:`RENAMED_KEYS` written under their old names."""
    hashed = {RENAMED_KEYS.get(key, key): value for key, value in definition.items()}
    return hashlib.sha256(canonical_json(hashed).encode("utf-8")).hexdigest()[:VERSION_LENGTH]


def canonical_json(obj: Any) -> str:
    """The JSON text hashed for versions: sorted keys, UTF-8 text, no spaces."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def file_name_for(code: str) -> str:
    """The ASCII file name of a form code: ``"LĐH-CH"`` -> ``"LDH-CH.yaml"``."""
    text = unicodedata.normalize("NFC", code).replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return f"{ascii_text}.yaml"


def plain(obj: Any) -> Any:
    """Deep copy into plain JSON types (dates become ISO strings)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    return obj
