"""Flask-WTF forms of the portal and the mapping between posted names and answers.

The questionnaire's answers are not WTForms fields: the page writes its inputs from the questionnaire's
items and the portal service checks every answer, so the rules and their Vietnamese messages live in one
place; the page's CSRF token is checked by Flask-WTF's CSRF protection like every other POST.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, StringField

from survey_service.dates import DateError, parse_iso_date

#: Form fields that are not answers.
CONTROL_FIELDS = frozenset({"csrf_token", "submission_id", "action", "form_tag", "answers_key", "autosave"})


def answers_from(formdata, *, rates_several: bool, agency_code: str) -> dict[str, dict[str, str]]:
    """{agency code: {item code: value}} from every posted answer name, known or not, so the service
    can name anything that does not belong to the form."""
    answers: dict[str, dict[str, str]] = {}
    for name in formdata.keys():
        if name in CONTROL_FIELDS:
            continue
        agency, item = name.split("-", 1) if rates_several and "-" in name else (agency_code, name)
        answers.setdefault(agency, {})[item] = formdata.get(name, "")
    return answers


class CodeForm(FlaskForm):
    code = StringField("Mã khảo sát")


class DivisionForm(FlaskForm):
    """The radios are written by the template from the round's divisions; the service checks the code."""

    division = StringField("Phòng chuyên môn")


# WTForms ships no Vietnamese messages and its parse errors cannot be given one: these fields replace them.
class VietnameseDateField(DateField):
    """A date input read strictly as YYYY-MM-DD (what a browser's date picker sends), not by ``strptime``,
    which also takes ``2026-1-5`` and digits of other scripts."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        try:
            self.data = parse_iso_date(valuelist[0] if len(valuelist) == 1 else "")
        except DateError:
            self.data = None
            raise ValueError("Ngày không hợp lệ (cần dạng YYYY-MM-DD, ví dụ 2026-12-01).") from None


class VietnameseIntegerField(IntegerField):
    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Vui lòng nhập một số nguyên.") from None
