"""Submissions of our XLSForms exported by ODK Central (CSV zip with repeats) and KoboToolbox (XLSX, ';' CSV)
come in as the same responses as the plain CSV, once, all or nothing."""
from __future__ import annotations

import uuid
from collections import Counter
from datetime import date

import pytest
import sqlalchemy as sa

from survey_service.models import Answer, Ballot, ImportedSubmission, Response
from survey_service.questionnaires import xlsform
from survey_service.services import imports, rounds
from survey_service.services import xlsform as xlsform_service
from tests.interop import export_files as ef
from tests.conftest import SECRET
from tests.results.conftest import csv_bytes, import_all

TODAY = date(2023, 10, 1)


@pytest.fixture
def form(loaded_round, session):
    def make(code):
        q = rounds.questionnaire_for(session, loaded_round, code)
        raw = q  # the wording does not change the fields
        return q, xlsform.survey_rows(q, raw, xlsform_service.round_lists(session, loaded_round, q))
    return make


def _load(session, rnd, data):
    return import_all(session, rnd, data, today=TODAY)


def _answers(session, since: set) -> Counter:
    """Every response not in ``since`` as (form, agency, its answers), a multiset."""
    out = Counter()
    for r in session.scalars(sa.select(Response).where(Response.id.not_in(since) if since else sa.true())):
        out[(r.form_code, r.agency_id, tuple(sorted((a.item_code, a.value) for a in r.answers)))] += 1
    return out


def _ids(session) -> set:
    return set(session.scalars(sa.select(Response.id)))


def _cc_ct_subs(q):
    items = [i.code for i in q.scale_items]
    subs = []
    for n, agency in enumerate(["SNV", "SNV", "STP", "SNV"]):
        fields = {"form_code": q.code, "q_version": q.version, "agency": agency,
                  **{code: "4321K"[(n + k) % 5] for k, code in enumerate(items)}}
        subs.append(ef.Sub(uuid.uuid4().hex, fields))
    subs[1].fields["I02"] = ""  # skipped in Kobo: missing, not K
    subs[2].fields["KN"] = "Cần rút ngắn thời gian; công khai hơn"
    return subs


def test_central_and_kobo_exports_import_as_the_plain_csv_does_and_once(loaded_round, session, form):
    q, rows = form("CC-CT")
    subs = _cc_ct_subs(q)
    plain = [{"form": q.code, **{k: v for k, v in s.fields.items() if k not in ("form_code", "q_version")}}
             for s in subs]
    before = _ids(session)
    assert _load(session, loaded_round, csv_bytes(plain)).responses == 4
    expected = _answers(session, before)
    assert ("CC-CT", None) not in {k[:2] for k in expected}
    files = {"central": ef.central_zip("CC-CT", rows, subs), "kobo-csv": ef.kobo_csv(rows, subs)}
    for s in subs:  # Kobo's XLSX of other submissions with the same answers: a key is the platform's and its own
        s.uuid = uuid.uuid4().hex
    files["kobo-xlsx"] = ef.kobo_xlsx(q.title, rows, subs, [])
    for name, data in files.items():
        before = _ids(session)
        report = _load(session, loaded_round, data)
        assert report.responses == 4 and report.already == 0, name
        assert _answers(session, before) == expected, name
        # the same file again adds nothing
        before = _ids(session)
        again = _load(session, loaded_round, data)
        assert again.responses == 0 and again.already == 4 and _ids(session) == before, name
    # the skipped item is no answer, K is one of its own
    assert session.scalar(sa.select(sa.func.count()).select_from(ImportedSubmission)) == 12
    blank = [r for r in session.scalars(sa.select(Response)) if "I02" not in {a.item_code for a in r.answers}]
    assert len(blank) == 4  # once per import: plain CSV, Central, Kobo CSV, Kobo XLSX


def test_supervising_form_with_repeats_from_central_zip_and_kobo_xlsx(loaded_round, session, form):
    q, rows = form("LĐ-CP")
    agencies = [c.code for c in xlsform_service.round_lists(session, loaded_round, q).agencies]
    items = [i.code for i in q.scale_items]
    for build in (lambda s: ef.central_zip("LD-CP", rows, s), lambda s: ef.kobo_xlsx(q.title, rows, s, agencies)):
        subs = [ef.Sub(uuid.uuid4().hex, {"form_code": q.code, "q_version": q.version, "district": "TAMKY",
                                          "division": "TCKH", "rated": "STC SKHDT", "KN": ""},
                       [{"agency": a, **{c: v for c in items}} for a, v in (("STC", "3"), ("SKHDT", "K"))])
                for _ in range(2)]
        before = _ids(session)
        report = _load(session, loaded_round, build(subs))
        assert report.responses == 4 and report.by_form == {"LĐ-CP": 4}
        new = session.scalars(sa.select(Response).where(Response.id.not_in(before))).all()
        assert len({r.respondent_key for r in new}) == 2 and all(r.division_id for r in new)
        assert {r.agency.code for r in new} == {"STC", "SKHDT"}
        assert _load(session, loaded_round, build(subs)).responses == 0


def _refused(session, rnd, data) -> dict[int, str]:
    with pytest.raises(imports.ImportRejected) as exc:
        imports.import_responses(session, rnd, data, today=TODAY, secret=SECRET, actor="test")
    session.rollback()
    assert not any(session.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Answer, Ballot))
    return {e.line: e.message for e in exc.value.errors}


def test_bad_exports_are_refused_whole_with_row_numbers(loaded_round, session, form):
    q, rows = form("CC-CT")
    subs = _cc_ct_subs(q)
    subs[1].fields["q_version"] = "0123456789abcdef"
    subs[2].fields["I03"] = "7"
    subs[3].fields["agency"] = "XYZ"
    errors = _refused(session, loaded_round, ef.central_zip("CC-CT", rows, subs))
    assert sorted(errors) == [3, 4, 5]
    assert "q_version" in errors[3] and "'7'" in errors[4] and "XYZ" in errors[5]
    # the same on Kobo's CSV, where the line is the row of the ';' file
    assert sorted(_refused(session, loaded_round, ef.kobo_csv(rows, subs))) == [3, 4, 5]
    # a labels-format export: question texts as headers
    labels = ef.kobo_csv(rows, _cc_ct_subs(q)).decode().replace('"A1/I01"', f'"{q.item("I01").text}"')
    errors = _refused(session, loaded_round, labels.encode())
    assert "XML values and headers" in errors[1]
    labels_xlsx = ef.kobo_xlsx(q.title, [{**r, "name": q.item(r["name"]).text} if r["name"] == "I01" else r
                                         for r in rows], _cc_ct_subs(q), [])
    assert "XML values and headers" in _refused(session, loaded_round, labels_xlsx)[1]
    # a column that is no field of the form
    strange = ef.kobo_csv(rows, _cc_ct_subs(q)).decode().replace('"A1/I01"', '"A1/Z99"')
    assert "Z99" in _refused(session, loaded_round, strange.encode())[1]
    assert session.scalar(sa.select(sa.func.count()).select_from(ImportedSubmission)) == 0


def test_cli_imports_a_central_zip_twice(loaded_round, session, form, runner, tmp_path):
    from tests.conftest import collect_from_today

    collect_from_today(session, loaded_round)
    q, rows = form("CC-CT")
    path = tmp_path / "CC-CT.csv.zip"
    path.write_bytes(ef.central_zip("CC-CT", rows, _cc_ct_subs(q)))
    result = runner.invoke(args=["responses", "import", "--round", "QNA-2023", str(path)])
    assert result.exit_code == 0 and "Đã nhập 4 phiếu" in result.output, result.output
    result = runner.invoke(args=["responses", "import", "--round", "QNA-2023", str(path)])
    assert result.exit_code == 0 and "Đã nhập 0 phiếu" in result.output and "4 bản ghi đã nhập trước" in result.output


def test_matrix_form_one_sheet_rating_several_agencies_from_kobo_xlsx(loaded_round, session, form):
    q, rows = form("HĐ-CT")
    items = [i.code for i in q.scale_items]
    text = q.text_items[0].code
    sub = ef.Sub(uuid.uuid4().hex, {"form_code": q.code, "q_version": q.version, "rated": "SNV TAMKY",
                                    text: "Cần công khai hơn"},
                 [{"agency": a, **{c: v for c in items}} for a, v in (("SNV", "4"), ("TAMKY", "2"))])
    agencies = [c.code for c in xlsform_service.round_lists(session, loaded_round, q).agencies]
    report = _load(session, loaded_round, ef.kobo_xlsx(q.title, rows, [sub], agencies))
    assert report.responses == 1
    sheet = session.scalar(sa.select(Response).where(Response.form_code == "HĐ-CT"))
    assert sheet.agency_id is None
    assert [a.value for a in sheet.answers if a.item_code == text and a.agency_id is None] == ["Cần công khai hơn"]
    assert len({a.agency_id for a in sheet.answers if a.item_code != text}) == 2


def test_nothing_of_the_submitter_the_device_the_time_or_the_key_is_stored(loaded_round, session, form):
    """Only the import's day is kept: not the submission's day (2023-09-12 in these exports), its time, who
    sent it from which device, nor its key (only a digest of it, apart from the responses)."""
    from survey_service.db import Base

    q, rows = form("CC-CT")
    subs = _cc_ct_subs(q)
    keys = [s.uuid for s in subs]
    for data in (ef.central_zip("CC-CT", rows, subs), ef.kobo_xlsx(q.title, rows, subs, [])):
        assert _load(session, loaded_round, data).responses == 4
    assert set(session.scalars(sa.select(Response.submitted_on))) == {TODAY}
    stored = " ".join(str(value) for table in Base.metadata.sorted_tables
                      for row in session.execute(sa.select(table)) for value in row)
    for trace in ("Nguyễn Văn A", "collect:abc123", "dtv_hoian", "2023-09-12", "08:41", "15:41", "vGx7hT2",
                  *keys):
        assert trace not in stored, trace
