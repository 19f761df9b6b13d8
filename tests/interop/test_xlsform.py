"""Every form of the bundled rounds (QNA-2023, DNG-2026, DNG-HL-2026) as an XLSForm that pyxform converts without a
warning (and ODK Validate accepts, where Java is installed), and back."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest
from pyxform.xls2xform import convert

from survey_service import questionnaires as qn
from survey_service.questionnaires import xlsform
from survey_service.services import xlsform as xlsform_service
from tests.conftest import QUESTIONNAIRE_DIR

JAVA = shutil.which("java")


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: a workbook is written from the loaded round through plain reads that run on both databases
    in the import tests (tests/interop/test_odk_imports.py), which use these workbooks' fields."""
    yield f"sqlite:///{tmp_path / 'test.sqlite'}"


def test_every_form_of_the_round_converts_without_warnings(loaded_round, session, tmp_path):
    paths = xlsform_service.export_round(session, loaded_round, tmp_path)
    assert len(paths) == len(loaded_round.forms) == 8
    # ODK Validate (a jar pyxform ships) runs where Java is installed, as in CI
    validate = JAVA is not None
    for path in paths:
        result = convert(xlsform=str(path), validate=validate)
        assert result.warnings == [], (path.name, result.warnings)
        root = ET.fromstring(result.xform)
        ns = {"x": "http://www.w3.org/2002/xforms"}
        data = root.find(".//x:instance/*", ns)
        q = qn.Questionnaire.from_definition(next(
            f.questionnaire_version.definition for f in loaded_round.forms if xlsform.form_id(f.form_code)
            == data.get("id")))
        assert data.get("id").isascii() and data.get("version") == q.version
        binds = {b.get("nodeset").rsplit("/", 1)[-1]: b for b in root.iter("{http://www.w3.org/2002/xforms}bind")}
        assert binds["q_version"].get("calculate") == f"'{q.version}'"
        assert binds["form_code"].get("calculate") == f"'{q.code}'"
        fields = {e.tag.rsplit("}", 1)[-1] for e in data.iter()}
        assert not fields & {"start", "end", "today", "deviceid", "username", "audit"}
        assert set(q.item_codes) <= fields
        assert not any(b.get("{http://openrosa.org/javarosa}preload") not in (None, "uid") for b in binds.values())
    if JAVA is None:
        pytest.skip("ODK Validate not run: no Java (apt-get install default-jre-headless)")


def test_yaml_to_xlsform_and_back_gives_the_same_definition_and_hash(loaded_round, session, tmp_path):
    paths = xlsform_service.export_round(session, loaded_round, tmp_path)
    on_disk = qn.load_questionnaires(QUESTIONNAIRE_DIR)
    for path in paths:
        definition = xlsform.definition_from_workbook(path)
        back = qn.Questionnaire.from_definition(definition)
        original = on_disk[back.code]
        assert back.definition() == original.definition() and back.version == original.version
        # the form file written for review loads to the same version with the directory's scales
        out = tmp_path / "forms"
        out.mkdir(exist_ok=True)
        (out / original.file_name).write_text(xlsform.form_yaml(definition), encoding="utf-8")
        reloaded = qn.load_questionnaire(out / original.file_name, scales=qn.load_scales(
            QUESTIONNAIRE_DIR / "scales.yaml"), criteria=qn.load_criteria(QUESTIONNAIRE_DIR / "criteria.yaml"))
        assert reloaded.version == original.version


def test_cli_writes_one_form_and_reads_it_back(loaded_round, runner, tmp_path):
    result = runner.invoke(args=["questionnaires", "xlsform", "--round", "QNA-2023", "--form", "LĐ-CP",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.xlsx")
    assert path.name.startswith("LD-CP-")
    out = tmp_path / "LD-CP.yaml"
    result = runner.invoke(args=["questionnaires", "from-xlsform", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    original = qn.load_questionnaires(QUESTIONNAIRE_DIR)["LĐ-CP"]
    assert original.version in result.output and out.read_text(encoding="utf-8").startswith("code: LĐ-CP")
    result = runner.invoke(args=["questionnaires", "xlsform", "--round", "QNA-2023", "--form", "XX",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 1 and "không có mẫu phiếu XX" in result.output


def test_from_xlsform_refuses_a_list_that_is_not_the_scale(loaded_round, session, runner, tmp_path):
    from openpyxl import load_workbook

    (path,) = xlsform_service.export_round(session, loaded_round, tmp_path, "CC-CT")
    book = load_workbook(path)
    ws = book["choices"]
    for row in ws.iter_rows(min_row=2):
        if row[0].value == "DG4" and row[1].value == "K":
            row[1].value = "9"
    book.save(path)
    result = runner.invoke(args=["questionnaires", "from-xlsform", str(path)])
    assert result.exit_code == 1 and "không phải thang đo DG4" in result.output


def _defect(ws_survey, ws_choices, kind: str) -> None:
    """One defect of an authored workbook (each one the spec or pyxform refuses)."""
    rows = list(ws_survey.iter_rows(min_row=2))
    by_name = {r[1].value: r for r in rows}
    if kind == "duplicate name":
        by_name["I02"][1].value = "I01"
    elif kind == "unknown list":
        by_name["I01"][0].value = "select_one DG5"
    elif kind == "bad name":
        by_name["I01"][1].value = "1A"
    elif kind == "unmatched group":
        end = next(r for r in rows if r[0].value == "end_group")
        for cell in end:
            cell.value = None
    elif kind == "unknown reference":
        by_name["I02"][xlsform.SURVEY_COLUMNS.index("relevant")].value = "${I99} = 'K'"
    elif kind == "duplicate choice":
        next(r for r in ws_choices.iter_rows(min_row=2) if r[0].value == "DG4" and r[1].value == "3")[1].value = "4"


def test_from_xlsform_names_the_row_of_each_defect(loaded_round, session, runner, tmp_path):
    from openpyxl import load_workbook

    (path,) = xlsform_service.export_round(session, loaded_round, tmp_path, "CC-CT")
    for kind in ("duplicate name", "unknown list", "bad name", "unmatched group", "unknown reference",
                 "duplicate choice"):
        book = load_workbook(path)
        _defect(book["survey"], book["choices"], kind)
        broken = tmp_path / f"{kind.replace(' ', '-')}.xlsx"
        book.save(broken)
        result = runner.invoke(args=["questionnaires", "from-xlsform", str(broken)])
        assert result.exit_code == 1 and "XLSForm không hợp lệ theo pyxform: dòng " in result.output, (kind,
                                                                                                      result.output)


@pytest.mark.parametrize("code, forms", [("DNG-2026", 7), ("DNG-HL-2026", 2)])
def test_the_other_bundled_rounds_convert_too(app, session, tmp_path, code, forms):
    from survey_service.services import rounds

    for earlier in ("QNA-2023", code):  # DNG-2026's agencies continue QNA-2023's
        rounds.load_round(session, QUESTIONNAIRE_DIR / "rounds" / earlier, QUESTIONNAIRE_DIR)
    session.commit()
    rnd = rounds.get_round(session, code)
    paths = xlsform_service.export_round(session, rnd, tmp_path)
    assert len(paths) == len(rnd.forms) == forms
    for path in paths:
        assert convert(xlsform=str(path), validate=JAVA is not None).warnings == [], path.name
        definition = xlsform.definition_from_workbook(path)
        stored = next(f.questionnaire_version.definition for f in rnd.forms if f.form_code == definition["code"])
        assert qn.Questionnaire.from_definition(definition).definition() == stored
        survey = xlsform.read_sheets(path)["survey"]
        barcodes = [r["name"] for r in survey if r["type"] == "barcode"]
        assert barcodes == ([xlsform.SHEET] if definition["channel"] == "paper" else []), path.name
    if JAVA is None:
        pytest.skip("ODK Validate not run: no Java (apt-get install default-jre-headless)")
