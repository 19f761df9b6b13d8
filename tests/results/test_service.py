"""The results service against hand computations, the counting rules, versions and reproducibility."""
from __future__ import annotations

import math
import uuid
from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import analysis
from survey_service import questionnaires as qn
from survey_service.models import (
    Agency, Answer, Channel, QuestionnaireVersion, QuotaCell, Response, Round, RoundForm, Sheet, SheetState,
)
from survey_service.services import exports, results, rounds
from tests.conftest import QUESTIONNAIRE_DIR, ROUND_DIR


def _snv_rows(builder):
    """SNV: three CC-CT sheets and two HĐ-CT sheets (the paper minimum), everything else empty."""
    return [
        builder.row("CC-CT", "SNV", "4"),
        builder.row("CC-CT", "SNV", "3"),
        builder.row("CC-CT", "SNV", "1", I01="K"),
        builder.row("HĐ-CT", "SNV", "2", respondent="h1"),
        builder.row("HĐ-CT", "SNV", "2", respondent="h2"),
    ]


def test_points_and_satisfaction_match_a_hand_computation(builder, session, loaded_round):
    builder.load(_snv_rows(builder))
    loaded_round.settings = {**loaded_round.settings, "min_breakdown": 2}  # both groups may be used
    session.commit()
    res = results.round_results(session, loaded_round)
    crit = res.criteria.set_index(["agency", "criterion"])
    # A1 with the linear preset (DG4: 1→0, 2→1/3, 3→2/3, 4→1):
    #   CC-CT sheets: 1, 2/3, and 0 (I01 is K, the other A1 items are "1"), mean 5/9, n = 3 >= n_min 3
    #   HĐ-CT: "2" → 1/3 on both sheets, n = 2 >= 2.  LĐ-CP and LĐH-CH are missing: weights .30 and .20
    #   renormalised.
    expected = (0.30 * 5 / 9 + 0.20 * 1 / 3) / 0.50
    assert crit.loc[("SNV", "A1"), "score"] == pytest.approx(expected, abs=1e-12)
    assert crit.loc[("SNV", "A1"), "points"] == round(4 * expected, 2)
    assert "thieu_du_lieu" in crit.loc[("SNV", "A1"), "flag"]
    assert crit.loc[("SNV", "A1"), "missing_groups"] == "LĐ-CP,LĐH-CH"

    summary = res.summary.set_index("agency")
    # satisfaction: HL5 positive = 4, 5. CC-CT I21: "4", "3", "1" → p = 1/3; HĐ-CT E18 "2" → p = 0
    assert summary.loc["SNV", "satisfaction"] == pytest.approx(100 * (0.30 * 1 / 3 + 0.20 * 0) / 0.50)
    # the total is the sum of the unrounded points, rounded once (13.82 here; the rounded points add to 13.83)
    exact = (crit.loc["SNV", "max_points"] * crit.loc["SNV", "score"]).sum()
    assert summary.loc["SNV", "survey_points"] == analysis.round_half_away(exact) == 13.82
    assert round(crit.loc["SNV", "points"].sum(), 2) == 13.83
    snv = summary.loc["SNV"]
    assert snv["satisfaction_ci_lo"] <= snv["satisfaction"] <= snv["satisfaction_ci_hi"]
    assert summary.loc["SNV", "n"] == 5


def test_agency_without_valid_responses_gets_nan_and_a_flag_never_zero(builder, session, loaded_round):
    builder.load(_snv_rows(builder))
    res = results.round_results(session, loaded_round)
    assert len(res.summary) == 43
    stp = res.summary.set_index("agency").loc["STP"]
    assert math.isnan(stp["survey_points"]) and math.isnan(stp["satisfaction"])
    assert "khong_du_lieu" in stp["flags"]
    assert res.criteria.loc[res.criteria["agency"] == "STP", "points"].isna().all()
    assert pd.isna(stp["rank"])


def test_empty_round_is_all_nan(session, loaded_round):
    res = results.round_results(session, loaded_round)
    assert res.summary["survey_points"].isna().all()
    assert (res.summary["flags"] == "khong_du_lieu").all()


def test_tidy_answer_weights_reproduce_the_criterion_scores(builder, session, loaded_round):
    rows = _snv_rows(builder) + [builder.row("LĐH-CH", "SNV", "4"), builder.row("CC-CT", "SNV", "2", I02="K")]
    builder.load(rows)
    res = results.round_results(session, loaded_round)
    a = res.answers
    rebuilt = (a["weight"] * a["value"].fillna(0)).groupby([a["agency"], a["criterion"]]).sum()
    scores = res.criteria.set_index(["agency", "criterion"])["score"].dropna()
    np.testing.assert_allclose(rebuilt.loc[scores.index].to_numpy(), scores.to_numpy(), rtol=1e-12)
    assert (a.loc[a["option"] == "K", "weight"] == 0).all()


def test_only_counted_responses_enter(builder, session, loaded_round):
    builder.load([builder.row("CC-CT", "SNV", "4") for _ in range(3)])
    cell = session.scalar(sa.select(QuotaCell).where(QuotaCell.form_code == "LĐH-CH"))
    agency = session.get(Agency, cell.agency_id)
    version = session.get(RoundForm, (loaded_round.id, "LĐH-CH")).questionnaire_version_id
    q = rounds.questionnaire_for(session, loaded_round, "LĐH-CH")

    def paper(state, *, surplus=False, value="1"):
        sheet = Sheet(serial=uuid.uuid4().hex[:12], quota_cell_id=cell.id, state=state)
        session.add(sheet)
        session.flush()
        response = Response(uid=uuid.uuid4().hex, round_id=loaded_round.id, quota_cell_id=cell.id,
                            form_code="LĐH-CH", questionnaire_version_id=version, agency_id=agency.id,
                            channel=Channel.PAPER, submitted_on=date(2023, 10, 1), sheet_id=sheet.id,
                            respondent_key=uuid.uuid4().hex, surplus=surplus)
        response.answers = [Answer(agency_id=agency.id, item_code=i.code, value=value) for i in q.scale_items]
        session.add(response)

    paper(SheetState.KEYED, value="4")               # awaiting double entry: not counted
    paper(SheetState.VERIFIED, value="1")            # counted
    paper(SheetState.VERIFIED, surplus=True, value="4")  # above target: counted only if the round says so
    session.commit()
    res = results.round_results(session, loaded_round)
    items = res.items[(res.items["agency"] == agency.code) & (res.items["group"] == "LĐH-CH")]
    assert set(items["n_responses"]) == {1}
    assert res.provenance["counts"]["responses"] == 4

    loaded_round.settings = {**loaded_round.settings, "surplus_in_analysis": True}
    session.commit()
    res = results.round_results(session, loaded_round)
    items = res.items[(res.items["agency"] == agency.code) & (res.items["group"] == "LĐH-CH")]
    assert set(items["n_responses"]) == {2}
    assert res.provenance["surplus_in_analysis"] is True


def test_sheet_answering_too_few_items_is_not_scored(builder, session, loaded_round):
    q = builder.forms["CC-CT"]
    blank = {i.code: "K" for i in q.scale_items}
    builder.load([builder.row("CC-CT", "SNV", "4"), builder.row("CC-CT", "SNV", "4", **blank)])
    loaded_round.settings = {**loaded_round.settings, "min_breakdown": 1}  # a group of one may be counted
    session.commit()
    res = results.round_results(session, loaded_round)
    assert res.provenance["counts"]["invalid_response_agency_pairs"] == 1
    assert res.summary.set_index("agency").loc["SNV", "n"] == 1


def test_each_response_is_scored_with_its_own_version(builder, session, loaded_round):
    builder.load([builder.row("CC-CT", "SNV", "4", I01="1") for _ in range(3)])
    # a new version of CC-CT moves item I01 from A1 to A2; the old responses keep A1
    old = rounds.questionnaire_for(session, loaded_round, "CC-CT")
    definition = old.definition()
    for section in definition["sections"]:
        for item in section["items"]:
            if item["code"] == "I01":
                item["criterion"] = "A2"
    new = qn.Questionnaire.from_definition(definition)
    version = QuestionnaireVersion(form_code="CC-CT", version=new.version, definition=new.definition())
    session.add(version)
    session.flush()
    session.get(RoundForm, (loaded_round.id, "CC-CT")).questionnaire_version_id = version.id
    session.commit()
    builder.forms["CC-CT"] = new
    builder.load([builder.row("CC-CT", "STP", "4", I01="1") for _ in range(3)])
    loaded_round.settings = {**loaded_round.settings, "min_breakdown": 3}  # the three sheets may be used
    session.commit()

    res = results.round_results(session, loaded_round)
    a = res.answers
    assert set(a.loc[(a["item"] == "I01") & (a["agency"] == "SNV"), "criterion"]) == {"A1"}
    assert set(a.loc[(a["item"] == "I01") & (a["agency"] == "STP"), "criterion"]) == {"A2"}
    assert res.provenance["questionnaire_versions"]["CC-CT"] == sorted([old.version, new.version])
    crit = res.criteria.set_index(["agency", "criterion"])["score"]
    assert crit[("SNV", "A1")] < 1 and crit[("STP", "A1")] == 1.0


def test_recomputing_gives_identical_numbers(builder, session, loaded_round):
    rows = _snv_rows(builder) + [builder.row("CC-CT", "STP", v) for v in "1234"] + [
        builder.row("LĐ-CP", dep, "3", division="TCKH", district="TAMKY", respondent="p1") for dep in ("STC", "SKHDT")]
    builder.load(rows)
    first = results.round_results(session, loaded_round)
    second = results.round_results(session, loaded_round)
    rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR)  # unchanged: nothing to do
    session.commit()
    third = results.round_results(session, session.scalar(sa.select(Round)))
    for other in (second, third):
        assert other.provenance == first.provenance
        for name in ("summary", "criteria", "items", "weights", "settings", "answers"):
            pd.testing.assert_frame_equal(getattr(other, name), getattr(first, name), check_exact=True)
    assert first.provenance["methodology_hash"] == loaded_round.methodology_hash
    assert first.provenance["software_version"]


def test_settings_that_do_not_add_up_are_rejected_naming_the_setting(builder, session, loaded_round):
    builder.load(_snv_rows(builder))
    methodology = dict(loaded_round.methodology)
    methodology["group_weights"] = {**methodology["group_weights"],
                                    "department": {k: 0 for k in methodology["group_weights"]["department"]}}
    loaded_round.methodology = methodology
    session.commit()
    with pytest.raises(results.ResultsError, match="group_weights"):
        results.round_results(session, loaded_round)


def test_own_staff_groups_under_five_are_not_broken_down(builder, session, loaded_round):
    builder.load([builder.row("CC-CT", "SNV", "4") for _ in range(4)] + [builder.row("CC-CT", "STP", "4")
                                                                          for _ in range(5)])
    items = results.round_results(session, loaded_round).items
    snv = items[items["agency"] == "SNV"]
    assert snv["suppressed"].all() and snv["counts"].isna().all() and snv["mean_value"].isna().all()
    stp = items[items["agency"] == "STP"]
    assert not stp["suppressed"].any() and stp["counts"].iloc[0] == {"4": 5}


def test_no_group_of_any_form_under_the_round_threshold_is_broken_down(builder, session, loaded_round):
    builder.load([builder.row("LĐ-CP", "STC", "3", division="TCKH", district="TAMKY", respondent="p1")]
                 + [builder.row("CC-CT", "SNV", "4") for _ in range(3)])
    items = results.round_results(session, loaded_round).items
    ldcp = items[items["group"] == "LĐ-CP"]
    assert len(ldcp) and ldcp["suppressed"].all() and ldcp["counts"].isna().all()  # one division head
    assert items[items["group"] == "CC-CT"]["suppressed"].all()
    loaded_round.settings = {**loaded_round.settings, "min_breakdown": 3}  # the round's own threshold
    session.commit()
    items = results.round_results(session, loaded_round).items
    assert not items[items["group"] == "CC-CT"]["suppressed"].any()
    assert items[items["group"] == "LĐ-CP"]["suppressed"].all()
    shown = exports.items_frame(results.round_results(session, loaded_round))
    assert set(shown.loc[shown["Mẫu phiếu"] == "LĐ-CP", "Ghi chú"]) == {"Ẩn (nhóm dưới 3 người trả lời về cơ quan này)"}


def _stored_response(session, rnd, form: str, values: dict[str, str]) -> None:
    """An online response about one agency written straight to the database, values exactly as given."""
    cell = session.scalars(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id, QuotaCell.form_code == form,
                                                      QuotaCell.agency_id.is_not(None)).order_by(QuotaCell.id)).first()
    version = session.get(RoundForm, (rnd.id, form)).questionnaire_version_id
    response = Response(uid=uuid.uuid4().hex, round_id=rnd.id, quota_cell_id=cell.id, form_code=form,
                        questionnaire_version_id=version, agency_id=cell.agency_id, channel=Channel.ONLINE,
                        submitted_on=date(2023, 10, 1), respondent_key=uuid.uuid4().hex)
    response.answers = [Answer(agency_id=cell.agency_id, item_code=code, value=value) for code, value in values.items()]
    session.add(response)
    session.commit()


def test_stored_values_are_read_as_written(builder, session, loaded_round):
    """Padding around a code is ignored, a blank is no answer, and free text (commas, quotes, line
    breaks) on text items never reaches the scores."""
    q = builder.forms["LĐS-CT"]
    rated = [i.code for i in q.scale_items]
    values = {code: " 4 " for code in rated}
    values[rated[0]] = ""
    values.update({i.code: 'ý kiến, "trích dẫn"\ndòng hai' for i in q.text_items})
    assert q.text_items
    _stored_response(session, loaded_round, "LĐS-CT", values)
    _stored_response(session, loaded_round, "LĐS-CT", {code: "4" for code in rated})
    loaded_round.settings = {**loaded_round.settings, "min_breakdown": 1}  # two sheets: show them
    session.commit()
    res = results.round_results(session, loaded_round)
    items = res.items[res.items["group"] == "LĐS-CT"].set_index("item")
    assert items.loc[rated[0], "counts"] == {"": 1, "4": 1}
    assert items.loc[rated[0], "n_valid"] == 1
    assert items.loc[rated[1], "counts"] == {"4": 2}
    assert set(res.answers["item"].astype(str)) == set(rated)
    assert res.provenance["counts"]["responses"] == 2


def test_a_stored_value_outside_the_scale_is_named(builder, session, loaded_round):
    q = builder.forms["LĐS-CT"]
    values = {i.code: "4" for i in q.scale_items}
    values[q.scale_items[2].code] = "NA"  # not a missing value: an answer no scale has
    _stored_response(session, loaded_round, "LĐS-CT", values)
    with pytest.raises(results.ResultsError, match="'NA' không thuộc thang đo"):
        results.round_results(session, loaded_round)


def test_cached_results_follow_the_data(app, session, loaded_round, tmp_path):
    """Pages reuse computed results only while nothing they depend on has changed."""
    from tests.results.conftest import import_all

    first = results.cached_results(session, loaded_round)
    assert results.cached_results(session, loaded_round) is first
    codes = [item.code for item in rounds.questionnaire_for(session, loaded_round, "CC-CT").scale_items]
    csv_text = ("form,agency," + ",".join(codes) + "\nCC-CT,SNV," + ",".join("3" for _ in codes) + "\n").encode()
    report = import_all(session, loaded_round, csv_text, today=loaded_round.opens_on)
    assert report.responses == 1
    again = results.cached_results(session, loaded_round)
    assert again is not first
    assert again.provenance == results.round_results(session, loaded_round).provenance


def test_a_round_stored_under_the_old_setting_names_gives_the_same_results(builder, session, loaded_round):
    """A database from before the settings took the analysis's names keeps working: its stored methodology is
    read through one translation, and every figure is the same, to the last bit, as under today's names."""
    builder.load(_snv_rows(builder) + [builder.row("CC-CT", "STP", v) for v in "12345"])
    today = results.round_results(session, loaded_round)
    m = dict(loaded_round.methodology)
    loaded_round.methodology = {
        "coefficient_presets": m.pop("coefficients"), "positive_options": m.pop("positive"),
        "n_min": m.pop("min_respondents"), "validity": {"min_answered_share": m.pop("min_answered_share")},
        "reliability": {"max_half_width": m.pop("max_half_width"), "lonely_psu": m.pop("lonely_psu")}, **m}
    session.commit()
    stored = results.round_results(session, rounds.get_round(session, "QNA-2023"))
    assert "n_min" in loaded_round.methodology and not np.isnan(today.summary["survey_points"]).all()
    for name in ("summary", "criteria", "items", "weights", "answers"):
        pd.testing.assert_frame_equal(getattr(stored, name), getattr(today, name), check_exact=True)
    # the methodology sheet lists the settings under today's names (in the stored order)
    pd.testing.assert_frame_equal(stored.settings.sort_values("setting", ignore_index=True),
                                  today.settings.sort_values("setting", ignore_index=True))
    assert stored.provenance == today.provenance
