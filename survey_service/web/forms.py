"""Flask-WTF forms generated from a questionnaire: one field per item code, Vietnamese messages.

WTForms has no Vietnamese catalogue, so no stock validator message is ever shown: every answer is
checked by :class:`ItemRule`, which asks the portal service, the single place that knows the rules.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Form, FormField, HiddenField, RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import StopValidation

from survey_service import questionnaires as qn
from survey_service.services import portal

#: Form fields that are not answers.
CONTROL_FIELDS = frozenset({"csrf_token", "submission_id", "action"})

_cache: dict[tuple, type] = {}


class ItemRule:
    """Validator for one item; ``required`` is off when the respondent only saves a draft."""

    def __init__(self, item: qn.Item, scale: qn.Scale | None, required: bool):
        self.item, self.scale, self.required = item, scale, required
        self.field_flags = {"required": required and item.required}

    def __call__(self, form, field):
        value = (field.data or "").strip()
        message = portal.answer_error(self.item, self.scale, value, required=self.required)
        if message:
            raise StopValidation(message)


def build_questionnaire_form(
    questionnaire: qn.Questionnaire, targets: tuple[tuple[str, str], ...] = (), *, require: bool = True,
) -> type[FlaskForm]:
    """The form class for a questionnaire.

    :param targets: for a form that rates several agencies (LĐ-CP), their (code, name): one sub-form per
        agency, named by its code, so inputs are ``<AGENCY>-<ITEM>``. Empty: inputs are the item codes.
    :param require: enforce required items (submit) or not (save a draft).
    """
    key = (questionnaire.code, questionnaire.version, targets, require)
    if key not in _cache:
        items = _item_fields(questionnaire, require)
        attrs = {"submission_id": HiddenField()}
        if targets:
            inner = type("ItemsForm", (Form,), items)
            for code, name in targets:
                attrs[code] = FormField(inner, label=name, separator="-")
        else:
            attrs.update(items)
        _cache[key] = type("QuestionnaireForm", (FlaskForm,), attrs)
    return _cache[key]


def _item_fields(questionnaire: qn.Questionnaire, require: bool) -> dict:
    fields = {}
    for item in questionnaire.items:
        if item.kind == "scale":
            scale = questionnaire.scales[item.scale]
            fields[item.code] = RadioField(
                item.text, choices=[SelectChoice(o.code, o.label) for o in scale.options], validate_choice=False,
                validators=[ItemRule(item, scale, require)])
        else:
            fields[item.code] = TextAreaField(
                item.text, validators=[ItemRule(item, None, require)],
                render_kw={"maxlength": item.max_length, "rows": 4} if item.max_length else {"rows": 4})
    return fields


def item_groups(form: FlaskForm, targets: tuple[tuple[str, str], ...]) -> list[tuple[str | None, list]]:
    """The answer fields to render, grouped by agency: [(agency name or None, [field, ...])]."""
    if targets:
        return [(name, [f for f in form[code].form]) for code, name in targets]
    return [(None, [f for f in form if f.name not in CONTROL_FIELDS])]


def answers_from(formdata, *, multi_target: bool, agency_code: str) -> dict[str, dict[str, str]]:
    """{agency code: {item code: value}} from every posted answer name, known or not, so the service
    can name anything that does not belong to the form."""
    answers: dict[str, dict[str, str]] = {}
    for name in formdata.keys():
        if name in CONTROL_FIELDS:
            continue
        agency, item = name.split("-", 1) if multi_target and "-" in name else (agency_code, name)
        answers.setdefault(agency, {})[item] = formdata.get(name, "")
    return answers


def field_for(form: FlaskForm, multi_target: bool, agency_code: str | None, item_code: str | None):
    """The form field an error belongs to, or None for errors about the form as a whole."""
    try:
        field = form[agency_code].form[item_code] if multi_target else form[item_code]
    except (KeyError, AttributeError):
        return None
    return None if field.name in CONTROL_FIELDS else field


class CodeForm(FlaskForm):
    code = StringField("Mã khảo sát")


class DivisionForm(FlaskForm):
    """The radios are written by the template from the round's divisions; the service checks the code."""

    division = StringField("Phòng chuyên môn")
