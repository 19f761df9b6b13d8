"""Load and validate the questionnaire data files and survey rounds.

``questionnaires/`` is the single source of truth for items, answer scales, criteria, the form registry
and each round's agencies, quota plan and methodology settings. Everything is read into frozen
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
The package has one module per job: ``types`` (the frozen dataclasses), ``readers`` (strict YAML/CSV and
value checks), ``forms`` (scales, criteria, questionnaires), ``rounds`` (a round directory) and
``methodology`` (a round's scoring settings). Only the standard library and PyYAML are imported: this
package sits below services and web.
"""
from survey_service.questionnaires.forms import (
    load_criteria,
    load_form_codes,
    load_questionnaire,
    load_questionnaires,
    load_scales,
    questionnaire_from_definition,
)
from survey_service.questionnaires.methodology import current_names
from survey_service.questionnaires.rounds import (
    OPTIONAL_SETTINGS,
    SUPERVISING_FILE,
    load_round,
    other_places,
)
from survey_service.questionnaires.types import (
    CHANNELS,
    ITEM_TYPES,
    PLACE_HOLDERS,
    RATES,
    RENAMED_KEYS,
    VERSION_LENGTH,
    AgencyDef,
    AgencyKindDef,
    Criterion,
    DivisionDef,
    FrozenMap,
    Item,
    Questionnaire,
    QuestionnaireError,
    QuotaDef,
    RoundDef,
    Scale,
    ScaleOption,
    Section,
    StaffCount,
    SupervisionDef,
    canonical_json,
    file_name_for,
    version_of,
)

__all__ = [
    "CHANNELS",
    "ITEM_TYPES",
    "OPTIONAL_SETTINGS",
    "PLACE_HOLDERS",
    "current_names",
    "RATES",
    "RENAMED_KEYS",
    "VERSION_LENGTH",
    "AgencyDef",
    "AgencyKindDef",
    "Criterion",
    "DivisionDef",
    "FrozenMap",
    "Item",
    "Questionnaire",
    "QuestionnaireError",
    "QuotaDef",
    "RoundDef",
    "SUPERVISING_FILE",
    "Scale",
    "ScaleOption",
    "Section",
    "StaffCount",
    "SupervisionDef",
    "canonical_json",
    "file_name_for",
    "load_criteria",
    "load_form_codes",
    "load_questionnaire",
    "load_questionnaires",
    "load_round",
    "other_places",
    "load_scales",
    "questionnaire_from_definition",
    "version_of",
]
