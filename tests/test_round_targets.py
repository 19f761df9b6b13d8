"""round.yaml targets: what the loader accepts and the message of each refusal."""
from __future__ import annotations

import shutil

import pytest

from survey_service import questionnaires as qmod
from tests.conftest import QUESTIONNAIRE_DIR, ROUND_DIR

BUNDLED = """targets:
  - indicator: satisfaction
    at_least: 90
  - indicator: satisfaction
    at_least: 85
    agencies: [STNMT, SXD]
    label: "Lĩnh vực đất đai, xây dựng"
"""


@pytest.fixture(scope="module")
def forms():
    return qmod.load_questionnaires(QUESTIONNAIRE_DIR)


def _with_targets(tmp_path, forms, text: str):
    copy = tmp_path / "rounds" / "QNA-2023"
    shutil.copytree(ROUND_DIR, copy)
    yaml_file = copy / "round.yaml"
    content = yaml_file.read_text(encoding="utf-8")
    assert BUNDLED in content
    yaml_file.write_text(content.replace(BUNDLED, text), encoding="utf-8")
    return qmod.load_round(copy, forms, questionnaire_dir=QUESTIONNAIRE_DIR)


def test_bundled_targets(forms):
    r = qmod.load_round(ROUND_DIR, forms)
    assert r.targets == ({"indicator": "satisfaction", "at_least": 90.0},
                         {"indicator": "satisfaction", "at_least": 85.0, "agencies": ["STNMT", "SXD"],
                          "label": "Lĩnh vực đất đai, xây dựng"})
    assert r.definition()["targets"] == [dict(t) for t in r.targets]  # a change of targets reloads the round


@pytest.mark.parametrize("text, message", [
    ("targets:\n  - indicator: trust\n    at_least: 90\n", "indicator phải là một trong satisfaction, survey_points"),
    ("targets:\n  - indicator: satisfaction\n    at_least: 120\n", "phải lớn hơn 0 và không quá 100"),
    ("targets:\n  - indicator: survey_points\n    at_least: 40\n",
     "at_least của survey_points phải lớn hơn 0 và không quá 30"),
    ("targets:\n  - indicator: satisfaction\n    at_least: \"90%\"\n", "at_least phải là một số"),
    ("targets:\n  - indicator: satisfaction\n    at_least: 90\n    kinds: [ward]\n",
     "'ward' không phải là loại cơ quan"),
    ("targets:\n  - indicator: satisfaction\n    at_least: 90\n    agencies: [SXX]\n", "'SXX' không phải là cơ quan"),
    ("targets:\n  - indicator: satisfaction\n    at_least: 90\n  - indicator: satisfaction\n    at_least: 80\n",
     "mục tiêu satisfaction thứ hai cho mọi cơ quan"),
    ("targets:\n  - indicator: satisfaction\n    at_least: 85\n    agencies: [SXD]\n"
     "  - indicator: satisfaction\n    at_least: 80\n    agencies: [SXD, SNV]\n",
     "mục tiêu satisfaction thứ hai cho SXD"),
    ("targets:\n  - indicator: satisfaction\n    at_least: 90\n    goal: 95\n", "goal"),
    ("targets: 90\n", "targets phải là một danh sách"),
])
def test_bad_targets_are_refused_by_name(tmp_path, forms, text, message):
    with pytest.raises(qmod.QuestionnaireError) as err:
        _with_targets(tmp_path, forms, text)
    assert str(err.value).startswith("round.yaml") and message in str(err.value), str(err.value)


def test_a_kind_and_an_agency_target_may_overlap(tmp_path, forms):
    r = _with_targets(tmp_path, forms, "targets:\n  - indicator: survey_points\n    at_least: 20\n    kinds: "
                      "[district]\n  - indicator: survey_points\n    at_least: 22\n    agencies: [HOIAN]\n")
    assert [t["at_least"] for t in r.targets] == [20.0, 22.0]
