"""What a new province meets first: a round outside the bundle, its province and organiser in the forms'
wording, on printed sheets, slips and pages, and a round started with ``round new``."""
from __future__ import annotations

import shutil

import yaml

from tests.conftest import QUESTIONNAIRE_DIR


def _outside_copy(tmp_path, code="HYN-2026"):
    """DNG-2026 copied to a directory outside the bundle, under another code."""
    directory = tmp_path / "elsewhere" / code
    shutil.copytree(QUESTIONNAIRE_DIR / "rounds" / "DNG-2026", directory)
    data = yaml.safe_load((directory / "round.yaml").read_text(encoding="utf-8"))
    data["code"] = code
    (directory / "round.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                                          encoding="utf-8")
    return directory


def test_a_round_outside_the_bundle_finds_the_scales_of_its_questionnaires(runner, tmp_path):
    directory = _outside_copy(tmp_path)
    given = runner.invoke(args=["round", "check", str(directory), "--questionnaires", str(QUESTIONNAIRE_DIR)])
    assert given.exit_code == 0, given.output
    assert "Đợt HYN-2026 hợp lệ." in given.output
    by_default = runner.invoke(args=["round", "check", str(directory)])  # QUESTIONNAIRE_DIR of the settings
    assert by_default.exit_code == 0, by_default.output


def test_an_unknown_scale_names_where_it_was_looked_for(runner, tmp_path):
    directory = _outside_copy(tmp_path)
    path = directory / "methodology.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("  CK: linear", "  CK: linear\n  ZZ: linear"),
                    encoding="utf-8")
    result = runner.invoke(args=["round", "check", str(directory), "--questionnaires", str(QUESTIONNAIRE_DIR)])
    assert result.exit_code == 1
    assert "unknown scale 'ZZ'" in result.output
    assert f"looked for in {QUESTIONNAIRE_DIR.resolve() / 'scales.yaml'}" in result.output
