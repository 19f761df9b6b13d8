"""A skipped question is missing, not "don't know": kept apart from K in storage, analysis and the SPSS file."""
from __future__ import annotations

import pyreadstat
import pytest
import sqlalchemy as sa

from survey_service.models import Answer, Response
from survey_service.services import exports, imports, results


def test_blank_is_stored_as_missing_counted_by_the_validity_rule_and_coded_apart_from_k(builder, session, tmp_path):
    q = builder.forms["CC-CT"]
    items = [i.code for i in q.scale_items]
    mostly_blank = {**builder.row("CC-CT", "SNV", "4"), **{code: "" for code in items[1:]}}
    rows = ([builder.row("CC-CT", "SNV", v) for v in "12344"]
            + [builder.row("CC-CT", "SNV", "3", I02=""), builder.row("CC-CT", "SNV", "3", I02="K"), mostly_blank])
    report = builder.load(rows)
    assert report.responses == 8
    stored = {}
    for r in session.scalars(sa.select(Response)):
        stored[len(r.answers)] = {a.item_code: a.value for a in r.answers}
    # the blank leaves no answer; K is an answer of its own
    assert "I02" not in stored[len(items) - 1] and stored[len(items)].get("I02") in {"K", "3", "1", "2", "4"}
    assert session.scalar(sa.select(sa.func.count()).select_from(Answer).where(Answer.value == "K")) == 1
    assert stored[1] == {items[0]: "4"}

    res = results.round_results(session, builder.round)
    # the validity rule (half the rated items) drops the sheet answering one item, keeps the one blank
    assert res.provenance["counts"]["invalid_response_agency_pairs"] == 1
    assert res.summary.set_index("agency").loc["SNV", "n"] == 7
    path = exports.write_responses_sav(res, tmp_path / "responses.sav")
    cases, meta = pyreadstat.read_sav(str(path), user_missing=True)
    i02 = cases["I02"].tolist()
    assert i02.count(exports.SAV_BLANK_CODE) == 1 and i02.count(exports.SAV_EXCLUDED_CODE) == 1
    assert meta.variable_value_labels["I02"][exports.SAV_BLANK_CODE] == exports.SAV_BLANK_LABEL
    assert {m["lo"] for m in meta.missing_ranges["I02"]} == {exports.SAV_BLANK_CODE, exports.SAV_EXCLUDED_CODE}
    # read as SPSS would, both are missing, so neither enters a mean
    plain, _ = pyreadstat.read_sav(str(path))
    assert plain["I02"].isna().sum() == 2


def test_a_row_answering_nothing_is_refused(builder, session):
    q = builder.forms["CC-CT"]
    empty = {**builder.row("CC-CT", "SNV"), **{i.code: "" for i in q.scale_items}}
    with pytest.raises(imports.ImportRejected) as exc:
        builder.load([builder.row("CC-CT", "SNV"), empty])
    assert exc.value.errors[0].line == 3 and "không có câu trả lời nào" in exc.value.errors[0].message
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0
