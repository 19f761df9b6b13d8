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
    result = runner.invoke(args=["round", "check", str(directory),
                                 "--questionnaires", str(QUESTIONNAIRE_DIR)])
    assert result.exit_code == 1
    assert "không có thang đo 'ZZ'" in result.output
    assert f"đã tìm trong {QUESTIONNAIRE_DIR.resolve() / 'scales.yaml'}" in result.output


def _pdf_text(path) -> str:
    import subprocess

    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_a_new_province_round_from_round_new_to_its_pages(runner, session, staff_client, client, tmp_path):
    """`round new`, `round check`, `round load` of a Hưng Yên round; its sheets, slips, portal and preview
    pages speak of tỉnh Hưng Yên and its Sở Nội vụ, never of the province the forms came from."""
    from survey_service.services import rounds
    from tests.conftest import collect_from_today

    made = runner.invoke(args=["round", "new", "HYN-2026", "--province", "Hưng Yên", "--unit", "tỉnh",
                               "--out", str(tmp_path)])
    assert made.exit_code == 0, made.output
    directory = tmp_path / "HYN-2026"
    agencies = directory / "agencies.csv"  # the province's own agencies replace those copied
    agencies.write_text(agencies.read_text(encoding="utf-8").replace("thành phố Đà Nẵng", "tỉnh Hưng Yên")
                        .replace("Đà Nẵng", "Hưng Yên").replace("thành phố", "tỉnh"), encoding="utf-8")
    checked = runner.invoke(args=["round", "check", str(directory)])
    assert checked.exit_code == 0, checked.output
    assert "tỉnh Hưng Yên" in checked.output and "tổ chức: Sở Nội vụ tỉnh Hưng Yên" in checked.output
    assert "CẢNH BÁO" not in checked.output
    loaded = runner.invoke(args=["round", "load", str(directory)])
    assert loaded.exit_code == 0, loaded.output
    rnd = rounds.get_round(session, "HYN-2026")
    assert (rnd.province, rnd.province_type, rnd.organiser) == ("Hưng Yên", "tỉnh", "Sở Nội vụ tỉnh Hưng Yên")
    collect_from_today(session, rnd)

    supervisor = staff_client("supervisor")
    sheet = supervisor.get("/staff/preview/HYN-2026/HĐ-TP/sheet.pdf")
    assert sheet.status_code == 200
    (tmp_path / "sheet.pdf").write_bytes(sheet.data)
    text = " ".join(_pdf_text(tmp_path / "sheet.pdf").split())
    assert "TỈNH HƯNG YÊN – Sở Nội vụ tỉnh Hưng Yên" in text
    assert "Hội đồng nhân dân tỉnh" in text and "trên địa bàn tỉnh Hưng Yên" in text
    assert "Đà Nẵng" not in text and "thành phố" not in text and "{" not in text

    # the same form version worded for Đà Nẵng, shown first in this process, does not lend its words
    dng = runner.invoke(args=["round", "load", str(QUESTIONNAIRE_DIR / "rounds" / "DNG-2026")])
    assert dng.exit_code == 0, dng.output
    collect_from_today(session, rounds.get_round(session, "DNG-2026"))
    assert "cấp xã và cấp thành phố?" in supervisor.get("/staff/preview/DNG-2026/CC-CX").get_data(as_text=True)
    page = supervisor.get("/staff/preview/HYN-2026/CC-CX").get_data(as_text=True)
    assert "trên địa bàn tỉnh Hưng Yên, Ủy ban nhân dân tỉnh" in page and "cấp xã và cấp tỉnh?" in page
    assert "Đà Nẵng" not in page and "{unit}" not in page
    assert '<span class="org">Sở Nội vụ tỉnh Hưng Yên</span>' in page

    home = client.get("/").get_data(as_text=True)
    assert "tỉnh Hưng Yên" in home and "Cuộc khảo sát do <strong>Sở Nội vụ tỉnh Hưng Yên</strong>" in home
    assert "Quảng Nam" not in home and "Đà Nẵng" not in home

    slips = tmp_path / "slips.pdf"
    issued = runner.invoke(args=["codes", "issue", "--round", "HYN-2026", "--form", "CC-CX", "--agency",
                                 rnd.agencies[15].code, "--count", "2", "--out", str(tmp_path / "c.csv"),
                                 "--pdf", str(slips)])
    assert issued.exit_code == 0, issued.output
    slip_text = " ".join(_pdf_text(slips).split())
    assert "Sở Nội vụ tỉnh Hưng Yên" in slip_text and "Quảng Nam" not in slip_text


def test_round_yaml_names_its_organiser(runner, tmp_path):
    made = runner.invoke(args=["round", "new", "HNI-2026", "--province", "Hà Nội", "--unit", "thành phố",
                               "--from", "QNA-2023", "--out", str(tmp_path)])
    assert made.exit_code == 0, made.output
    path = tmp_path / "HNI-2026" / "round.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["province_type"] == "thành phố" and "organiser" not in data
    data["organiser"] = "Sở Nội vụ Hà Nội"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    checked = runner.invoke(args=["round", "check", str(tmp_path / "HNI-2026")])
    assert checked.exit_code == 0, checked.output
    assert "thành phố Hà Nội" in checked.output and "tổ chức: Sở Nội vụ Hà Nội)" in checked.output


def test_round_new_refuses_bad_input_and_writes_nothing(runner, tmp_path):
    bad_code = runner.invoke(args=["round", "new", "hyn 2026", "--province", "Hưng Yên", "--unit", "tỉnh",
                                   "--out", str(tmp_path)])
    assert bad_code.exit_code == 1 and "Mã đợt" in bad_code.output
    no_source = runner.invoke(args=["round", "new", "HYN-2026", "--province", "Hưng Yên", "--unit", "tỉnh",
                                    "--from", "XYZ-1999", "--out", str(tmp_path)])
    assert no_source.exit_code == 1 and "Không có đợt mẫu" in no_source.output
    assert not (tmp_path / "HYN-2026").exists()
    runner.invoke(args=["round", "new", "HYN-2026", "--province", "Hưng Yên", "--unit", "tỉnh",
                        "--out", str(tmp_path)])
    again = runner.invoke(args=["round", "new", "HYN-2026", "--province", "Hưng Yên", "--unit", "tỉnh",
                                "--out", str(tmp_path)])
    assert again.exit_code == 1 and "đã có; không ghi đè" in again.output


def test_round_check_warns_of_a_form_naming_another_province(runner, tmp_path):
    copy = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRE_DIR, copy)
    form = copy / "CC-CX.yaml"
    form.write_text(form.read_text(encoding="utf-8").replace("{unit}\n  {province}", "thành\n  phố Đà Nẵng"),
                    encoding="utf-8")
    made = runner.invoke(args=["round", "new", "HYN-2026", "--province", "Hưng Yên", "--unit", "tỉnh",
                               "--out", str(tmp_path)])
    assert made.exit_code == 0
    checked = runner.invoke(args=["round", "check", str(tmp_path / "HYN-2026"),
                                  "--questionnaires", str(copy)])
    assert checked.exit_code == 0, checked.output
    warning = "CẢNH BÁO Phiếu CC-CX nhắc tới thành phố Đà Nẵng, không phải tỉnh Hưng Yên của đợt"
    assert warning in checked.output
    assert checked.output.count("CẢNH BÁO") == 1


def test_a_form_is_worded_for_the_round_keeping_its_version():
    from survey_service import questionnaires as qn

    form = qn.load_questionnaires(QUESTIONNAIRE_DIR)["HĐ-TP"]
    worded = form.worded_for("Hưng Yên", "tỉnh")
    assert worded.version == form.version and "{unit}" in form.title
    assert worded.title.startswith("Phiếu khảo sát ý kiến đại biểu Hội đồng nhân dân tỉnh đánh giá")
    assert "trên địa bàn tỉnh Hưng Yên" in worded.instructions
    assert qn.other_places(worded, "Hưng Yên") == []
    assert qn.other_places(worded, "Đà Nẵng") == ["tỉnh Hưng Yên"]


def test_the_round_format_page_is_the_one_the_loader_specs_generate():
    from survey_service.questionnaires.rounds import ROUND_FIELDS, format_reference
    from tests.conftest import REPO_DIR

    page = (REPO_DIR / "docs" / "round-format.md").read_text(encoding="utf-8")
    assert page == format_reference(), (
        "docs/round-format.md is out of date: python -c \"from survey_service.questionnaires.rounds import "
        "format_reference; print(format_reference(), end='')\" > docs/round-format.md")
    for key in ("opens_on", "organiser", "province_type", "min_breakdown", "continues", "cells_per"):
        assert f"| `{key}` |" in page
    bundled = yaml.safe_load((QUESTIONNAIRE_DIR / "rounds" / "DNG-2026" / "round.yaml")
                             .read_text(encoding="utf-8"))
    assert set(bundled) <= {f.key for f in ROUND_FIELDS}
