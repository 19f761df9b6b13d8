"""Groups under the round's ``min_breakdown`` (5 in QNA-2023) enter no published figure, anywhere.

SNGV is rated by three of its civil servants and nobody else, VPUB by three district division heads and
nobody else: both are withheld, on the pages, in the API, in every export and in the command's output.
STP has six civil servants, five council members and two LĐH-CH leaders: the leaders are left out as a
missing group would be. SNV and STC have only groups of five or more: their figures are those of a round
without any small-group rule, to the last bit.
"""
from __future__ import annotations

import json
import re

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from survey_service.services import results, users

WITHHELD = ("VPUB", "SNGV")
COUNCIL = ("SNV", "STC", "STP")
REASON = "Không công bố: số liệu chỉ có từ nhóm đối tượng dưới 5 người trả lời"


@pytest.fixture
def small(builder):
    builder.load(
        [builder.row("CC-CT", "SNGV", v) for v in "123"]
        + [builder.row("LĐ-CP", "VPUB", v, division="VP", district=d, respondent=f"vp-{d}")
           for v, d in zip("124", ("TAMKY", "HOIAN", "DIENBAN"))]
        + [builder.row("CC-CT", "STP", v) for v in "123344"]
        + [builder.row("LĐH-CH", "STP", "1") for _ in range(2)]
        + [builder.row("CC-CT", "SNV", v) for v in "23444"]
        + [builder.row("CC-CT", "STC", v) for v in "12234"]
        + [builder.row("HĐ-CT", a, v, respondent=f"h{i}") for i, v in enumerate("23434") for a in COUNCIL])
    return builder


def _results(session, rnd, min_breakdown=None):
    if min_breakdown is not None:
        rnd.settings = {**rnd.settings, "min_breakdown": min_breakdown}
        session.commit()
    return results.round_results(session, rnd)


def test_an_agency_with_only_small_groups_has_no_figure_and_says_why(small, session, loaded_round):
    res = _results(session, loaded_round)
    summary = res.summary.set_index("agency")
    figures = [c for c in summary.columns
               if c not in ("agency_name", "agency_kind", "max_points", "flags", "withheld")]
    for agency in WITHHELD:
        row = summary.loc[agency]
        assert row["withheld"] and row[figures].isna().all(), row[figures].dropna()
        assert row["flags"] == results.FLAG_WITHHELD
        crit = res.criteria[res.criteria["agency"] == agency]
        numbers = ["score", "points", "points_se", "points_ci_lo", "points_ci_hi", "n", "n_eff", "n_groups",
                   "tltc"]
        assert len(crit) == 8 and crit[numbers].isna().all().all()
        assert (crit["flag"] == results.FLAG_WITHHELD).all()
        items = res.items[res.items["agency"] == agency]
        assert len(items) and items["suppressed"].all() and items["counts"].isna().all()
        assert agency not in set(res.weights["agency"])
        assert (res.answers.loc[res.answers["agency"] == agency, "weight"] == 0).all()
    # an agency nobody rated still has no data, which is not the same
    assert summary.loc["STTTT", "flags"] == "khong_du_lieu" and summary.loc["STTTT", "n"] == 0
    assert not summary.loc["STTTT", "withheld"]


def test_a_small_group_beside_larger_ones_is_left_out_as_a_missing_group(small, session, loaded_round):
    res = _results(session, loaded_round)
    crit = res.criteria.set_index(["agency", "criterion"])
    a = res.answers
    a = a[a["agency"] == "STP"]
    # m(r, c) per sheet, M per group, recomputed here: CC-CT (weight .30) and HĐ-CT (.20), not LĐH-CH
    m = a.groupby(["response_uid", "group", "criterion"], observed=True)["value"].mean().dropna()
    means = m.groupby(level=["group", "criterion"]).mean()
    for c in crit.loc["STP"].index:
        expected = (0.30 * means[("CC-CT", c)] + 0.20 * means[("HĐ-CT", c)]) / 0.50
        assert crit.loc[("STP", c), "score"] == pytest.approx(expected, abs=1e-12)
        assert crit.loc[("STP", c), "missing_groups"] == "LĐ-CP,LĐH-CH"
        assert "thieu_du_lieu" in crit.loc[("STP", c), "flag"].split(",")
        assert crit.loc[("STP", c), "n_groups"] == 2
    stp = res.summary.set_index("agency").loc["STP"]
    assert stp["n"] == 11 and not stp["withheld"]   # 6 + 5: the two leaders are not counted
    # satisfaction: the shares of positive HL5 answers of the two groups shown
    sat = a[a["scale"] == "HL5"].assign(pos=lambda f: f["option"].isin(["4", "5"]))
    p = sat.groupby("group", observed=True)["pos"].mean()
    assert stp["satisfaction"] == pytest.approx(100 * (0.30 * p["CC-CT"] + 0.20 * p["HĐ-CT"]) / 0.50, abs=1e-9)
    # without the rule the leaders' sheets would have counted: the figures do differ
    everything = _results(session, loaded_round, min_breakdown=1).criteria.set_index(["agency", "criterion"])
    assert (everything.loc["STP", "score"] != crit.loc["STP", "score"]).all()


def test_agencies_with_only_large_groups_are_unchanged_to_the_last_bit(small, session, loaded_round):
    shown = _results(session, loaded_round)
    everything = _results(session, loaded_round, min_breakdown=1)
    ranks = ["rank", "rank_lo", "rank_hi", "n_same", "rank_same", "rank_same_lo", "rank_same_hi"]  # among others
    for agency in ("SNV", "STC"):
        one, every = shown.summary, everything.summary   # every agency, in the same order
        pd.testing.assert_frame_equal(one[one["agency"] == agency].drop(columns=ranks),
                                      every[every["agency"] == agency].drop(columns=ranks), check_exact=True)
        for name in ("criteria", "items", "weights"):
            a, b = getattr(shown, name), getattr(everything, name)
            pd.testing.assert_frame_equal(a[a["agency"] == agency].reset_index(drop=True),
                                          b[b["agency"] == agency].reset_index(drop=True), check_exact=True)
    # under min_breakdown 1 the small groups are what the published figures rested on
    assert everything.summary.set_index("agency").loc["VPUB", "n"] == 3
    assert everything.criteria.loc[everything.criteria["agency"] == "VPUB", "points"].notna().any()


def test_ranks_skip_withheld_agencies(small, session, loaded_round):
    summary = _results(session, loaded_round).summary.set_index("agency")
    departments = summary[summary["agency_kind"] == "department"]
    ranked = departments["rank"].dropna().astype(int)
    assert sorted(ranked.index) == sorted(COUNCIL) and sorted(ranked) == [1, 2, 3]
    points = departments.loc[list(COUNCIL), "survey_points"]
    by_points = points.rank(ascending=False, method="min").astype(int)
    assert ranked.to_dict() == by_points.to_dict()
    assert departments.loc[list(COUNCIL), ["rank_lo", "rank_hi"]].isin([1, 2, 3]).all().all()
    assert departments.loc[list(WITHHELD), ["rank", "rank_lo", "rank_hi"]].isna().all().all()


def _row_cells(html: str, name: str) -> str:
    row = next(r for r in html.split("<tr>") if name in r)
    return row[:row.index("</tr>")]


def test_results_pages_show_the_reason_and_no_figure(small, staff_client):
    client = staff_client("analyst")
    table = client.get("/staff/results/QNA-2023/").get_data(as_text=True)
    for name in ("Sở Ngoại vụ", "Văn phòng UBND tỉnh"):
        row = _row_cells(table, name)
        cells = [re.sub(r"<[^>]+>|\s", "", c) for c in re.findall(r'<td class="num">(.*?)</td>', row, re.S)]
        # every figure is a dash; only the kind's maximum points (30) stands beside the empty total
        assert cells and all(re.fullmatch(r"—(/30)?—?", c) for c in cells), cells
        assert REASON in row
    assert REASON not in _row_cells(table, "Sở Tư pháp")
    for agency in WITHHELD:
        page = client.get(f"/staff/results/QNA-2023/agency/{agency}").get_data(as_text=True)
        assert "mọi nhóm đối tượng trả lời về cơ quan này đều có dưới 5 người trả lời" in page
        assert "phiếu hợp lệ" not in page and "tỷ lệ hài lòng" not in page
        assert "Điểm theo lĩnh vực" not in page
        assert "Ẩn (nhóm dưới 5 người trả lời)" in page
        assert client.get(f"/staff/results/QNA-2023/agency/{agency}/items.png").status_code == 200
    stp = client.get("/staff/results/QNA-2023/agency/STP").get_data(as_text=True)
    assert "11 phiếu hợp lệ" in stp and "(LĐ-CP,LĐH-CH)" in stp
    chart = client.get("/staff/results/QNA-2023/ranking-department.png")
    assert chart.status_code == 200 and chart.mimetype == "image/png"


def test_results_api_says_withheld_and_gives_no_number(small, client, make_user, session):
    token = users.issue_api_token(session, make_user("analyst"), actor="test")
    session.commit()
    url = "/api/v1/rounds/QNA-2023/results"
    body = client.get(url, headers={"Authorization": f"Bearer {token}"}).get_json()
    agencies = {a["agency"]: a for a in body["agencies"]}
    assert "dưới 5 người trả lời" in body["flag_labels"]["khong_cong_bo"]
    for code in WITHHELD:
        a = agencies[code]
        assert a["withheld"] == "small_group" and "dưới 5 người trả lời" in a["withheld_message"]
        assert a["flags"] == ["khong_cong_bo"]
        for key in ("n", "n_eff_min", "survey_points", "survey_points_se", "satisfaction_pct", "positive_pct",
                    "rank"):
            assert a[key] is None, key
        assert a["survey_points_ci"] == a["satisfaction_ci"] == a["rank_interval"] == [None, None]
        for c in a["criteria"]:
            assert c["withheld"] == "small_group" and c["flags"] == ["khong_cong_bo"]
            numbers = ("score", "points", "points_se", "n", "n_eff", "positive_pct")
            assert [c[k] for k in numbers] == [None] * len(numbers)
            assert c["points_ci"] == [None, None]
    stp = agencies["STP"]
    assert stp["withheld"] is None and stp["withheld_message"] is None and stp["n"] == 11
    assert stp["survey_points"] is not None and stp["rank"] in (1, 2, 3)
    assert all(c["withheld"] is None and "LĐH-CH" in c["missing_groups"] for c in stp["criteria"])


def _numbers_in(path, sheet: str, agencies) -> dict[str, list]:
    """Header → the numeric cells of the agencies' rows in one sheet of the workbook."""
    ws = openpyxl.load_workbook(path)[sheet]
    header = [c.value for c in ws[1]]
    found: dict[str, list] = {}
    for row in ws.iter_rows(min_row=2):
        if row[0].value in agencies:
            for head, cell in zip(header, row):
                if isinstance(cell.value, (int, float)):
                    found.setdefault(head, []).append(cell.value)
    return found


def test_every_export_leaves_the_small_groups_out_and_reproduces_the_published_numbers(small, runner,
                                                                                      tmp_path):
    xlsx, csv_out, sav, answers, responses = (tmp_path / n for n in ("r.xlsx", "r.csv", "r.sav", "a.csv",
                                                                     "responses.sav"))
    result = runner.invoke(args=["analysis", "run", "--round", "QNA-2023", "--out", str(xlsx),
                                 "--out", str(csv_out), "--out", str(sav), "--answers", str(answers),
                                 "--responses", str(responses)])
    assert result.exit_code == 0, result.output
    assert ("Không công bố số liệu của 2 cơ quan (VPUB, SNGV): mọi nhóm đối tượng trả lời về các cơ quan này "
            "đều có dưới 5 người trả lời") in result.output
    assert "41/43 cơ quan có điểm" not in result.output and "3/43 cơ quan có điểm" in result.output

    # the workbook: no number about a withheld agency in any sheet but the kind's maximum points
    book = pd.read_excel(xlsx, sheet_name=None)
    for sheet in book:
        numbers = _numbers_in(xlsx, sheet, WITHHELD)
        assert set(numbers) <= {"Điểm tối đa"}, (sheet, numbers)
    summary = book["Tổng hợp"].set_index("Mã cơ quan")
    assert (summary.loc[list(WITHHELD), "Cảnh báo độ tin cậy"].str.startswith(REASON)).all()
    criteria = book["Theo lĩnh vực"].set_index("Mã cơ quan")
    assert (criteria.loc[list(WITHHELD), "Cảnh báo"].str.startswith(REASON)).all()
    items = book["Theo câu hỏi"].set_index("Mã cơ quan")
    assert (items.loc[list(WITHHELD), "Số phiếu của nhóm"] == "< 5").all()
    assert summary.loc["STP", "Số phiếu hợp lệ"] == 11

    # the CSV is the summary sheet
    table = pd.read_csv(csv_out).set_index("Mã cơ quan")
    numeric = [c for c in table.columns if c not in ("Tên cơ quan", "Loại cơ quan", "Điểm tối đa",
                                                     "Cảnh báo độ tin cậy")]
    assert table.loc[list(WITHHELD), numeric].isna().all().all()
    assert (table.loc[list(WITHHELD), "Cảnh báo độ tin cậy"].str.startswith(REASON)).all()

    # the agency-level .sav: every estimate missing, the reason as a flag with its label
    frame, meta = pyreadstat.read_sav(str(sav))
    frame = frame.set_index("agency")
    flag = next(v for v, label in meta.column_names_to_labels.items() if label and REASON in label)
    estimates = [c for c in frame.columns if c not in ("agency_name", "kind", "max_points")
                 and not c.startswith("flag")]
    assert frame.loc[list(WITHHELD), estimates].isna().all().all()
    assert (frame.loc[list(WITHHELD), flag] == 1).all() and (frame.loc[list(COUNCIL), flag] == 0).all()

    # the per-response files: none of the small groups' sheets
    cases, _ = pyreadstat.read_sav(str(responses))
    assert not set(cases["agency"]) & set(WITHHELD)
    assert set(cases.loc[cases["agency"] == "STP", "form"]) == {"CC-CT", "HĐ-CT"}
    tidy = pd.read_csv(answers)
    assert not set(tidy["agency"]) & set(WITHHELD)
    assert set(tidy.loc[tidy["agency"] == "STP", "group"]) == {"CC-CT", "HĐ-CT"}
    # ... and every published score and count is rebuilt from the answers written
    rebuilt = (tidy["weight"] * tidy["value"].fillna(0)).groupby([tidy["agency"], tidy["criterion"]]).sum()
    published = book["Theo lĩnh vực"].set_index(["Mã cơ quan", "Mã lĩnh vực"])["Mức đạt (0-1)"].dropna()
    assert sorted(published.index.get_level_values(0).unique()) == sorted(COUNCIL)
    np.testing.assert_allclose(rebuilt.loc[published.index].to_numpy(), published.to_numpy(), rtol=1e-12)
    respondents = tidy.groupby("agency")["response_id"].nunique()
    assert (summary.loc[list(COUNCIL), "Số phiếu hợp lệ"] == respondents[list(COUNCIL)]).all()
    sidecar = json.loads((tmp_path / "a.provenance.json").read_text(encoding="utf-8"))
    assert sidecar["analysis_parameters"]["min_breakdown"] == 5
