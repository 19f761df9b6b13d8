"""The real QNA-2023 round loads and matches KH 5484/KH-UBND; every class of round-file error is caught."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest
import yaml

from analysis import recommend_sample_size
from survey_service.questionnaires.types import canonical_json
from survey_service.questionnaires import (
    QuestionnaireError,
    QuotaDef,
    load_questionnaires,
    load_round,
    load_scales,
)

REPO_QUESTIONNAIRES = Path(__file__).parent.parent / "questionnaires"
REAL_ROUND = REPO_QUESTIONNAIRES / "rounds" / "QNA-2023"
FIXTURE_QUESTIONNAIRES = Path(__file__).parent / "data" / "questionnaires"
FIXTURE_ROUND = Path(__file__).parent / "data" / "rounds" / "TEST-2023"

FORMS = ("CC-CT", "CC-ND", "CC-CH", "LĐ-CP", "LĐX-CH", "HĐ-CT", "LĐH-CH", "LĐS-CT")
DEPARTMENTS = {
    "VPUB": "Văn phòng UBND tỉnh", "SNV": "Sở Nội vụ", "STP": "Sở Tư pháp", "SKHDT": "Sở Kế hoạch và Đầu tư",
    "STC": "Sở Tài chính", "SCT": "Sở Công Thương", "SNNPTNT": "Sở Nông nghiệp và Phát triển nông thôn",
    "SGTVT": "Sở Giao thông vận tải", "SXD": "Sở Xây dựng", "STNMT": "Sở Tài nguyên và Môi trường",
    "STTTT": "Sở Thông tin và Truyền thông", "SLDTBXH": "Sở Lao động - Thương binh và Xã hội",
    "SVHTTDL": "Sở Văn hóa, Thể thao và Du lịch", "SKHCN": "Sở Khoa học và Công nghệ",
    "SGDDT": "Sở Giáo dục và Đào tạo", "SYT": "Sở Y tế", "TTRA": "Thanh tra tỉnh", "BDT": "Ban Dân tộc",
    "SNGV": "Sở Ngoại vụ", "BQLKKT": "Ban Quản lý các Khu kinh tế và Khu công nghiệp tỉnh",
}
DISTRICT_NAMES = {
    "UBND thành phố Tam Kỳ", "UBND thành phố Hội An", "UBND thị xã Điện Bàn", "UBND huyện Thăng Bình",
    "UBND huyện Quế Sơn", "UBND huyện Duy Xuyên", "UBND huyện Đại Lộc", "UBND huyện Núi Thành",
    "UBND huyện Phú Ninh", "UBND huyện Tiên Phước", "UBND huyện Hiệp Đức", "UBND huyện Nông Sơn",
    "UBND huyện Bắc Trà My", "UBND huyện Nam Trà My", "UBND huyện Phước Sơn", "UBND huyện Nam Giang",
    "UBND huyện Đông Giang", "UBND huyện Tây Giang",
}
VERTICAL = {"CTHUE": "Cục Thuế tỉnh", "CHQ": "Cục Hải quan tỉnh", "CATINH": "Công an tỉnh",
            "BHXH": "Bảo hiểm Xã hội tỉnh", "KBNN": "Kho bạc Nhà nước tỉnh"}


@pytest.fixture(scope="module")
def questionnaires():
    return load_questionnaires(REPO_QUESTIONNAIRES)


@pytest.fixture(scope="module")
def rnd(questionnaires):
    return load_round(REAL_ROUND, questionnaires)


# ---------------------------------------------------------------------------------------------- real round


def test_round_header(rnd):
    assert rnd.code == "QNA-2023" and rnd.year == 2023 and rnd.province == "Quảng Nam"
    assert rnd.name == "Điều tra xã hội học xác định Chỉ số CCHC năm 2023"
    assert rnd.legal_basis == "Kế hoạch 5484/KH-UBND ngày 16/8/2023"
    assert (rnd.opens_on, rnd.closes_on) == (dt.date(2023, 9, 1), dt.date(2023, 10, 30))
    assert rnd.portal == "cchc.quangnam.gov.vn"
    assert rnd.form_codes == FORMS
    assert dict(rnd.settings) == {
        "double_entry_rate": 0.10, "double_entry_first_sheets": 20,
        "unsampled_keyed_count_as_verified": True, "surplus_in_analysis": False, "min_breakdown": 5,
        "phuc_tra_share": 0.05, "phuc_tra_failure_threshold": 0.2, "phuc_tra_min_failures": 2,
        "phuc_tra_sheets_per_day": 30,
    }


def test_the_43_agencies(rnd):
    assert len(rnd.agencies) == 43
    kinds = ("department", "district", "vertical")
    by_kind = {k: {a.code: a.name for a in rnd.agencies_of_kind(k)} for k in kinds}
    assert by_kind["department"] == DEPARTMENTS
    assert set(by_kind["district"].values()) == DISTRICT_NAMES and len(by_kind["district"]) == 18
    assert by_kind["vertical"] == VERTICAL
    assert {"TAMKY", "HOIAN", "DIENBAN"} <= set(by_kind["district"])
    assert rnd.agency("DIENBAN").name == "UBND thị xã Điện Bàn"
    assert all(a.code.isascii() and a.code.isupper() for a in rnd.agencies)
    assert all(unicodedata.is_normalized("NFC", a.name) for a in rnd.agencies)
    with pytest.raises(KeyError):
        rnd.agency("NOPE")


def test_paper_quotas_are_those_of_the_plan(rnd):
    paper = [q for q in rnd.quotas if q.channel == "paper"]
    totals = {f: sum(q.target for q in paper if q.form_code == f) for f in ("HĐ-CT", "LĐH-CH", "LĐS-CT")}
    assert totals == {"HĐ-CT": 30, "LĐH-CH": 40, "LĐS-CT": 36}
    assert sum(q.target for q in paper) == 106
    (hd,) = rnd.quotas_for("HĐ-CT")
    assert hd == QuotaDef("HĐ-CT", None, "paper", 30, hd.note)
    ldh = rnd.quotas_for("LĐH-CH")
    assert {q.agency for q in ldh} == set(DEPARTMENTS) and {q.target for q in ldh} == {2}
    assert all("ngành dọc không có phiếu LĐH-CH" in q.note for q in ldh)  # the reading of the plan is recorded
    lds = rnd.quotas_for("LĐS-CT")
    assert len(lds) == 18 and {rnd.agency(q.agency).kind for q in lds} == {"district"}
    assert {q.target for q in lds} == {2}


def recommended_online_targets(rnd):
    """The online target of each staff count under the round's own sample-size rule."""
    rule = rnd.methodology["online_sample_size"]
    return {(s.form_code, s.agency): recommend_sample_size(s.staff, margin=rule["margin"], floor=rule["floor"])
            for s in rnd.staff_counts}


def test_online_quotas_follow_the_staff_counts(rnd):
    online = {(q.form_code, q.agency): q.target for q in rnd.quotas if q.channel == "online"}
    assert recommended_online_targets(rnd) == online
    kinds = {f: {rnd.agency(a).kind for (form, a) in online if form == f} for f in {f for f, _ in online}}
    assert kinds == {"CC-CT": {"department"}, "CC-ND": {"vertical"}, "CC-CH": {"district"},
                     "LĐ-CP": {"district"}, "LĐX-CH": {"district"}}
    assert len([1 for f, _ in online if f == "CC-CT"]) == 20
    assert len([1 for f, _ in online if f == "CC-CH"]) == 18
    assert len([1 for f, _ in online if f == "LĐX-CH"]) == 18
    assert len([1 for f, _ in online if f == "CC-ND"]) == 5


def test_staff_counts_are_marked_as_demo(rnd):
    assert rnd.staff_counts and {s.source for s in rnd.staff_counts} == {"demo"}
    with (REAL_ROUND / "staff_counts.csv").open(encoding="utf-8") as fh:
        assert {row["source"] for row in csv.DictReader(fh)} == {"demo"}
    readme = (REAL_ROUND / "README.md").read_text(encoding="utf-8")
    assert "demo" in readme.lower() and "staff_counts.csv" in readme


def test_division_mapping(rnd):
    supervised = {dep for d in rnd.divisions for dep in d.supervised_by}
    assert set(DEPARTMENTS) - supervised == {"SNGV", "BQLKKT"}
    assert rnd.supervisors_of("TCKH") == ("STC", "SKHDT")
    assert set(rnd.supervisors_of("VHTT")) == {"SVHTTDL", "STTTT"}
    assert {"SCT", "SXD", "SGTVT"} <= set(rnd.supervisors_of("KTHT"))
    assert rnd.supervisors_of("VP") == ("VPUB",)
    assert all(rnd.agency(dep).kind == "department" for dep in supervised)
    # LĐ-CP respondents are sampled per district: one quota cell per district
    assert {q.agency for q in rnd.quotas_for("LĐ-CP")} == {a.code for a in rnd.agencies_of_kind("district")}


def test_methodology(rnd, questionnaires):
    m = rnd.methodology
    assert isinstance(m, dict)
    assert m["coefficients"] == {"DG4": "linear", "HL5": "linear", "TS4": "linear", "CK": "linear"}
    assert m["satisfaction_scale"] == "HL5" and m["positive"]["HL5"] == ["5", "4"]
    assert m["group_weights"]["department"] == {"CC-CT": 0.30, "LĐ-CP": 0.25, "LĐH-CH": 0.25, "HĐ-CT": 0.20}
    # KH 5484 plans LĐH-CH as 2 × 20 departments: no LĐH-CH sheet rates a vertical agency
    assert m["group_weights"]["vertical"] == {"CC-ND": 0.40, "HĐ-CT": 0.25}
    for kind in ("department", "district", "vertical"):
        assert sum(m["group_weights"][kind].values()) == pytest.approx(1.0 if kind != "vertical" else 0.65)
        assert sum(m["max_points"][kind].values()) == 30
        assert set(m["max_points"][kind]) == {f"A{n}" for n in range(1, 9)}
    expected_n_min = {f: (2 if questionnaires[f].channel == "paper" else 3) for f in FORMS}
    assert {f: m["min_respondents"][f] for f in FORMS} == expected_n_min
    assert m["min_answered_share"] == 0.5
    assert m["online_sample_size"] == {"margin": 0.10, "floor": 15}
    assert "illustration" in (REAL_ROUND / "methodology.yaml").read_text(encoding="utf-8").lower()


def test_definition_and_content_hash(rnd, questionnaires):
    d = rnd.definition()
    assert json.loads(json.dumps(d, ensure_ascii=False)) == d
    assert d["opens_on"] == "2023-09-01" and len(d["agencies"]) == 43
    assert d["form_versions"] == {f: questionnaires[f].version for f in FORMS}
    # the full sha256 of the canonical definition: the same round gives the same hash, any change another
    assert rnd.content_hash == hashlib.sha256(canonical_json(d).encode("utf-8")).hexdigest()
    changed = dataclasses.replace(rnd, opens_on=rnd.opens_on + dt.timedelta(days=1))
    assert re.fullmatch(r"[0-9a-f]{64}", changed.content_hash) and changed.content_hash != rnd.content_hash
    again = load_round(REAL_ROUND, load_questionnaires(REPO_QUESTIONNAIRES))
    assert again == rnd and again.content_hash == rnd.content_hash


def test_content_hash_is_nfc_insensitive(rnd, questionnaires, tmp_path):
    copy = tmp_path / "rounds" / "QNA-2023"
    shutil.copytree(REAL_ROUND, copy)
    for path in copy.iterdir():
        path.write_text(unicodedata.normalize("NFD", path.read_text(encoding="utf-8")), encoding="utf-8")
    # outside questionnaires/rounds/ the methodology's scales (CK is used by no form) are passed explicitly
    nfd = load_round(copy, questionnaires, scales=load_scales(REPO_QUESTIONNAIRES / "scales.yaml"))
    assert nfd.content_hash == rnd.content_hash


@pytest.mark.parametrize(
    ("population", "expected"),
    [(60, 38), (0, 0), (10, 10), (15, 15), (20, 17), (100, 50), (200, 67), (1000, 91), (100000, 100)],
)
def test_recommend_sample_size(population, expected):
    assert recommend_sample_size(population, margin=0.10, floor=15) == expected


# ---------------------------------------------------------------------------------------------- fixture round


@pytest.fixture(scope="module")
def fixture_questionnaires():
    return load_questionnaires(FIXTURE_QUESTIONNAIRES)


def test_fixture_round_loads(fixture_questionnaires):
    r = load_round(FIXTURE_ROUND, fixture_questionnaires)
    assert r.code == "TEST-2023" and len(r.agencies) == 4
    online = {(q.form_code, q.agency): q.target for q in r.quotas if q.channel == "online"}
    assert recommended_online_targets(r) == online


# ---------------------------------------------------------------------------------------------- errors


def _copy_round(tmp_path: Path) -> Path:
    directory = tmp_path / "rounds" / "TEST-2023"
    shutil.copytree(FIXTURE_ROUND, directory)
    return directory


def _edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _append(text: str):
    return lambda t: t + text


def _replace(old: str, new: str):
    def change(t: str) -> str:
        assert old in t, old
        return t.replace(old, new)
    return change


def _append_column(name, values):
    """Add a CSV column, with ``values`` (first column -> value) and blanks elsewhere."""
    def change(t: str) -> str:
        header, *rows = t.splitlines()
        return "\n".join([f"{header},{name}"] + [f"{r},{values.get(r.split(',')[0], '')}" for r in rows]) + "\n"
    return change


def _del(d, key):
    del d[key]


def _set(d, path, value):
    *parents, last = path
    for key in parents:
        d = d[key]
    d[last] = value


# (file edited, "yaml"|"text", change, file named, item named (row number, key…), reason fragment)
ROUND_CASES = {
    # agencies.csv
    "duplicate agency code": (
        "agencies.csv", "text", _append("SNV,department,Sở Nội vụ (lặp)\n"), "agencies.csv", "6",
        "mã cơ quan 'SNV' bị trùng",
    ),
    "undeclared agency kind": (
        "agencies.csv", "text", _replace("CTHUE,vertical", "CTHUE,central"), "agencies.csv", "5",
        "loại cơ quan 'central' chưa khai báo trong agency_kinds của round.yaml (department, district, vertical)",
    ),
    "continuation that is not ROUND:AGENCY": (
        "agencies.csv", "text", _append_column("continues", {"SNV": "SNV"}), "agencies.csv", "2",
        "continues 'SNV' phải có dạng MÃ_ĐỢT:MÃ_CƠ_QUAN (ví dụ QNA-2023:SNV)",
    ),
    "continuation of its own round": (
        "agencies.csv", "text", _append_column("continues", {"STC": "TEST-2023:SNV"}), "agencies.csv", "3",
        "continues 'TEST-2023:SNV': một cơ quan chỉ nối tiếp cơ quan của đợt trước, không nối tiếp cơ quan "
        "của chính đợt này",
    ),
    "continuation of a round that is not there": (
        "agencies.csv", "text", _append_column("continues", {"STC": "QNA-2019:STC"}), "agencies.csv", "STC",
        "nối tiếp một cơ quan của đợt QNA-2019, nhưng không tìm thấy thư mục đợt QNA-2019 bên cạnh thư mục đợt này",
    ),
    "agency without name": (
        "agencies.csv", "text", _append("SYT,department,\n"), "agencies.csv", "6", "thiếu tên cơ quan (name)",
    ),
    "bad agency code": (
        "agencies.csv", "text", _append("Sở Y tế,department,Sở Y tế\n"), "agencies.csv", "6",
        "mã cơ quan 'Sở Y tế' không hợp lệ (chữ in hoa, số, dấu gạch ngang)",
    ),
    "unknown agencies column": (
        "agencies.csv", "text", _replace("code,kind,name", "code,kind,name,short"), "agencies.csv", None,
        "cột không được hỗ trợ: short",
    ),
    # quotas.csv
    "quota for unknown form": (
        "quotas.csv", "text", _append("CC-XX,SNV,online,5,\n"), "quotas.csv", "9", "mẫu phiếu 'CC-XX' không "
                                                                                   "có trong đợt này (forms "
                                                                                   "của round.yaml)",
    ),
    "quota for unknown agency": (
        "quotas.csv", "text", _append("LĐH-CH,SYT,paper,2,\n"), "quotas.csv", "9", "không có cơ quan 'SYT' "
                                                                                   "trong agencies.csv",
    ),
    "quota kind not rated by the form": (
        "quotas.csv", "text", _append("LĐH-CH,TAMKY,paper,2,\n"), "quotas.csv", "9",
        "ô chỉ tiêu của mẫu LĐH-CH chia theo cơ quan loại department hoặc vertical (TAMKY thuộc loại district)",
    ),
    "duplicate quota cell": (
        "quotas.csv", "text", _append("LĐH-CH,SNV,paper,1,\n"), "quotas.csv", "9",
        "ô chỉ tiêu bị trùng (LĐH-CH, SNV)",
    ),
    "duplicate matrix cell": (
        "quotas.csv", "text", _append("HĐ-CT,,paper,1,\n"), "quotas.csv", "9",
        "ô chỉ tiêu bị trùng (HĐ-CT, để trống)",
    ),
    "negative target": (
        "quotas.csv", "text", _replace("LĐH-CH,SNV,paper,2", "LĐH-CH,SNV,paper,-2"), "quotas.csv", "3",
        "target không được âm, nhưng là -2",
    ),
    "non-integer target": (
        "quotas.csv", "text", _replace("LĐH-CH,SNV,paper,2", "LĐH-CH,SNV,paper,2.5"), "quotas.csv", "3",
        "target '2.5' không phải số nguyên",
    ),
    "missing target": (
        "quotas.csv", "text", _replace("LĐH-CH,SNV,paper,2", "LĐH-CH,SNV,paper,"), "quotas.csv", "3",
        "thiếu target",
    ),
    "matrix quota with an agency": (
        "quotas.csv", "text", _replace("HĐ-CT,,paper,3", "HĐ-CT,SNV,paper,3"), "quotas.csv", "2",
        "HĐ-CT là phiếu dạng ma trận: ô chỉ tiêu duy nhất của nó để trống cột agency",
    ),
    "non-matrix quota without agency": (
        "quotas.csv", "text", _append("LĐH-CH,,paper,2,\n"), "quotas.csv", "9",
        "mẫu LĐH-CH cần mã cơ quan ở mọi ô chỉ tiêu",
    ),
    "quota channel differs from the form": (
        "quotas.csv", "text", _replace("LĐH-CH,SNV,paper", "LĐH-CH,SNV,online"), "quotas.csv", "3",
        "kênh 'online' khác kênh của mẫu LĐH-CH ('paper')",
    ),
    "unknown quota channel": (
        "quotas.csv", "text", _replace("LĐH-CH,SNV,paper", "LĐH-CH,SNV,post"), "quotas.csv", "3",
        "kênh 'post' không hợp lệ (online hoặc paper)",
    ),
    "quota row with too many fields": (
        "quotas.csv", "text", _append("LĐH-CH,CTHUE,paper,2,,extra\n"), "quotas.csv", "9",
        "có 6 ô, dòng tiêu đề có 5 cột",
    ),
    "missing quota column": (
        "quotas.csv", "text", _replace("form,agency,channel,target,note", "form,agency,target,note"),
        "quotas.csv", None, "thiếu cột: channel",
    ),
    "supervising quota for a department": (
        "quotas.csv", "text", _append("LĐ-CP,STC,online,5,\n"), "quotas.csv", "9",
        "ô chỉ tiêu của mẫu LĐ-CP chia theo cơ quan loại district (STC thuộc loại department)",
    ),
    # supervising.yaml
    "division mapped to unknown agency": (
        "supervising.yaml", "yaml", lambda d: d["LĐ-CP"]["divisions"][0]["supervised_by"].append("SYT"),
        "supervising.yaml", "NV", "không có cơ quan 'SYT' trong agencies.csv",
    ),
    "division mapped to an agency the form does not rate": (
        "supervising.yaml", "yaml", lambda d: d["LĐ-CP"]["divisions"][1]["supervised_by"].append("CTHUE"),
        "supervising.yaml", "TCKH", "CTHUE thuộc loại vertical; mẫu LĐ-CP đánh giá cơ quan loại department",
    ),
    "duplicate division": (
        "supervising.yaml", "yaml", lambda d: d["LĐ-CP"]["divisions"].append(dict(d["LĐ-CP"]["divisions"][0])),
        "supervising.yaml", "NV", "mã đơn vị bị trùng (đã có ở LĐ-CP)",
    ),
    "division without supervisors": (
        "supervising.yaml", "yaml", lambda d: _set(d, ("LĐ-CP", "divisions", 0, "supervised_by"), []),
        "supervising.yaml", "NV", "supervised_by phải là một danh sách có ít nhất một phần tử",
    ),
    "unknown division key": (
        "supervising.yaml", "yaml", lambda d: d["LĐ-CP"]["divisions"][0].update(level="huyện"),
        "supervising.yaml", "NV", "mục không được hỗ trợ (unknown key): level",
    ),
    "mapping for a form that does not supervise": (
        "supervising.yaml", "yaml", lambda d: d.update({"CC-CT": d["LĐ-CP"]}), "supervising.yaml", None,
        "tệp (mỗi mẫu phiếu đánh giá cơ quan quản lý một mục): mục không được hỗ trợ (unknown key): CC-CT",
    ),
    "mapping without its labels": (
        "supervising.yaml", "yaml", lambda d: _del(d["LĐ-CP"], "unit"), "supervising.yaml", "LĐ-CP",
        "thiếu mục bắt buộc (missing key): unit",
    ),
    "mapping with cells per an undeclared kind": (
        "supervising.yaml", "yaml", lambda d: d["LĐ-CP"].update(cells_per="commune"), "supervising.yaml",
        "LĐ-CP", "cells_per 'commune' không phải loại cơ quan của đợt này",
    ),
    # staff_counts.csv
    "staff count without source": (
        "staff_counts.csv", "text", _replace("SNV,CC-CT,60,demo", "SNV,CC-CT,60,"), "staff_counts.csv", "2",
        "thiếu nguồn (source: số liệu lấy từ đâu)",
    ),
    "staff counts without source column": (
        "staff_counts.csv", "text",
        lambda t: "\n".join(line.rsplit(",", 1)[0] for line in t.splitlines()) + "\n", "staff_counts.csv",
        None, "thiếu cột: source",
    ),
    "staff count for a paper form": (
        "staff_counts.csv", "text", _append("SNV,LĐH-CH,10,demo\n"), "staff_counts.csv", "5",
        "số cán bộ chỉ dùng cho mẫu phiếu trực tuyến theo từng cơ quan; LĐH-CH không phải mẫu như vậy",
    ),
    "staff count for unknown agency": (
        "staff_counts.csv", "text", _append("SYT,CC-CT,10,demo\n"), "staff_counts.csv", "5",
        "không có cơ quan 'SYT' trong agencies.csv",
    ),
    "negative staff count": (
        "staff_counts.csv", "text", _replace("STC,CC-CT,10", "STC,CC-CT,-10"), "staff_counts.csv", "3",
        "staff không được âm, nhưng là -10",
    ),
    "duplicate staff count": (
        "staff_counts.csv", "text", _append("SNV,CC-CT,61,demo\n"), "staff_counts.csv", "5",
        "số cán bộ bị trùng (SNV, CC-CT)",
    ),
    # round.yaml
    "kind without a label": (
        "round.yaml", "yaml", lambda d: _del(d["agency_kinds"][0], "label"), "round.yaml", "department",
        "thiếu mục bắt buộc (missing key): label",
    ),
    "kind declared twice": (
        "round.yaml", "yaml", lambda d: d["agency_kinds"].append(dict(d["agency_kinds"][0])), "round.yaml",
        "department", "khai báo hai lần",
    ),
    "kind that is not a code": (
        "round.yaml", "yaml", lambda d: d["agency_kinds"][0].update(code="Sở"), "round.yaml", "Sở",
        "code 'Sở' không phải mã hợp lệ (chữ, số, dấu gạch ngang)",
    ),
    "kind without agencies": (
        "round.yaml", "yaml", lambda d: d["agency_kinds"].append({"code": "commune", "label": "UBND cấp xã",
                                                                  "plural": "UBND các xã"}),
        "round.yaml", "commune", "không có cơ quan nào thuộc loại này trong agencies.csv",
    ),
    "form rating an undeclared kind": (
        "round.yaml", "yaml", lambda d: _set(d, ("agency_kinds",), d["agency_kinds"][:2]), "agencies.csv", "5",
        "loại cơ quan 'vertical' chưa khai báo trong agency_kinds của round.yaml (department, district)",
    ),
    "own-staff form that is not of the round": (
        "round.yaml", "yaml", lambda d: d["own_staff_forms"].append("CC-ND"), "round.yaml", None,
        "own_staff_forms: 'CC-ND' không phải mẫu phiếu của đợt này",
    ),
    "own-staff form that rates other agencies": (
        "round.yaml", "yaml", lambda d: d["own_staff_forms"].append("LĐH-CH"), "round.yaml", None,
        "own_staff_forms: LĐH-CH đánh giá cơ quan loại 'assigned'; chỉ mẫu phiếu về chính cơ quan của người "
        "trả lời (rates: own) mới do cán bộ của cơ quan đó trả lời",
    ),
    "round lists an unknown form": (
        "round.yaml", "yaml", lambda d: d["forms"].append("CC-ND"), "round.yaml", None,
        "không có mẫu phiếu 'CC-ND' (không có tệp mẫu phiếu nào mang mã này)",
    ),
    "round code differs from its directory": (
        "round.yaml", "yaml", lambda d: d.update(code="TEST-2024"), "round.yaml", None,
        "mã đợt 'TEST-2024' phải trùng tên thư mục 'TEST-2023'",
    ),
    "unknown round key": (
        "round.yaml", "yaml", lambda d: d.update(budget=1), "round.yaml", None, "mục không được hỗ trợ "
                                                                                "(unknown key): budget",
    ),
    "missing round key": (
        "round.yaml", "yaml", lambda d: _del(d, "portal"), "round.yaml", None,
        "thiếu mục bắt buộc (missing key): portal",
    ),
    "unknown setting": (
        "round.yaml", "yaml", lambda d: d["settings"].update(triple_entry=True), "round.yaml", "settings",
        "mục không được hỗ trợ (unknown key): triple_entry",
    ),
    "setting of the wrong type": (
        "round.yaml", "yaml", lambda d: d["settings"].update(surplus_in_analysis="no"), "round.yaml",
        "settings", "surplus_in_analysis phải là true (có) hoặc false (không), nhưng là 'no'",
    ),
    "breakdown threshold below 1": (
        "round.yaml", "yaml", lambda d: d["settings"].update(min_breakdown=0), "round.yaml", "settings",
        "min_breakdown phải từ 1 trở lên, nhưng là 0",
    ),
    "double entry rate above 1": (
        "round.yaml", "yaml", lambda d: d["settings"].update(double_entry_rate=10), "round.yaml", "settings",
        "double_entry_rate phải nằm trong khoảng từ 0 đến 1",
    ),
    "closes before it opens": (
        "round.yaml", "yaml", lambda d: d.update(closes_on=dt.date(2023, 8, 1)), "round.yaml", None,
        "closes_on (ngày đóng) trước opens_on (ngày mở)",
    ),
    "bad date": (
        "round.yaml", "yaml", lambda d: d.update(opens_on="1/9/2023"), "round.yaml", None,
        "opens_on phải là một ngày dạng YYYY-MM-DD, nhưng là '1/9/2023'",
    ),
    "date without dashes": (
        "round.yaml", "yaml", lambda d: d.update(opens_on="20230901"), "round.yaml", None,
        "opens_on phải là một ngày dạng YYYY-MM-DD, nhưng là '20230901'",
    ),
    "date with a space before it": (
        "round.yaml", "yaml", lambda d: d.update(closes_on=" 2023-10-30"), "round.yaml", None,
        "closes_on phải là một ngày dạng YYYY-MM-DD, nhưng là ' 2023-10-30'",
    ),
    # methodology.yaml
    "methodology: unknown scale": (
        "methodology.yaml", "yaml", lambda d: d["coefficients"].update(XX="linear"),
        "methodology.yaml", "coefficients", "không có thang đo 'XX'",
    ),
    "methodology: scale without preset": (
        "methodology.yaml", "yaml", lambda d: d["coefficients"].pop("HL5"), "methodology.yaml",
        "coefficients", "chưa có cách quy đổi điểm cho thang đo HL5",
    ),
    "methodology: unknown positive option": (
        "methodology.yaml", "yaml", lambda d: d["positive"].update(DG4=["4", "K"]),
        "methodology.yaml", "positive", "DG4: 'K' không phải phương án có điểm của thang đo",
    ),
    "methodology: unknown satisfaction scale": (
        "methodology.yaml", "yaml", lambda d: d.update(satisfaction_scale="HL7"), "methodology.yaml",
        "satisfaction_scale", "không có thang đo 'HL7'",
    ),
    "methodology: unknown satisfaction item": (
        "methodology.yaml", "yaml", lambda d: d["satisfaction_items"].append("Z99"), "methodology.yaml",
        "satisfaction_items", "không có câu hỏi 'Z99' trong mẫu phiếu nào của đợt",
    ),
    "methodology: unknown criterion": (
        "methodology.yaml", "yaml", lambda d: d["max_points"]["district"].update(A9=2), "methodology.yaml",
        "max_points", "district: không có lĩnh vực 'A9'",
    ),
    "methodology: unknown kind": (
        "methodology.yaml", "yaml", lambda d: d["max_points"].update(commune={"A1": 1}), "methodology.yaml",
        "max_points", "không có loại cơ quan 'commune' (đợt khai báo: department, district, vertical)",
    ),
    "methodology: kind missing": (
        "methodology.yaml", "yaml", lambda d: d["group_weights"].pop("vertical"), "methodology.yaml",
        "group_weights", "thiếu loại cơ quan vertical của đợt",
    ),
    "methodology: unknown form": (
        "methodology.yaml", "yaml", lambda d: d["group_weights"]["district"].update({"CC-CH": 1}),
        "methodology.yaml", "group_weights", "không có mẫu phiếu 'CC-CH' trong đợt này",
    ),
    "methodology: form does not rate the kind": (
        "methodology.yaml", "yaml", lambda d: d["group_weights"]["vertical"].update({"CC-CT": 0.1}),
        "methodology.yaml", "group_weights", "vertical: mẫu CC-CT không đánh giá cơ quan loại vertical",
    ),
    "methodology: weight for a form without cells for the kind": (
        "quotas.csv", "text", _replace("LĐH-CH,CTHUE,paper,2,\n", ""), "methodology.yaml", "group_weights",
        "vertical: mẫu LĐH-CH không có ô chỉ tiêu nào cho cơ quan loại vertical trong quotas.csv, nên trọng "
        "số này không bao giờ được dùng (bỏ trọng số hoặc thêm ô chỉ tiêu)",
    ),
    "methodology: n_min missing a form": (
        "methodology.yaml", "yaml", lambda d: d["min_respondents"].pop("LĐH-CH"), "methodology.yaml",
        "min_respondents", "chưa có số người trả lời tối thiểu cho mẫu LĐH-CH",
    ),
    "methodology: a name from before the settings took the analysis's names": (
        "methodology.yaml", "yaml", lambda d: d.update(reliability={"lonely_psu": "adjust"}),
        "methodology.yaml", None, "mục không được hỗ trợ (unknown key): reliability",
    ),
    "methodology: bad margin": (
        "methodology.yaml", "yaml", lambda d: d["online_sample_size"].update(margin=0), "methodology.yaml",
        "online_sample_size", "margin phải lớn hơn 0 và nhỏ hơn 1, nhưng là 0.0",
    ),
    "methodology: unknown key": (
        "methodology.yaml", "yaml", lambda d: d.update(bonus_points=5), "methodology.yaml", None,
        "mục không được hỗ trợ (unknown key): bonus_points",
    ),
}


@pytest.mark.parametrize("case", list(ROUND_CASES))
def test_round_error_is_reported(case, tmp_path, fixture_questionnaires):
    edited, how, change, file, item, reason = ROUND_CASES[case]
    directory = _copy_round(tmp_path)
    path = directory / edited
    if how == "yaml":
        _edit_yaml(path, change)
    else:
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(QuestionnaireError) as info:
        load_round(directory, fixture_questionnaires)
    err = info.value
    assert (err.file, err.item) == (file, item), str(err)
    assert reason in err.reason, str(err)


def test_row_errors_name_the_row(tmp_path, fixture_questionnaires):
    directory = _copy_round(tmp_path)
    path = directory / "quotas.csv"
    path.write_text(path.read_text(encoding="utf-8") + "LĐH-CH,SNV,paper,1,\n", encoding="utf-8")
    with pytest.raises(QuestionnaireError) as info:
        load_round(directory, fixture_questionnaires)
    assert str(info.value) == "quotas.csv: dòng 9: ô chỉ tiêu bị trùng (LĐH-CH, SNV)"


def test_supervising_form_needs_its_mapping(tmp_path, fixture_questionnaires):
    directory = _copy_round(tmp_path)
    (directory / "supervising.yaml").unlink()
    with pytest.raises(QuestionnaireError, match="supervising.yaml: không tìm thấy tệp: mẫu phiếu LĐ-CP đánh giá"):
        load_round(directory, fixture_questionnaires)


def test_missing_required_round_file(tmp_path, fixture_questionnaires):
    directory = _copy_round(tmp_path)
    (directory / "agencies.csv").unlink()
    with pytest.raises(QuestionnaireError, match="agencies.csv: không tìm thấy tệp"):
        load_round(directory, fixture_questionnaires)


def test_methodology_may_name_scales_passed_explicitly(tmp_path, fixture_questionnaires):
    directory = _copy_round(tmp_path)
    _edit_yaml(directory / "methodology.yaml", lambda d: d["coefficients"].update(CK="top2"))
    with pytest.raises(QuestionnaireError, match="không có thang đo 'CK'"):
        load_round(directory, fixture_questionnaires)
    scales = load_scales(REPO_QUESTIONNAIRES / "scales.yaml")
    assert load_round(directory, fixture_questionnaires,
                      scales=scales).methodology["coefficients"]["CK"] == "top2"


# ---------------------------------------------------------------------------------------------- round over round


def _next_round(tmp_path: Path, continues: dict[str, str], *, opens_on=dt.date(2026, 9, 1)) -> Path:
    """TEST-2026 next to TEST-2023: the same files, a later date, and a ``continues`` column."""
    earlier = _copy_round(tmp_path)
    directory = earlier.parent / "TEST-2026"
    shutil.copytree(earlier, directory)
    _edit_yaml(directory / "round.yaml", lambda d: d.update(code="TEST-2026", year=2026, opens_on=opens_on,
                                                            closes_on=opens_on + dt.timedelta(days=60)))
    path = directory / "agencies.csv"
    path.write_text(_append_column("continues", continues)(path.read_text(encoding="utf-8")), encoding="utf-8")
    return directory


def test_an_agency_continues_agencies_of_an_earlier_round(tmp_path, fixture_questionnaires):
    directory = _next_round(tmp_path, {"SNV": "TEST-2023:SNV TEST-2023:STC", "TAMKY": "TEST-2023:TAMKY"})
    r = load_round(directory, fixture_questionnaires)
    assert r.agency("SNV").continues == (("TEST-2023", "SNV"), ("TEST-2023", "STC"))
    assert r.agency("TAMKY").continues == (("TEST-2023", "TAMKY"),) and r.agency("STC").continues == ()
    assert r.definition()["agencies"][0]["continues"] == [["TEST-2023", "SNV"], ["TEST-2023", "STC"]]


def test_a_continuation_that_points_nowhere_is_refused(tmp_path, fixture_questionnaires):
    directory = _next_round(tmp_path, {"STC": "TEST-2023:SYT"})
    with pytest.raises(QuestionnaireError) as info:
        load_round(directory, fixture_questionnaires)
    assert str(info.value) == ("agencies.csv: cơ quan STC: continues TEST-2023:SYT, nhưng đợt TEST-2023 không "
                               "có cơ quan SYT")


def test_a_continuation_names_an_earlier_round(tmp_path, fixture_questionnaires):
    directory = _next_round(tmp_path, {"STC": "TEST-2023:STC"}, opens_on=dt.date(2023, 9, 1))
    with pytest.raises(QuestionnaireError, match="nối tiếp một cơ quan của đợt TEST-2023, nhưng đợt đó không mở trước"):
        load_round(directory, fixture_questionnaires)


def test_earlier_rounds_are_also_looked_up_where_told(tmp_path, fixture_questionnaires):
    directory = _next_round(tmp_path, {"STC": "TEST-2023:STC"})
    moved = tmp_path / "elsewhere" / "TEST-2026"
    shutil.move(directory, moved)
    with pytest.raises(QuestionnaireError, match="không tìm thấy thư mục đợt TEST-2023"):
        load_round(moved, fixture_questionnaires)
    assert load_round(moved, fixture_questionnaires, earlier_rounds=[tmp_path / "rounds"]).agency("STC").continues
