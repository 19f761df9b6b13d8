"""Citizens' rounds: the kind checked by the round loader, households interviewed by Post Office investigators
(keyed sheets sealed into the ballot box with their investigator, never their serial), receipt codes that
open the online form once and are stored only as keyed digests, and the results with quarantined
investigators left out, recomputed here independently."""
from __future__ import annotations

import shutil
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from statsmodels.stats.proportion import proportion_confint

from survey_service import questionnaires as qn
from survey_service.models import (
    POOLED_INVESTIGATORS, Ballot, Channel, Keying, ReceiptCode, Response, Sheet, SheetState, SpentCode,
)
from survey_service.services import (
    ballots, citizens, keying, portal, receipts, rounds, sheets, simulation,
)
from tests.conftest import QUESTIONNAIRE_DIR

CITIZENS_DIR = QUESTIONNAIRE_DIR / "rounds" / "DNG-HL-2026"
SECRET = "test-secret"


@pytest.fixture
def citizens_round(app, session):
    rounds.load_round(session, CITIZENS_DIR, QUESTIONNAIRE_DIR)
    rnd = rounds.get_round(session, "DNG-HL-2026")
    today = rounds.local_today()
    rounds.schedule(session, rnd, today - timedelta(days=7), today + timedelta(days=30), actor="test")
    session.commit()
    return rnd


# --- the round and its questionnaire ------------------------------------------------------------------
def test_the_bundled_round_is_a_citizens_round_with_sourced_names():
    r = rounds.check_round(CITIZENS_DIR, QUESTIONNAIRE_DIR)
    assert r.round_kind == "citizens" and r.definition()["kind"] == "citizens"
    assert [e["code"] for e in r.methodology["elements"]] == ["YT1", "YT2", "YT3", "YT4", "YT5"]
    assert r.methodology["definition"] == "working" and "làm việc" in r.methodology["definition_note"]
    # every agency is one of round DNG-2026 (whose README gives each name's source), under the same name
    sourced = {a.code: a.name for a in rounds.check_round(QUESTIONNAIRE_DIR / "rounds" / "DNG-2026",
                                                          QUESTIONNAIRE_DIR).agencies}
    assert {a.code: a.name for a in r.agencies}.items() <= sourced.items()
    assert {a.kind for a in r.agencies} == {"department", "commune"}
    # a PAR round keeps its hash: only a citizens' round says its kind
    par = rounds.check_round(QUESTIONNAIRE_DIR / "rounds" / "DNG-2026", QUESTIONNAIRE_DIR)
    assert par.round_kind == "par" and "kind" not in par.definition()


def test_the_paper_and_online_forms_ask_the_same_questions():
    forms = qn.load_questionnaires(QUESTIONNAIRE_DIR)
    paper, online = forms["ND-HL"], forms["ND-TT"]
    assert (paper.channel, online.channel) == ("paper", "online")
    assert [(i.code, i.text, i.scale, i.criterion) for i in paper.items] == \
        [(i.code, i.text, i.scale, i.criterion) for i in online.items]
    # five elements, each with perceptions and one satisfaction item on the five-level scale with "K"
    for element, satisfaction in (("YT1", "A9"), ("YT2", "B9"), ("YT3", "C9"), ("YT4", "D9"), ("YT5", "E9")):
        items = [i for i in paper.items if i.criterion == element]
        assert satisfaction in [i.code for i in items] and len(items) >= 3
    scale = paper.scales["HLND"]
    assert scale.positive_codes == ("5", "4") and [o.label for o in scale.options][-1] == "Không áp dụng / Không nhớ"
    assert paper.item("G1").scale == "HLND"


@pytest.mark.parametrize("edit, message", [
    (("round.yaml", "kind: citizens", "kind: households"), "kind must be one of par, citizens"),
    (("round.yaml", "double_entry_rate: 0", "double_entry_rate: 0.1"), "double_entry_rate must be 0"),
    (("citizens.yaml", "overall: G1", "overall: G9"), "item G9 is not in form"),
    (("citizens.yaml", "improvements: [H1, H2, H3]", "improvements: [H1, H2, H3, H9]"), "H9 of ND-HL is free text"),
    (("citizens.yaml", "definition: working", "definition: guessed"), "must be one of official, working"),
    (("citizens.yaml", "- {code: YT1, satisfaction: A9}", "- {code: YT1, satisfaction: S2}"), "no satisfied option"),
    (("populations.csv", "STP,4200", "STP,0"), "population must be at least 1"),
    (("populations.csv", "SYT,2600,", "XYZ,2600,"), "unknown agency 'XYZ'"),
    # targets are round.yaml's, as in every round: shares only, overall or of an element
    (("round.yaml", "indicator: satisfaction", "indicator: survey_points"),
     "indicator phải là một trong satisfaction, YT1, YT2, YT3, YT4, YT5, nhưng là 'survey_points'"),
    (("round.yaml", "targets:\n", "targets:\n  - {indicator: satisfaction, at_least: 90}\n"),
     "mục tiêu satisfaction thứ hai cho mọi cơ quan"),
    (("citizens.yaml", "demographics: [N1, N2, N3]", "demographics: [N1, N2, N3]\ntargets: {overall: {share: 0.8}}"),
     "targets are set in round.yaml"),
])
def test_round_check_refuses_a_bad_citizens_round(tmp_path, edit, message):
    target = tmp_path / "DNG-HL-2026"
    shutil.copytree(CITIZENS_DIR, target)
    name, old, new = edit
    text = (target / name).read_text(encoding="utf-8")
    assert old in text
    (target / name).write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(qn.QuestionnaireError, match=message):
        rounds.check_round(target, QUESTIONNAIRE_DIR)


def test_round_check_command_says_the_kind(runner):
    result = runner.invoke(args=["round", "check", str(CITIZENS_DIR)])
    assert result.exit_code == 0, result.output
    assert "khảo sát người dân: 5 yếu tố" in result.output and "định nghĩa làm việc" in result.output


# --- investigators and the ballot box -----------------------------------------------------------------
def _answers(**overrides) -> dict[str, str]:
    answers = {"S1": "2", "S2": "1", "S4": "1", "A1": "4", "A2": "4", "A9": "5", "B1": "4", "B2": "4", "B3": "3",
               "B9": "4", "C1": "5", "C2": "4", "C3": "4", "C9": "2", "D1": "4", "D2": "4", "D9": "K", "E1": "3",
               "E2": "1", "E9": "3", "G1": "4", "H1": "2", "N1": "2", "N2": "1", "N3": "3"}
    return {**answers, **overrides}


def _key(session, sheet, clerk, **overrides):
    """Key a sheet as a clerk types it: every scale slot, "-" where the sheet is blank."""
    answers = _answers(**overrides)
    form = keying.sheet_form(session, sheet)
    slots = {keying.slot_name(keying.SHEET_ROW, i.code): answers.get(i.code, "-")
             for i in form.questionnaire.scale_items}
    keying.key_sheet(session, sheet, clerk, slots, secret=SECRET)


def test_keyed_sheets_go_through_the_ballot_box_with_their_investigator(app, session, citizens_round, make_user):
    clerk = make_user("clerk")
    make_user("clerk", username="dtv01")
    make_user("clerk", username="dtv02")
    plans = sheets.paper_cells(session, citizens_round, agency_code="STP")
    issued = sheets.issue_sheets(session, citizens_round, plans, investigator="DTV01")
    assert len(issued) == 20 and {s.investigator for s in issued} == {"dtv01"}
    other = sheets.issue_sheets(session, citizens_round, sheets.paper_cells(session, citizens_round,
                                                                             agency_code="SYT"))
    session.commit()
    with pytest.raises(keying.KeyingError, match="chưa ghi điều tra viên"):
        _key(session, other[0], clerk)
    session.rollback()
    sheets.assign_investigator(session, citizens_round, [s.serial for s in other[:3]], "dtv02",
                               app.config["SHEET_SIGNING_KEYS"])
    with pytest.raises(sheets.SheetError, match="Không có tài khoản điều tra viên"):
        sheets.assign_investigator(session, citizens_round, [other[4].serial], "dtv99",
                                   app.config["SHEET_SIGNING_KEYS"])
    k = ballots.min_group(citizens_round.settings)
    for sheet in issued[:2 * k]:
        _key(session, sheet, clerk, C9=str(1 + issued.index(sheet) % 5))
    for sheet in other[:3]:
        _key(session, sheet, clerk)
    session.commit()
    # verified at one keying; nothing of the answers kept beside the serial
    assert {s.state for s in issued[:2 * k] + other[:3]} == {SheetState.VERIFIED}
    assert all(kp.answers == {} for kp in session.scalars(sa.select(Keying)))
    assert session.scalar(sa.select(sa.func.count()).select_from(Response).where(Response.sheet_id.is_not(None))) == 0
    # STP's 2k ballots: all but k released with their investigator; DTV-02's wait (fewer than k keyed)
    released = session.scalars(sa.select(Response)).all()
    assert len(released) == k and {(r.channel, r.investigator) for r in released} == {(Channel.PAPER, "dtv01")}
    waiting = dict(session.execute(sa.select(Ballot.investigator, sa.func.count()).group_by(Ballot.investigator)).all())
    assert waiting == {"dtv01": k, "dtv02": 3}
    # at the close every ballot is released; DTV-02 had fewer than k: pooled, not named
    rounds.close(session, citizens_round, secret=SECRET)
    session.commit()
    by = dict(session.execute(sa.select(Response.investigator, sa.func.count()).group_by(Response.investigator)).all())
    assert by == {"dtv01": 2 * k, POOLED_INVESTIGATORS: 3}



def test_names_are_counted_per_quota_cell_and_a_quarantined_investigators_pool_is_left_out(
        app, session, citizens_round, make_user):
    """DTV-01 has k sheets of STP and one of SYT: named in STP, pooled in SYT, where the close fills the pool
    of one with DTV-02's k sheets (the cell's smallest named group). Quarantining DTV-01 leaves out its named
    responses and SYT's pool, which holds its sheet; quarantining DTV-03 (all its sheets named) leaves out
    only theirs."""
    clerk = make_user("clerk")
    for name in ("dtv01", "dtv02", "dtv03"):
        make_user("clerk", username=name)
    k = ballots.min_group(citizens_round.settings)
    keys = app.config["SHEET_SIGNING_KEYS"]

    def issue(agency, investigator, count):
        return sheets.issue_sheets(session, citizens_round, sheets.paper_cells(session, citizens_round,
                                                                               agency_code=agency),
                                   investigator=investigator)[:count]

    stp, syt, sct = issue("STP", "dtv01", k), issue("SYT", "dtv02", k + 1), issue("SCT", "dtv03", k)
    sheets.assign_investigator(session, citizens_round, [syt[k].serial], "dtv01", keys)
    for sheet in stp + syt + sct:
        _key(session, sheet, clerk)
    session.commit()
    rounds.close(session, citizens_round, secret=SECRET)
    session.commit()
    by = {(cell, name): n for cell, name, n in session.execute(
        sa.select(Response.quota_cell_id, Response.investigator, sa.func.count())
        .group_by(Response.quota_cell_id, Response.investigator))}
    assert by == {(stp[0].quota_cell_id, "dtv01"): k, (syt[0].quota_cell_id, POOLED_INVESTIGATORS): k + 1,
                  (sct[0].quota_cell_id, "dtv03"): k}
    assert citizens.pools_out(session, citizens_round, {"dtv01"}) == {syt[0].quota_cell_id}
    assert citizens.report(session, citizens_round, quarantined={"dtv01"}).excluded["quarantined"] == 2 * k + 1
    assert citizens.pools_out(session, citizens_round, {"dtv03"}) == set()
    assert citizens.report(session, citizens_round, quarantined={"dtv03"}).excluded["quarantined"] == k

# --- receipt codes ------------------------------------------------------------------------------------
def test_a_receipt_code_opens_the_form_once_and_stores_no_dossier(app, session, citizens_round):
    dossier = "000.00.23.H17-260915-0042"
    [slip] = receipts.issue(session, citizens_round, secret=SECRET, base_url="https://danang.example",
                            agency="HAICHAU", field="3", dossiers=[dossier])
    assert slip.new and slip.url == f"https://danang.example/c/{slip.code}"
    # printed again: the same code, no second row
    [again] = receipts.issue(session, citizens_round, secret=SECRET, base_url="https://danang.example",
                             agency="HAICHAU", field="3", dossiers=[dossier])
    assert again.code == slip.code and not again.new
    session.commit()
    [row] = session.execute(sa.select(ReceiptCode.__table__)).all()
    stored = " ".join(str(v) for v in row)
    assert dossier not in stored and slip.code not in stored and slip.code.replace("-", "") not in stored
    assert row.field == "3" and row.digest == receipts.digest(SECRET, slip.code)
    access = portal.open_code(session, slip.code.lower().replace("-", " "), today=rounds.local_today(),
                              secret=SECRET, start=True)
    assert access.questionnaire.code == "ND-TT" and [a.code for a in access.rated_agencies] == ["HAICHAU"]
    portal.submit(session, access, {"HAICHAU": _answers()}, portal.new_submission_id(), today=rounds.local_today())
    session.commit()
    with pytest.raises(portal.Refusal) as refused:
        portal.open_code(session, slip.code, today=rounds.local_today(), secret=SECRET)
    assert refused.value.reason == "submitted"
    # spent under the code's mark, which is not the stored digest: nothing joins the receipt to its use
    [mark] = session.scalars(sa.select(SpentCode.mark))
    assert mark != row.digest
    with pytest.raises(portal.Refusal):  # a code of another dossier, never printed, opens nothing
        portal.open_code(session, receipts.receipt_code(SECRET, "DNG-HL-2026", "HAICHAU", "other"),
                         today=rounds.local_today(), secret=SECRET)


@pytest.mark.parametrize("kwargs, message", [
    ({"agency": "NOPE"}, "không có ô chỉ tiêu trực tuyến"),
    ({"field": "99"}, "Lĩnh vực '99' không có trong danh mục"),
    ({"dossiers": [""]}, "không hợp lệ"),
    ({"dossiers": ["x" * 65]}, "không hợp lệ"),
    ({"dossiers": []}, "Chưa có số hồ sơ"),
])
def test_receipt_codes_refuse_bad_input(session, citizens_round, kwargs, message):
    args = {"agency": "HAICHAU", "field": "1", "dossiers": ["D-1"], **kwargs}
    with pytest.raises(receipts.ReceiptError, match=message):
        receipts.issue(session, citizens_round, secret=SECRET, base_url="http://x", **args)


def test_receipt_codes_are_for_citizens_rounds_only(session, loaded_round):
    with pytest.raises(receipts.ReceiptError, match="không phải đợt khảo sát người dân"):
        receipts.issue(session, loaded_round, secret=SECRET, base_url="http://x", agency="SNV", field="1",
                       dossiers=["D-1"])


# --- the demonstration and its results ----------------------------------------------------------------
#: The demonstration's agencies kept for the tests (the whole round takes a minute to simulate).
DEMO_AGENCIES = ("STP", "SXD", "HAICHAU", "HOAVANG")


@pytest.fixture
def demo(app, session, make_user, tmp_path):
    """The bundled round's demonstration on four of its agencies."""
    small = tmp_path / "DNG-HL-2026"
    shutil.copytree(CITIZENS_DIR, small)
    for name in ("agencies.csv", "quotas.csv", "populations.csv"):
        lines = (small / name).read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines[1:] if set(line.split(",")[:2]) & set(DEMO_AGENCIES)]
        (small / name).write_text("\n".join([lines[0], *kept]) + "\n", encoding="utf-8")
    rounds.load_round(session, small, QUESTIONNAIRE_DIR, actor="test", simulated_code="DNG-HL-2026-DEMO")
    rnd = rounds.get_round(session, "DNG-HL-2026-DEMO")
    today = date.today()
    rounds.schedule(session, rnd, today - timedelta(days=7), today + timedelta(days=30), actor="test")
    clerks = (make_user("clerk"), make_user("clerk"))
    report = simulation.simulate(session, rnd, clerks=clerks, supervisor=make_user("supervisor"), today=today,
                                 signing_keys=app.config["SHEET_SIGNING_KEYS"], secret=app.config["SECRET_KEY"],
                                 observer=make_user("observer"), auditor=make_user("auditor"))
    session.commit()
    return rnd, report


def _independent_frame(session, rnd) -> pd.DataFrame:
    rows = session.execute(sa.text(
        "SELECT r.id, a.code, a.kind, r.quota_cell_id, r.investigator, x.item_code, x.value FROM response r "
        "JOIN agency a ON a.id = r.agency_id JOIN answer x ON x.response_id = r.id WHERE r.round_id = :rid"),
        {"rid": rnd.id}).all()
    long = pd.DataFrame(rows, columns=["id", "agency", "kind", "cell", "investigator", "item", "value"])
    return long.pivot_table(index=["id", "agency", "kind"], columns="item", values="value", aggfunc="first",
                            dropna=False).reset_index().merge(
        long[["id", "cell", "investigator"]].drop_duplicates(), on="id")


def test_the_demo_collects_through_each_channel_and_the_indices_recompute(session, demo, tmp_path):
    rnd, report = demo
    # no answer is linked to a sheet; every keyed sheet names its investigator
    assert session.scalar(sa.select(sa.func.count()).select_from(Response)
                          .where(Response.round_id == rnd.id, Response.sheet_id.is_not(None))) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(Sheet).where(Sheet.investigator.is_(None))) == 0
    channels = dict(session.execute(sa.select(Response.channel, sa.func.count()).where(Response.round_id == rnd.id)
                                    .group_by(Response.channel)).all())
    assert channels[Channel.PAPER] == report.sheets_keyed > 50
    assert channels[Channel.ONLINE] == report.online_respondents > 20
    assert session.scalar(sa.select(sa.func.count()).select_from(ReceiptCode)) > report.online_respondents
    # a name on a response is shared by at least k respondents of its cell; the others are pooled
    k = ballots.min_group(rnd.settings)
    groups = session.execute(sa.select(Response.quota_cell_id, Response.investigator, sa.func.count())
                             .where(Response.channel == Channel.PAPER)
                             .group_by(Response.quota_cell_id, Response.investigator)).all()
    assert {name for _, name, _ in groups} <= {*simulation.INVESTIGATORS, POOLED_INVESTIGATORS}
    assert all(n >= k for _, name, n in groups if name != POOLED_INVESTIGATORS)
    # the frames were drawn and signed off before any sheet; phúc tra quarantined the careless investigator
    assert report.frames == 2 and report.quarantined == [simulation.CARELESS_INVESTIGATOR]
    quarantined = citizens.quarantined(session, rnd)
    assert quarantined == {simulation.CARELESS_INVESTIGATOR}
    rep = citizens.report(session, rnd, quarantined=quarantined)
    # independently: weights N / n per agency (N: the agency's units in the frames, every cell a stratum) over
    # eligible, non-quarantined respondents; the share of valid answers
    frame = _independent_frame(session, rnd)
    # (and the pool of every cell where the ledger has more of the careless investigator's keyed sheets than
    # responses and ballots naming them)
    pools_out = {cell for cell, in session.execute(sa.text(
        "SELECT s.quota_cell_id FROM sheet s WHERE s.investigator = :name AND s.state IN ('keyed', 'verified') "
        "GROUP BY s.quota_cell_id HAVING count(*) > (SELECT count(*) FROM response r WHERE r.quota_cell_id = "
        "s.quota_cell_id AND r.investigator = :name) + (SELECT count(*) FROM ballot b WHERE b.quota_cell_id = "
        "s.quota_cell_id AND b.investigator = :name)"), {"name": simulation.CARELESS_INVESTIGATOR})}
    frame = frame[(frame["S1"] == "2") & (frame["investigator"] != simulation.CARELESS_INVESTIGATOR)
                  & ~((frame["investigator"] == POOLED_INVESTIGATORS) & frame["cell"].isin(pools_out))]
    populations = dict(session.execute(sa.text(
        "SELECT a.code, count(*) FROM frame_unit u JOIN agency a ON a.id = u.agency_id GROUP BY a.code")).all())
    assert set(populations) == set(DEMO_AGENCIES)
    frame["w"] = frame["agency"].map(populations) / frame.groupby("agency")["agency"].transform("size")
    shares = rep.shares.set_index(["level", "domain", "measure"])
    for measure, item in (("YT1", "A9"), ("YT3", "C9"), ("overall", "G1")):
        valid = frame[frame[item].isin(["1", "2", "3", "4", "5"])]
        expected = (valid["w"] * valid[item].isin(["4", "5"])).sum() / valid["w"].sum()
        got = shares.loc[("province", "", measure)]
        assert got["est"] == pytest.approx(expected, abs=1e-12) and got["ci_lo"] < expected < got["ci_hi"]
        one = valid[valid["agency"] == "HAICHAU"]
        assert shares.loc[("agency", "HAICHAU", measure), "est"] == pytest.approx(
            (one[item].isin(["4", "5"])).mean(), abs=1e-12)  # one agency: equal weights
    # round.yaml's target (overall satisfaction ≥ 80 %) judged as every round's: one-sided 95 % Wilson bounds at
    # the Kish effective sample (the two ends of a two-sided 90 % interval)
    judged = rep.shares[rep.shares["measure"] == "overall"]
    assert (judged["target"] == 0.80).all()
    assert rep.shares.loc[rep.shares["measure"] != "overall", "target"].isna().all()
    for r in judged[~judged["withheld"]].itertuples():
        n_eff = r.est * (1 - r.est) / r.se ** 2 if r.se > 0 else r.n
        lo, hi = proportion_confint(r.est * n_eff, n_eff, alpha=0.10, method="wilson")
        assert r.verdict == ("dat" if lo >= 0.80 else "khong_dat" if hi < 0.80 else "chua_du_can_cu"), r
    assert rep.excluded["quarantined"] > 0 and rep.excluded["screened_out"] >= 0
    without = citizens.report(session, rnd)
    assert without.excluded["quarantined"] == 0
    assert without.shares.loc[0, "n"] > rep.shares.loc[0, "n"]
    rates = rep.rates.set_index("agency")
    assert (rates["returned"] <= rates["issued"]).all() and rates["rate"].between(0, 1).all()
    assert set(rep.improvements["option"]) <= {str(i) for i in range(1, 8)}

    xlsx = citizens.export(rep, tmp_path / "hl.xlsx")
    book = pd.read_excel(xlsx, sheet_name=None)
    assert list(book) == ["Du lieu mo phong", "Ty le hai long", "Noi dung cai thien", "Ty le phan hoi", "Ghi chu"]
    assert (book["Ty le hai long"]["Dữ liệu mô phỏng"] == "DỮ LIỆU MÔ PHỎNG").all()
    assert "Tỷ lệ hài lòng" in book["Ty le hai long"].columns
    notes = dict(zip(book["Ghi chu"]["Mục"], book["Ghi chu"]["Giá trị"], strict=True))
    assert notes["Điều tra viên bị tạm loại"] == simulation.CARELESS_INVESTIGATOR
    csv = citizens.export(rep, tmp_path / "hl.csv")
    assert (tmp_path / "hl-ty-le-phan-hoi.csv").exists() and "Tỷ lệ hài lòng" in csv.read_text(encoding="utf-8-sig")
    with pytest.raises(citizens.CitizensError, match="Không hỗ trợ định dạng"):
        citizens.export(rep, tmp_path / "hl.sav")


def test_results_of_a_par_round_are_not_counted_so(session, loaded_round):
    with pytest.raises(citizens.CitizensError, match="không phải đợt khảo sát người dân"):
        citizens.report(session, loaded_round)


def test_the_commands_of_a_citizens_round(app, runner, session, citizens_round, make_user, tmp_path):
    make_user("clerk", username="dtv09")
    make_user("clerk", username="dtv10")
    dossiers = tmp_path / "dossiers.txt"
    dossiers.write_text("000.00.23.H17-1\n000.00.23.H17-2\n\n", encoding="utf-8")
    out = tmp_path / "slips.csv"
    result = runner.invoke(args=["receipts", "issue", "--round", "DNG-HL-2026", "--agency", "SONTRA", "--field", "2",
                                 "--dossiers", str(dossiers), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = out.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "ho_so,ma,duong_dan" and len(rows) == 3 and rows[1].startswith("000.00.23.H17-1,")
    assert "Đã tạo 2 mã mới" in result.output
    bad = runner.invoke(args=["receipts", "issue", "--round", "DNG-HL-2026", "--agency", "SONTRA", "--field", "0",
                              "--dossiers", str(dossiers), "--out", str(out)])
    assert bad.exit_code == 1 and "Lĩnh vực '0' không có trong danh mục" in bad.output
    printed = runner.invoke(args=["sheets", "print", "--round", "DNG-HL-2026", "--agency", "TAMKY",
                                  "--investigator", "dtv09", "--out", str(tmp_path / "s.pdf")])
    assert printed.exit_code == 0, printed.output
    serials = list(session.scalars(sa.select(Sheet.serial).where(Sheet.investigator == "dtv09")))
    assert len(serials) == 20
    moved = runner.invoke(args=["sheets", "assign", "--round", "DNG-HL-2026", "--investigator", "DTV10",
                                *serials[:2]])
    assert moved.exit_code == 0 and "Đã giao 2 phiếu cho điều tra viên dtv10" in moved.output
    refused = runner.invoke(args=["sheets", "assign", "--round", "DNG-HL-2026", "--investigator", "dtv 10",
                                  serials[3]])
    assert refused.exit_code == 1 and "Không có tài khoản điều tra viên" in refused.output
    results = runner.invoke(args=["analysis", "run", "--round", "DNG-HL-2026", "--out", str(tmp_path / "r.xlsx")])
    assert results.exit_code == 0, results.output
    assert "hài lòng chung chưa có" in results.output and (tmp_path / "r.xlsx").exists()
    per_response = runner.invoke(args=["analysis", "run", "--round", "DNG-HL-2026", "--out", str(tmp_path / "r.csv"),
                                       "--answers", str(tmp_path / "a.csv")])
    assert per_response.exit_code == 1 and "không xuất từng phiếu" in per_response.output


def test_a_citizens_round_for_another_province_starts_from_the_bundled_one(runner, tmp_path):
    result = runner.invoke(args=["round", "new", "HYN-HL-2026", "--province", "Hưng Yên", "--unit", "tỉnh",
                                 "--from", "DNG-HL-2026", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "quy mô tổng thể (populations.csv)" in result.output and "số cán bộ" not in result.output
    assert "populations and targets" in (tmp_path / "HYN-HL-2026" / "round.yaml").read_text(encoding="utf-8")
    r = rounds.check_round(tmp_path / "HYN-HL-2026", QUESTIONNAIRE_DIR)
    assert r.round_kind == "citizens" and r.province == "Hưng Yên" and r.name.startswith("Khảo sát sự hài lòng")


def test_more_respondents_than_the_population_is_a_clear_error(app, session, citizens_round, client, make_user):
    citizens_round.methodology = {**citizens_round.methodology,
                                  "populations": {**citizens_round.methodology["populations"],
                                                  "HAICHAU": {"population": 1, "source": "test"}}}
    session.commit()
    for dossier in ("D-1", "D-2"):
        [slip] = receipts.issue(session, citizens_round, secret=SECRET, base_url="http://x", agency="HAICHAU",
                                field="1", dossiers=[dossier])
        access = portal.open_code(session, slip.code, today=rounds.local_today(), secret=SECRET, start=True)
        portal.submit(session, access, {"HAICHAU": _answers()}, portal.new_submission_id(), today=rounds.local_today())
    session.commit()
    rounds.close(session, citizens_round, secret=SECRET)
    session.commit()
    with pytest.raises(citizens.CitizensError, match="HAICHAU vượt quá số người trong khung mẫu"):
        citizens.report(session, citizens_round)
    make_user("analyst", username="pt")
    client.post("/staff/login", data={"username": "pt", "password": "correct-horse-battery"})
    page = client.get(f"/staff/results/{citizens_round.code}/")
    assert page.status_code == 422 and "vượt quá số người trong khung mẫu" in page.get_data(as_text=True)
