"""The real questionnaire files load and validate; every class of data error is reported clearly."""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import unicodedata
from pathlib import Path

import pytest
import yaml

from analysis import coefficient_preset
from survey_service.questionnaires import (
    VERSION_LENGTH,
    Questionnaire,
    QuestionnaireError,
    canonical_json,
    file_name_for,
    load_criteria,
    load_questionnaire,
    load_questionnaires,
    load_scales,
)

REPO_QUESTIONNAIRES = Path(__file__).parent.parent / "questionnaires"
FIXTURES = Path(__file__).parent / "data" / "questionnaires"

# methodology §5.4: form -> (channel, rates, rated kinds, scale items in order)
EXPECTED = {
    "CC-CT": ("online", "own", ("department",),
              "I01 I02 I03 I04 I05 I06 I07 I08 I09 I10 I11 I12 I13 I14 I15 I16 I17 I18 I19 I20 I21"),
    "CC-ND": ("online", "own", ("vertical",),
              "I01 I02 I03 I05 I06 I07 I08 I10 I11 I12 I13 I14 I16 I17 I18 I19 I20 I21"),
    "CC-CH": ("online", "own", ("district",),
              "I01 I02 I03 I04 I05 I06 H02 I07 I08 I09 I10 I11 I12 I13 I14 I15 I16 I17 I18 I19 I20 I21"),
    "LĐ-CP": ("online", "supervising", ("department",),
              "E01 P01 E03 P03 E05 E06 E07 E08 E09 E10 E11 P02 E14 P04 E16 E18"),
    "LĐX-CH": ("online", "own", ("district",),
               "E01 H01 E03 E05 E06 H02 E07 H03 E09 E10 E11 E12 H04 E14 E15 E16 E17 E18"),
    "HĐ-CT": ("paper", "matrix", ("department", "district", "vertical"),
              "E01 E03 E05 E07 E10 E11 E12 E15 E16 E18"),
    "LĐH-CH": ("paper", "assigned", ("department", "vertical"),
               "E01 E02 E03 E04 E05 E06 E07 E08 E09 E10 E11 E12 E13 E14 E15 E16 E17 E18"),
    "LĐS-CT": ("paper", "assigned", ("district",),
               "E01 H05 E03 E05 E06 H02 E07 H03 E09 E10 E11 E12 E14 E15 E16 E17 E18"),
}
#: Round DNG-2026's forms: the same items, the commune level in place of the district level.
DNG_FORMS = {
    "CC-TP": ("online", "own", ("department",), EXPECTED["CC-CT"][3]),
    "CC-NT": ("online", "own", ("vertical",), EXPECTED["CC-ND"][3]),
    "CC-CX": ("online", "own", ("commune",), EXPECTED["CC-CH"][3]),
    "LĐ-PX": ("online", "supervising", ("department",), EXPECTED["LĐ-CP"][3]),
    "HĐ-TP": ("paper", "matrix", ("department", "vertical"), EXPECTED["HĐ-CT"][3]),
    "LĐX-TP": ("paper", "assigned", ("department", "vertical"), EXPECTED["LĐH-CH"][3]),
    "LĐS-CX": ("paper", "assigned", ("commune",), EXPECTED["LĐS-CT"][3]),
}
QNA_FORMS = tuple(EXPECTED)
EXPECTED |= DNG_FORMS
COUNTS = {"CC-CT": 21, "CC-ND": 18, "CC-CH": 22, "LĐ-CP": 16, "LĐX-CH": 18, "HĐ-CT": 10, "LĐH-CH": 18,
          "LĐS-CT": 17, "CC-TP": 21, "CC-NT": 18, "CC-CX": 22, "LĐ-PX": 16, "HĐ-TP": 10, "LĐX-TP": 18, "LĐS-CX": 17}
# area of every bank item (methodology §5.2-5.3)
BANK_AREA = {
    **{f"I{n:02d}": a for a, ns in {1: (1, 2, 3), 2: (4,), 3: (5, 6), 4: (7, 8, 9), 5: (10, 11, 12, 13),
                                     6: (14, 15), 7: (16, 17, 18), 8: (19, 20, 21)}.items() for n in ns},
    **{f"E{n:02d}": a for a, ns in {1: (1, 2), 2: (3, 4), 3: (5, 6), 4: (7, 8), 5: (9, 10, 11), 6: (12, 13),
                                     7: (14, 15), 8: (16, 17, 18)}.items() for n in ns},
    "P01": 1, "P02": 5, "P03": 2, "P04": 7, "H01": 1, "H02": 3, "H03": 4, "H04": 6, "H05": 1,
}
BANK_SCALE = {"I20": "TS4", "E11": "TS4", "I21": "HL5", "E18": "HL5"}


@pytest.fixture(scope="module")
def real() -> dict[str, Questionnaire]:
    return load_questionnaires(REPO_QUESTIONNAIRES)


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


# ---------------------------------------------------------------------------------------------- real files


def test_declared_forms_are_the_codes_of_both_rounds(real):
    assert list(real) == list(EXPECTED)
    assert sum(len(q.scale_items) for q in real.values()) == sum(COUNTS.values()) == 140 + 122


@pytest.mark.parametrize("code", list(EXPECTED))
def test_real_questionnaire_validates(real, code):
    channel, rates, kinds, items = EXPECTED[code]
    q = real[code]
    assert q.code == code and q.file_name == file_name_for(code)
    assert (REPO_QUESTIONNAIRES / file_name_for(code)).is_file()
    assert "Đ" in code or code.startswith("CC-")
    assert (q.channel, q.rates, q.rated_kinds) == (channel, rates, kinds)
    assert [i.code for i in q.scale_items] == items.split()
    assert len(q.scale_items) == COUNTS[code]
    for item in q.scale_items:
        assert item.criterion == f"A{BANK_AREA[item.code]}", item.code
        assert item.scale == BANK_SCALE.get(item.code, "DG4"), item.code
        assert item.required is True and item.max_length is None
        assert item.text.endswith("?") and len(item.text) > 40
    # sections follow the PAR areas in order, then one free-text section
    criteria = [s.criterion for s in q.sections]
    assert criteria[-1] is None and criteria[:-1] == sorted(criteria[:-1])
    assert all(i.criterion == s.criterion for s in q.sections[:-1] for i in s.items)
    (kn,) = q.text_items
    assert q.sections[-1].items == (kn,)
    assert (kn.code, kn.kind, kn.scale, kn.criterion, kn.required, kn.max_length) == (
        "KN", "text", None, None, False, 2000)
    assert q.title.startswith("Phiếu khảo sát ý kiến")
    assert "không ghi họ tên" in q.instructions
    assert set(q.scales) == {"DG4", "HL5", "TS4"}
    assert set(q.criteria) == {s.criterion for s in q.sections if s.criterion}
    assert len(q.version) == VERSION_LENGTH
    assert all(unicodedata.is_normalized("NFC", s) for s in _strings(q.definition()))


def test_cc_ct_title_and_internal_wording(real):
    q = real["CC-CT"]
    assert q.title == "Phiếu khảo sát ý kiến công chức về công tác cải cách hành chính của sở, ban, ngành"
    assert q.respondent_group == "Công chức tại các sở, ban, ngành"
    assert [s.criterion for s in q.sections] == ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", None]


def test_form_files_state_the_source_of_their_wording():
    for code in EXPECTED:
        head = (REPO_QUESTIONNAIRES / file_name_for(code)).read_text(encoding="utf-8").splitlines()[:8]
        text = "\n".join(head)
        assert text.startswith("#") and "proposed question bank" in text
        assert "5484" in text if code in QNA_FORMS else "PROPOSAL" in text and "DNG-2026" in text


def test_real_scales():
    scales = load_scales(REPO_QUESTIONNAIRES / "scales.yaml")
    assert list(scales) == ["DG4", "HL5", "TS4", "CK"]
    assert scales["DG4"].valid_codes == ("4", "3", "2", "1")
    assert scales["HL5"].valid_codes == ("5", "4", "3", "2", "1")
    assert scales["DG4"].positive_codes == ("4", "3") and scales["HL5"].positive_codes == ("5", "4")
    assert scales["TS4"].option("4").label == "Không có" and scales["TS4"].option("4").coefficient == 1.0
    assert scales["CK"].option("2").label == "Đạt"
    for scale in scales.values():
        k = scale.option("K")
        assert (k.excluded, k.coefficient, k.positive) == (True, None, False)
        assert k.label == "Không biết / không đánh giá"
        assert scale.codes[-1] == "K"
        # stored coefficients are the linear preset of methodology §5.1 (higher code = better answer)
        linear = coefficient_preset(sorted(scale.valid_codes, key=int), "linear")
        assert {o.code: o.coefficient for o in scale.options if not o.excluded} == {
            code: round(v, 4) for code, v in linear.items()
        }


def test_real_criteria():
    criteria = load_criteria(REPO_QUESTIONNAIRES / "criteria.yaml")
    assert list(criteria) == [f"A{n}" for n in range(1, 9)]
    assert criteria["A1"].name == "Công tác chỉ đạo, điều hành CCHC"
    assert criteria["A7"].name == "Xây dựng và phát triển Chính quyền điện tử, Chính quyền số"
    assert criteria["A8"].name == "Tác động của CCHC đến người dân, tổ chức và phát triển KT-XH"


@pytest.mark.parametrize(
    ("code", "name"),
    [("CC-CT", "CC-CT.yaml"), ("LĐ-CP", "LD-CP.yaml"), ("LĐH-CH", "LDH-CH.yaml"), ("HĐ-CT", "HD-CT.yaml"),
     (unicodedata.normalize("NFD", "LĐS-CT"), "LDS-CT.yaml"), ("đ-ĐÂ", "d-DA.yaml")],
)
def test_file_name_for(code, name):
    assert file_name_for(code) == name


def test_accessors(real):
    q = real["LĐ-CP"]
    assert q.item("P02").criterion == "A5"
    assert q.items[0].code == "E01" and len(q.items) == 17
    assert q.scales["DG4"].option("K").excluded
    with pytest.raises(KeyError):
        q.item("I01")
    with pytest.raises(KeyError):
        q.scales["DG4"].option("9")


# ---------------------------------------------------------------------------------------------- versions


def _with_old_key(definition: dict) -> dict:
    """A definition as stored before ``target_kinds`` was renamed ``rated_kinds``."""
    return {("target_kinds" if key == "rated_kinds" else key): value for key, value in definition.items()}


def test_version_is_truncated_sha256_of_canonical_definition(real):
    """The rated kinds are hashed under their first name, so the rename kept every version."""
    for q in real.values():
        assert "rated_kinds" in q.definition() and "target_kinds" not in q.definition()
        digest = hashlib.sha256(canonical_json(_with_old_key(q.definition())).encode("utf-8")).hexdigest()
        assert q.version == digest[:16]
    assert len({q.version for q in real.values()}) == len(real)


def test_versions_did_not_change_with_the_rename():
    """The fixture forms' versions as computed when the key was still ``target_kinds`` (a change to these
    files changes them; a change to how versions are hashed must not)."""
    assert {code: q.version for code, q in load_questionnaires(FIXTURES).items()} == {
        "CC-CT": "ed67331245110205", "LĐ-CP": "a0006ab29b810c0d", "HĐ-CT": "1f8d99087ab813b2",
        "LĐH-CH": "99a933488f130e44"}


def test_versions_are_stable_across_loads(real):
    again = load_questionnaires(REPO_QUESTIONNAIRES)
    assert {c: q.version for c, q in again.items()} == {c: q.version for c, q in real.items()}
    assert again == real


def test_nfd_copy_gives_the_same_versions(real, tmp_path):
    copy = tmp_path / "nfd"
    copy.mkdir()
    for path in REPO_QUESTIONNAIRES.glob("*.yaml"):
        text = unicodedata.normalize("NFD", path.read_text(encoding="utf-8"))
        (copy / path.name).write_text(text, encoding="utf-8")
    assert unicodedata.normalize("NFD", "Phiếu") in (copy / "CC-CT.yaml").read_text(encoding="utf-8")
    nfd = load_questionnaires(copy)
    assert list(nfd) == list(real)
    assert {c: q.version for c, q in nfd.items()} == {c: q.version for c, q in real.items()}


def test_version_changes_with_wording_and_scale_coefficients(real, tmp_path):
    copy = _copy_dir(REPO_QUESTIONNAIRES, tmp_path)
    _edit(copy / "CC-CT.yaml", lambda d: d["sections"][0]["items"][0].update(text="Câu hỏi đã sửa?"))
    changed = load_questionnaires(copy)
    assert changed["CC-CT"].version != real["CC-CT"].version
    assert changed["CC-ND"].version == real["CC-ND"].version
    _edit(copy / "scales.yaml", lambda d: d["scales"]["DG4"]["options"][1].update(coefficient=0.7))
    assert load_questionnaires(copy)["CC-ND"].version != real["CC-ND"].version


def test_yaml_comments_and_quoting_do_not_change_the_version(real, tmp_path):
    copy = _copy_dir(REPO_QUESTIONNAIRES, tmp_path)
    data = yaml.safe_load((copy / "HD-CT.yaml").read_text(encoding="utf-8"))
    (copy / "HD-CT.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, width=60), encoding="utf-8")
    assert load_questionnaires(copy)["HĐ-CT"].version == real["HĐ-CT"].version


# ---------------------------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("code", list(EXPECTED))
def test_definition_round_trips(real, code):
    q = real[code]
    stored = json.loads(json.dumps(q.definition()))
    rebuilt = Questionnaire.from_definition(stored, version=q.version)
    assert rebuilt == q
    assert rebuilt.version == q.version
    assert rebuilt.definition() == q.definition()
    assert rebuilt.source == "<definition>"
    assert set(stored["scales"]) == {"DG4", "HL5", "TS4"} and len(stored["criteria"]) >= 7


@pytest.mark.parametrize("code", ["CC-CT", "LĐ-CP", "HĐ-CT"])
def test_a_definition_stored_with_the_old_key_is_read(real, code):
    q = real[code]
    stored = json.loads(json.dumps(_with_old_key(q.definition())))
    rebuilt = Questionnaire.from_definition(stored, version=q.version)
    assert rebuilt == q and rebuilt.rated_kinds == q.rated_kinds
    assert rebuilt.definition() == q.definition()


def test_a_definition_with_both_keys_is_refused(real):
    both = {**real["CC-CT"].definition(), "target_kinds": ["district"]}
    with pytest.raises(QuestionnaireError) as info:
        Questionnaire.from_definition(both)
    assert str(info.value) == "<definition CC-CT>: definition has both 'target_kinds' and 'rated_kinds'"


def test_questionnaires_are_hashable_and_picklable(real):
    q = real["LĐH-CH"]
    assert pickle.loads(pickle.dumps(q)) == q
    assert len({q, Questionnaire.from_definition(q.definition())}) == 1


def test_from_definition_rejects_a_tampered_snapshot(real):
    q = real["CC-CT"]
    tampered = q.definition()
    tampered["sections"][0]["items"][0]["text"] = "Khác?"
    with pytest.raises(QuestionnaireError, match="version mismatch"):
        Questionnaire.from_definition(tampered, version=q.version)
    extra = q.definition()
    extra["colour"] = "red"
    with pytest.raises(QuestionnaireError, match="unknown key"):
        Questionnaire.from_definition(extra)
    unused = q.definition()
    unused["scales"]["CK"] = {"title": "Đạt / Không đạt", "options": [
        {"code": "2", "label": "Đạt", "coefficient": 1.0, "positive": True, "excluded": False},
        {"code": "1", "label": "Không đạt", "coefficient": 0.0, "positive": False, "excluded": False}]}
    with pytest.raises(QuestionnaireError, match="round-trip"):
        Questionnaire.from_definition(unused)


def test_from_definition_normalises_nfd(real):
    q = real["LĐX-CH"]
    nfd = json.loads(unicodedata.normalize("NFD", json.dumps(q.definition(), ensure_ascii=False)))
    assert Questionnaire.from_definition(nfd).version == q.version


# ---------------------------------------------------------------------------------------------- fixture set


def test_fixture_set_loads():
    qs = load_questionnaires(FIXTURES)
    assert list(qs) == ["CC-CT", "LĐ-CP", "HĐ-CT", "LĐH-CH"]
    assert qs["LĐH-CH"].item("E10").required is False
    assert qs["LĐH-CH"].item("KN").max_length == 500
    assert set(qs["CC-CT"].scales) == {"DG4", "HL5"}


# ---------------------------------------------------------------------------------------------- errors


def _copy_dir(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "q"
    dst.mkdir()
    for path in src.glob("*.yaml"):
        shutil.copy(path, dst / path.name)
    return dst


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _item(data, code):
    return next(i for s in data["sections"] for i in s["items"] if i["code"] == code)


def _option(data, scale, code):
    return next(o for o in data["scales"][scale]["options"] if o["code"] == code)


def _del(d, key):
    del d[key]


# (file edited, change, file named in the error, item named in the error, reason fragment)
CASES = {
    "unknown top-level key": (
        "CC-CT.yaml", lambda d: d.update(colour="đỏ"), "CC-CT.yaml", None,
        "mục không được hỗ trợ (unknown key): colour",
    ),
    "old key target_kinds": (
        "CC-CT.yaml", lambda d: d.update(target_kinds=d.pop("rated_kinds")), "CC-CT.yaml", None,
        "mục 'target_kinds' nay gọi là 'rated_kinds' (cùng nội dung: chỉ đổi tên mục; mẫu phiếu giữ nguyên "
        "phiên bản)",
    ),
    "both the old and the new key": (
        "CC-CT.yaml", lambda d: d.update(target_kinds=d["rated_kinds"]), "CC-CT.yaml", None,
        "mục 'target_kinds' nay gọi là 'rated_kinds' (cùng nội dung: chỉ đổi tên mục; mẫu phiếu giữ nguyên phiên bản)",
    ),
    "rated kinds missing": (
        "CC-CT.yaml", lambda d: d.pop("rated_kinds"), "CC-CT.yaml", None,
        "thiếu mục bắt buộc (missing key): rated_kinds",
    ),
    "unknown item key": (
        "CC-CT.yaml", lambda d: _item(d, "I01").update(scael="DG4"), "CC-CT.yaml", "I01",
        "mục không được hỗ trợ (unknown key): scael",
    ),
    "unknown section key": (
        "CC-CT.yaml", lambda d: d["sections"][1].update(note="x"), "CC-CT.yaml", "2", "mục không được hỗ trợ "
                                                                                      "(unknown key): note",
    ),
    "missing required key": (
        "CC-CT.yaml", lambda d: _del(d, "title"), "CC-CT.yaml", None, "thiếu mục bắt buộc (missing key): title",
    ),
    "missing item text": (
        "CC-CT.yaml", lambda d: _del(_item(d, "I12"), "text"), "CC-CT.yaml", "I12",
        "thiếu mục bắt buộc (missing key): text",
    ),
    "empty item text": (
        "CC-CT.yaml", lambda d: _item(d, "I12").update(text="  "), "CC-CT.yaml", "I12",
        "text không được để trống",
    ),
    "mã câu hỏi bị trùng": (
        "CC-CT.yaml", lambda d: _item(d, "I12").update(code="I01"), "CC-CT.yaml", "I01",
        "mã câu hỏi bị trùng",
    ),
    "bad item code": (
        "CC-CT.yaml", lambda d: _item(d, "I12").update(code="i 12"), "CC-CT.yaml", "i 12", "code 'i 12' "
                                                                                           "không phải mã "
                                                                                           "hợp lệ (chữ, số, "
                                                                                           "dấu gạch ngang)",
    ),
    "unknown scale": (
        "CC-CT.yaml", lambda d: _item(d, "I01").update(scale="XX"), "CC-CT.yaml", "I01", "không có thang đo 'XX'",
    ),
    "unknown item criterion": (
        "LD-CP.yaml", lambda d: _item(d, "P02").update(criterion="A9"), "LD-CP.yaml", "P02",
        "không có lĩnh vực 'A9'",
    ),
    "unknown section criterion": (
        "CC-CT.yaml", lambda d: d["sections"][0].update(criterion="A4"), "CC-CT.yaml", "1",
        "không có lĩnh vực 'A4'",
    ),
    "criterion given as a list": (
        "CC-CT.yaml", lambda d: d["sections"][0].update(criterion=["A1"]), "CC-CT.yaml", "1",
        "không có lĩnh vực ['A1']",
    ),
    "scale item without criterion": (
        "CC-CT.yaml",
        lambda d: d["sections"][3]["items"].append( {"code": "X1", "text": "Câu hỏi?", "scale": "DG4"}),
        "CC-CT.yaml", "X1", "câu đánh giá cần lĩnh vực (criterion), ghi ở câu hoặc ở phần chứa nó",
    ),
    "text item with scale": (
        "CC-CT.yaml", lambda d: _item(d, "KN").update(scale="DG4"), "CC-CT.yaml", "KN",
        "câu trả lời bằng chữ (text) không có thang đo",
    ),
    "text item with criterion": (
        "CC-CT.yaml", lambda d: _item(d, "KN").update(criterion="A1"), "CC-CT.yaml", "KN",
        "câu trả lời bằng chữ (text) không tính điểm nên không thuộc lĩnh vực nào",
    ),
    "scale item without scale": (
        "CC-CT.yaml", lambda d: _del(_item(d, "I01"), "scale"), "CC-CT.yaml", "I01",
        "câu đánh giá cần thang đo (scale)",
    ),
    "unknown item type": (
        "CC-CT.yaml", lambda d: _item(d, "I01").update(type="choice"), "CC-CT.yaml", "I01",
        "loại câu (type) 'choice' phải là scale hoặc text",
    ),
    "max_length zero": (
        "CC-CT.yaml", lambda d: _item(d, "KN").update(max_length=0), "CC-CT.yaml", "KN",
        "max_length phải từ 1 trở lên, nhưng là 0",
    ),
    "max_length negative": (
        "CC-CT.yaml", lambda d: _item(d, "KN").update(max_length=-5), "CC-CT.yaml", "KN",
        "max_length phải từ 1 trở lên, nhưng là -5",
    ),
    "max_length not an integer": (
        "CC-CT.yaml", lambda d: _item(d, "KN").update(max_length="nhiều"), "CC-CT.yaml", "KN",
        "max_length phải là số nguyên, nhưng là 'nhiều'",
    ),
    "max_length on a scale item": (
        "CC-CT.yaml", lambda d: _item(d, "I01").update(max_length=10), "CC-CT.yaml", "I01",
        "max_length chỉ dùng cho câu trả lời bằng chữ (text)",
    ),
    "required not a boolean": (
        "CC-CT.yaml", lambda d: _item(d, "I01").update(required="có"), "CC-CT.yaml", "I01",
        "required phải là true (có) hoặc false (không), nhưng là 'có'",
    ),
    "bad channel": (
        "CC-CT.yaml", lambda d: d.update(channel="email"), "CC-CT.yaml", None,
        "kênh (channel) 'email' phải là online hoặc paper",
    ),
    "bad rates": (
        "CC-CT.yaml", lambda d: d.update(rates="others"), "CC-CT.yaml", None, "rates 'others' phải là một "
                                                                              "trong own, supervising, "
                                                                              "assigned, matrix",
    ),
    "bad rated kind": (
        "CC-CT.yaml", lambda d: d.update(rated_kinds=["Sở"]), "CC-CT.yaml", None,
        "rated kind 'Sở' không phải mã hợp lệ (chữ, số, dấu gạch ngang)",
    ),
    "repeated rated kind": (
        "HD-CT.yaml", lambda d: d.update(rated_kinds=["district", "district"]), "HD-CT.yaml", None,
        "rated_kinds ghi một loại cơ quan hai lần",
    ),
    "own on paper": (
        "CC-CT.yaml", lambda d: d.update(channel="paper"), "CC-CT.yaml", None,
        "rates 'own' (cơ quan được đánh giá do mã mời xác định) cần channel online",
    ),
    "assigned online": (
        "LDH-CH.yaml", lambda d: d.update(channel="online"), "LDH-CH.yaml", None,
        "rates 'assigned' (cơ quan được đánh giá in sẵn trên phiếu) cần channel paper",
    ),
    "supervising on paper": (
        "LD-CP.yaml", lambda d: d.update(channel="paper"), "LD-CP.yaml", None,
        "rates 'supervising' (người trả lời chọn đơn vị của mình) cần channel online",
    ),
    "no sections": (
        "CC-CT.yaml", lambda d: d.update(sections=[]), "CC-CT.yaml", None,
        "sections phải là một danh sách có ít nhất một phần tử",
    ),
    "only text items": (
        "HD-CT.yaml", lambda d: d.update(sections=d["sections"][-1:]), "HD-CT.yaml", None,
        "mẫu phiếu không có câu hỏi đánh giá theo thang đo nào",
    ),
    "form code with bad characters": (
        "CC-CT.yaml", lambda d: d.update(code="cc ct"), "CC-CT.yaml", None,
        "form code 'cc ct' không phải mã hợp lệ (chữ, số, dấu gạch ngang)",
    ),
    "file name does not match the code": (
        "CC-CT.yaml", lambda d: d.update(code="HĐ-CT"), "CC-CT.yaml", None,
        "mẫu phiếu mã 'HĐ-CT' phải nằm trong tệp HD-CT.yaml",
    ),
    "code not declared (Đ dropped)": (
        "LD-CP.yaml", lambda d: d.update(code="LD-CP"), "LD-CP.yaml", None,
        "mã 'LD-CP' không phải mã đã khai báo (forms.yaml khai báo 'LĐ-CP')",
    ),
    # scales.yaml
    "unknown option key": (
        "scales.yaml", lambda d: _option(d, "DG4", "4").update(colour="xanh"), "scales.yaml", "DG4",
        "phương án 4: mục không được hỗ trợ (unknown key): colour",
    ),
    "unknown scale key": (
        "scales.yaml", lambda d: d["scales"]["HL5"].update(reverse=True), "scales.yaml", "HL5",
        "mục không được hỗ trợ (unknown key): reverse",
    ),
    "option coefficient null": (
        "scales.yaml", lambda d: _option(d, "DG4", "3").update(coefficient=None), "scales.yaml", "DG4",
        "phương án '3': thiếu hệ số (coefficient)",
    ),
    "option coefficient missing": (
        "scales.yaml", lambda d: _del(_option(d, "HL5", "2"), "coefficient"), "scales.yaml", "HL5",
        "phương án '2': thiếu hệ số (coefficient)",
    ),
    "coefficient above 1": (
        "scales.yaml", lambda d: _option(d, "DG4", "4").update(coefficient=1.5), "scales.yaml", "DG4",
        "phương án '4': hệ số 1.5 phải nằm trong khoảng từ 0 đến 1",
    ),
    "coefficient below 0": (
        "scales.yaml", lambda d: _option(d, "DG4", "1").update(coefficient=-0.1), "scales.yaml", "DG4",
        "phương án '1': hệ số -0.1 phải nằm trong khoảng từ 0 đến 1",
    ),
    "coefficient not a number": (
        "scales.yaml", lambda d: _option(d, "DG4", "1").update(coefficient="0"), "scales.yaml", "DG4",
        "phương án '1': coefficient phải là một số, nhưng là '0'",
    ),
    "excluded option with coefficient": (
        "scales.yaml", lambda d: _option(d, "DG4", "K").update(coefficient=0), "scales.yaml", "DG4",
        "phương án 'K': phương án loại trừ phải có coefficient: null",
    ),
    "duplicate option codes": (
        "scales.yaml", lambda d: _option(d, "DG4", "2").update(code="3"), "scales.yaml", "DG4",
        "mã phương án '3' bị trùng",
    ),
    "unquoted numeric option code": (
        "scales.yaml", lambda d: _option(d, "HL5", "5").update(code=5), "scales.yaml", "HL5",
        'phải là chữ (đặt trong dấu nháy, ví dụ "4")',
    ),
    # criteria.yaml
    "criterion without name": (
        "criteria.yaml", lambda d: d["criteria"]["A5"].clear(), "criteria.yaml", "A5",
        "thiếu mục bắt buộc (missing key): name",
    ),
    "unknown criterion key": (
        "criteria.yaml", lambda d: d["criteria"]["A1"].update(points=4), "criteria.yaml", "A1",
        "mục không được hỗ trợ (unknown key): points",
    ),
    # forms.yaml
    "form declared twice": (
        "forms.yaml", lambda d: d["forms"].append("CC-CT"), "forms.yaml", "CC-CT", "khai báo hai lần",
    ),
    "declared form without a file": (
        "forms.yaml", lambda d: d["forms"].append("CC-ND"), "forms.yaml", None,
        "mẫu phiếu đã khai báo nhưng không có tệp: CC-ND (CC-ND.yaml)",
    ),
    "two codes with one file name": (
        "forms.yaml", lambda d: d["forms"].append("LD-CP"), "forms.yaml", "LD-CP",
        "chỉ khác LĐ-CP ở chữ Đ/D hoặc dấu (cả hai đều thành tệp LD-CP.yaml)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_error_is_reported_with_file_item_and_reason(case, tmp_path):
    edited, change, file, item, reason = CASES[case]
    directory = _copy_dir(FIXTURES, tmp_path)
    _edit(directory / edited, change)
    with pytest.raises(QuestionnaireError) as info:
        load_questionnaires(directory)
    err = info.value
    assert (err.file, err.item) == (file, item), str(err)
    assert reason in err.reason, str(err)
    assert str(err).startswith(f"{file}: ") and str(err).endswith(err.reason)


def test_unknown_scale_message_reads_naturally(tmp_path):
    directory = _copy_dir(FIXTURES, tmp_path)
    _edit(directory / "CC-CT.yaml", lambda d: _item(d, "I01").update(scale="XX"))
    with pytest.raises(QuestionnaireError) as info:
        load_questionnaires(directory)
    assert str(info.value) == "CC-CT.yaml: câu I01: không có thang đo 'XX'"
    assert isinstance(info.value, ValueError)
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_load_questionnaire_checks_the_file_name(tmp_path):
    scales = load_scales(FIXTURES / "scales.yaml")
    criteria = load_criteria(FIXTURES / "criteria.yaml")
    shutil.copy(FIXTURES / "LD-CP.yaml", tmp_path / "LĐ-CP.yaml")
    with pytest.raises(QuestionnaireError, match=r"LĐ-CP.yaml: mẫu phiếu mã 'LĐ-CP' phải nằm trong tệp LD-CP.yaml"):
        load_questionnaire(tmp_path / "LĐ-CP.yaml", scales=scales, criteria=criteria)
    q = load_questionnaire(FIXTURES / "LD-CP.yaml", scales=scales, criteria=criteria)
    assert q.code == "LĐ-CP" and q.source.endswith("LD-CP.yaml")


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("CC-CT.yaml", "title: a\ntitle: b\n", "duplicate key 'title'"),
        ("CC-CT.yaml", "code: [unclosed\n", "sai cú pháp YAML"),
        ("CC-CT.yaml", "- just\n- a list\n", "phải gồm các mục dạng khóa: giá trị, nhưng là danh sách"),
        ("EXTRA.yaml", "code: CC-CT\n", "tệp không thuộc mã mẫu phiếu nào khai báo trong forms.yaml"),
        ("CC-ND.yml", "code: CC-ND\n", "tệp mẫu phiếu phải có đuôi .yaml"),
        ("scales.yaml", "scales: {}\n", "phải ghi các thang đo theo mã thang đo"),
        ("criteria.yaml", "criteria:\n  A1: {name: x}\nextra: 1\n", "tệp: mục không được hỗ trợ (unknown key): extra"),
    ],
)
def test_whole_file_errors(tmp_path, name, text, reason):
    directory = _copy_dir(FIXTURES, tmp_path)
    (directory / name).write_text(text, encoding="utf-8")
    with pytest.raises(QuestionnaireError) as info:
        load_questionnaires(directory)
    assert info.value.file == name and reason in info.value.reason


def test_duplicate_key_inside_an_item_is_caught(tmp_path):
    directory = _copy_dir(FIXTURES, tmp_path)
    path = directory / "CC-CT.yaml"
    text = path.read_text(encoding="utf-8").replace("        scale: HL5\n",
                                                    "        scale: HL5\n        scale: DG4\n")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QuestionnaireError, match="duplicate key 'scale'"):
        load_questionnaires(directory)


def test_missing_support_file(tmp_path):
    directory = _copy_dir(FIXTURES, tmp_path)
    (directory / "forms.yaml").unlink()
    with pytest.raises(QuestionnaireError, match="forms.yaml: không tìm thấy tệp"):
        load_questionnaires(directory)
