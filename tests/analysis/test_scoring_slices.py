"""Scoring's fast paths give the same numbers, to the last bit, as the plain computation: a slice of rows
at a time as all rows at once, group means on integer codes as a group-by on the labels."""
import numpy as np
import pandas as pd
import pytest

import analysis.encoding
from analysis import group_means, score_round
from tests.analysis.test_scoring import ITEMS, SCALES, SETTINGS, _random_answers


def _frames(res):
    return {name: getattr(res, name) for name in res.__dataclass_fields__}


@pytest.mark.parametrize("layout", ["grouped", "shuffled", "strata"])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_slices_of_rows_change_no_bit(monkeypatch, layout, rows):
    a = _random_answers(seed=11, n_responses=120)
    if layout == "shuffled":  # a unit's rows in several runs: one slice of everything
        a = a.sample(frac=1, random_state=5).reset_index(drop=True)
    elif layout == "strata":
        a["stratum"] = a["group"] + "|" + (a["response_id"] % 4).astype(str)
    whole = _frames(score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS))
    monkeypatch.setattr(analysis.encoding, "ROW_CHUNK", rows)
    sliced = _frames(score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS))
    for name, frame in whole.items():
        pd.testing.assert_frame_equal(sliced[name], frame, check_exact=True, obj=name)


def test_slices_hold_whole_units(monkeypatch):
    monkeypatch.setattr(analysis.encoding, "ROW_CHUNK", 5)
    a = _random_answers(seed=2, n_responses=30)
    units = analysis.encoding._units(a)
    chunks = units.chunks()
    assert len(chunks) > 1
    assert [c[0] for c in chunks[1:]] == [c[1] for c in chunks[:-1]] and chunks[-1][1] == len(a)
    for r0, r1, u0, u1 in chunks:
        assert set(units.row_unit[r0:r1]) == set(range(u0, u1))
        assert (units.local_units(r0, r1, u0, u1) == units.row_unit[r0:r1] - u0).all()


def test_group_means_equal_a_group_by_on_the_labels():
    rng = np.random.default_rng(4)
    n = 3000
    scores = pd.DataFrame({"response_id": np.arange(n), "agency": rng.choice(["S2", "S10", "S1"], n),
                           "agency_kind": "department", "group": rng.choice(["CC-CT", "HĐ-CT", "LĐ-CP"], n)})
    for c in ("A1", "A2"):
        scores[c] = np.where(rng.random(n) < 0.1, np.nan, rng.random(n) / 3)
    scores.loc[[3, 9], "group"] = None  # no group: in no mean
    g = scores.groupby(["agency", "agency_kind", "group"], sort=True, observed=True)[["A1", "A2"]]
    plain = g.mean().melt(ignore_index=False, var_name="criterion", value_name="mean").reset_index()
    plain["n"] = g.count().melt(ignore_index=False, value_name="n")["n"].to_numpy().astype(np.int64)
    plain = plain.sort_values(["agency", "criterion", "group"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(group_means(scores, ["A1", "A2"]), plain, check_exact=True)
