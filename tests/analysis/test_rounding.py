"""Published points round half away from zero on the decimal value, as Excel's ROUND does."""
import numpy as np
import pandas as pd
import pytest

from analysis import round_half_away, score_round

# x, digits, Excel ROUND(x, digits). Excel rounds the 15-significant-digit decimal value half away from
# zero (Microsoft support: "ROUND function"; "Floating-point arithmetic may give inaccurate results in
# Excel"); Python's round() gives the second value, half to even on the binary float.
EXCEL_TIES = [
    (2.385, 2, 2.39),   # round(): 2.38
    (1.675, 2, 1.68),
    (1.625, 2, 1.63),   # round(): 1.62
    (-1.625, 2, -1.63),
    (0.125, 2, 0.13),   # round(): 0.12
    (1.005, 2, 1.01),   # round(): 1.0
    (2.675, 2, 2.68),   # round(): 2.67
    (0.285, 2, 0.29),   # round(): 0.28
    (1.115, 2, 1.12),
    (0.615, 2, 0.62),
    (-0.005, 2, -0.01),
    (0.5, 0, 1.0),      # round(): 0
    (2.5, 0, 3.0),      # round(): 2
    (-2.5, 0, -3.0),
    (3.7449999999, 2, 3.74),  # not a tie
    (4 * 0.41875, 2, 1.68),   # a tie reached by arithmetic
    (-2.675, 2, -2.68),       # round(): -2.67
    (-1.005, 2, -1.01),       # round(): -1.0
    (-0.125, 2, -0.13),       # round(): -0.12
    (-2.385, 2, -2.39),       # round(): -2.38
    (-0.5, 0, -1.0),          # round(): -0.0
    (1.45, 1, 1.5),           # round(): 1.4
    (-1.45, 1, -1.5),
    (8.345, 2, 8.35),
    (0.045, 2, 0.05),         # round(): 0.04
    (10.005, 2, 10.01),
    (1234.565, 2, 1234.57),
    (12.125, 2, 12.13),       # round(): 12.12
    (-3.7449999999, 2, -3.74),
]


@pytest.mark.parametrize("x, digits, excel", EXCEL_TIES)
def test_round_half_away_equals_excel_round(x, digits, excel):
    assert round_half_away(x, digits) == excel


@pytest.mark.parametrize("digits", sorted({d for _, d, _ in EXCEL_TIES}))
def test_the_whole_table_at_once_as_an_array_and_a_series(digits):
    xs = [x for x, d, _ in EXCEL_TIES if d == digits]
    excel = [e for _, d, e in EXCEL_TIES if d == digits]
    assert round_half_away(np.array(xs), digits).tolist() == excel
    assert round_half_away(pd.Series(xs), digits).tolist() == excel


def test_round_half_away_keeps_shapes_nan_and_index():
    s = pd.Series([2.385, np.nan, np.inf], index=["a", "b", "c"], name="points")
    out = round_half_away(s)
    assert out.index.tolist() == ["a", "b", "c"] and out.name == "points"
    assert out["a"] == 2.39 and np.isnan(out["b"]) and out["c"] == np.inf
    assert round_half_away(np.array([[0.125, 1.625]])).tolist() == [[0.13, 1.63]]
    with pytest.raises(ValueError, match="digits"):
        round_half_away(1.0, -1)


ITEMS = pd.DataFrame({"item": ["Q1", "Q2"], "scale": ["DG4", "DG4"], "criterion": ["A1", "A2"]})
SETTINGS = {
    "coefficients": {"DG4": {"1": 0.0, "2": 0.25, "3": 0.5, "4": 1.0}},
    "max_points": {"department": {"A1": 3.35, "A2": 3.35}},
    "group_weights": {"department": {"CC-CT": 1.0}},
    "min_respondents": {"CC-CT": 1},
    "satisfaction_scale": "DG4",
    "positive": {"DG4": ["3", "4"]},
}


def test_points_round_ties_away_and_the_total_is_the_unrounded_sum_rounded_once():
    # S = 0.25 on both criteria: points = 3.35 · 0.25 = 0.8375 -> 0.84 each; total round(1.675) = 1.68
    answers = pd.DataFrame({
        "response_id": ["r1", "r1"], "agency": ["S1", "S1"], "agency_kind": ["department"] * 2,
        "group": ["CC-CT"] * 2, "item": ["Q1", "Q2"], "option": ["2", "2"],
    })
    res = score_round(answers, items=ITEMS, scales={"DG4": ["1", "2", "3", "4"]}, settings=SETTINGS)
    pts = res.points.set_index("criterion")
    assert pts.loc["A1", "points_exact"] == pytest.approx(0.8375)
    assert pts.loc["A1", "points"] == 0.84 and pts.loc["A2", "points"] == 0.84
    assert res.totals.loc[0, "survey_points"] == 1.68

    settings = {**SETTINGS, "max_points": {"department": {"A1": 2.5, "A2": 2.5}}}
    answers["option"] = ["3", "3"]  # S = 0.5: points 1.25 each, exact decimal ties at one decimal
    res = score_round(answers, items=ITEMS, scales={"DG4": ["1", "2", "3", "4"]}, settings=settings)
    assert res.points["points"].tolist() == [1.25, 1.25]
    settings = {**SETTINGS, "max_points": {"department": {"A1": 1.005, "A2": 1.005}}}
    answers["option"] = ["4", "4"]  # S = 1: points 1.005 -> 1.01 each (Python's round: 1.0); total 2.01
    res = score_round(answers, items=ITEMS, scales={"DG4": ["1", "2", "3", "4"]}, settings=settings)
    assert res.points["points"].tolist() == [1.01, 1.01]
    assert res.totals.loc[0, "survey_points"] == 2.01  # round(2.01), not 1.01 + 1.01 = 2.02
