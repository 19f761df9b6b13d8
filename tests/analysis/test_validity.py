"""The validity rule, applied to long answers as an analyst has them (the exported answers file)."""
import io

import numpy as np
import pandas as pd
import pytest

import analysis

ANSWERS = """response_id,agency,group,item,option
r1,SNV,CC-CT,I01,3
r1,SNV,CC-CT,I02,K
r1,SNV,CC-CT,I03,
r1,SNV,CC-CT,I04,4
r2,SNV,CC-CT,I01,K
r2,SNV,CC-CT,I02,K
r2,SNV,CC-CT,I03,5
r2,SNV,CC-CT,I04,
r3,SNV,HĐ-CT,E01,2
r3,STP,HĐ-CT,E01,K
"""


def _answers() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(ANSWERS), dtype=str, keep_default_na=False).replace({"option": {"": None}})


def test_pairs_answering_less_than_the_share_are_dropped_whole():
    a = _answers()
    keep = analysis.answered_enough(a, rated_items={"CC-CT": 4, "HĐ-CT": 1}, min_answered_share=0.5)
    # r1 answers 2 of 4 (K and a blank are no answer); r2 answers 1 of 4; r3 answers about SNV, not STP
    assert keep.tolist() == [True] * 4 + [False] * 4 + [True, False]
    # the pair is the unit: the same response is kept for one agency and dropped for the other
    keep = analysis.answered_enough(a, rated_items={"CC-CT": 4, "HĐ-CT": 1}, min_answered_share=0.25)
    assert keep.tolist() == [True] * 8 + [True, False]


def test_the_share_is_reached_exactly_and_excluded_options_are_the_callers():
    a = _answers()
    # 2 of 4 is exactly one half; a share of 0.5 + a hair is not reached
    assert analysis.answered_enough(a, rated_items={"CC-CT": 4, "HĐ-CT": 1}, min_answered_share=0.5)[0]
    assert not analysis.answered_enough(a, rated_items={"CC-CT": 4, "HĐ-CT": 1}, min_answered_share=0.51)[0]
    # with no excluded option, "K" counts as an answer: r1 and r2 then answer 3 of 4 each
    rated = {"CC-CT": 4, "HĐ-CT": 1}
    assert not analysis.answered_enough(a, rated_items=rated, min_answered_share=0.75)[:8].any()
    assert analysis.answered_enough(a, rated_items=rated, min_answered_share=0.75, excluded=()).all()
    assert analysis.scored_answers(a["option"], ["K"]).tolist() == [
        True, False, False, True, False, False, True, False, True, False]


def test_counts_per_row_or_column_give_the_same_rule():
    a = _answers()
    per_row = np.where(a["group"] == "CC-CT", 4, 1)
    expected = analysis.answered_enough(a, rated_items={"CC-CT": 4, "HĐ-CT": 1}, min_answered_share=0.5)
    assert (analysis.answered_enough(a, rated_items=per_row, min_answered_share=0.5) == expected).all()
    a["n_rated"] = per_row
    assert (analysis.answered_enough(a, rated_items="n_rated", min_answered_share=0.5) == expected).all()
    categorical = a.astype({"response_id": "category", "agency": "category", "option": "category"})
    keep = analysis.answered_enough(categorical, rated_items="n_rated", min_answered_share=0.5)
    assert (keep == expected).all()


def test_bad_inputs_name_what_is_wrong():
    a = _answers()
    with pytest.raises(ValueError, match=r"no count for group\(s\) \['HĐ-CT'\]"):
        analysis.answered_enough(a, rated_items={"CC-CT": 4}, min_answered_share=0.5)
    with pytest.raises(ValueError, match="min_answered_share"):
        analysis.answered_enough(a, rated_items={"CC-CT": 4, "HĐ-CT": 1}, min_answered_share=1.5)
    with pytest.raises(ValueError, match="3 counts for 10 answers"):
        analysis.answered_enough(a, rated_items=np.array([1, 2, 3]), min_answered_share=0.5)
    with pytest.raises(ValueError, match="agency"):
        analysis.answered_enough(a.drop(columns="agency"), rated_items={"CC-CT": 4, "HĐ-CT": 1},
                                 min_answered_share=0.5)
