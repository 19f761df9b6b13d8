"""Every published number of a simulated round is rebuilt from its answers export alone: by the Python script
(analysis.Design) and by the R script (R's survey package), for every agency and indicator: estimate, SE,
interval and degrees of freedom."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from survey_service.services import exports, results, rounds, simulation
from tests.conftest import QUESTIONNAIRE_DIR, REQUIRE_PG, ROUND_DIR

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "reproduce"
#: CI runs the R part; elsewhere it is skipped when R or its survey package is missing
REQUIRE_R = os.environ.get("CI") == "true" or REQUIRE_PG


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: the export does not depend on the database (its tests run on both)."""
    return f"sqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture
def published(app, session, loaded_round, make_user, tmp_path):
    """A simulated round (every paper sheet, a share of the online quotas), its results and answers export."""
    rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR, actor="test", simulated_code="QNA-2023-DEMO")
    rnd = rounds.get_round(session, "QNA-2023-DEMO")
    today = date.today()
    rounds.schedule(session, rnd, today - timedelta(days=7), today + timedelta(days=30), actor="test")
    simulation.simulate(session, rnd, clerks=(make_user("clerk"), make_user("clerk")),
                        supervisor=make_user("supervisor"), today=today,
                        signing_keys=app.config["SHEET_SIGNING_KEYS"], secret=app.config["SECRET_KEY"],
                        online_share=(0.1, 0.2))
    session.commit()
    res = results.round_results(session, rnd)
    path = exports.write_answers_csv(res, tmp_path / "answers.csv")
    return res, path


def _compare(res: results.RoundResults, table: pd.DataFrame) -> None:
    """The rebuilt table equals the published one: every criterion's points, the totals and satisfaction."""
    crit = res.criteria[res.criteria["points"].notna()].set_index(["agency", "criterion"])
    rebuilt = table[~table["indicator"].isin(["survey_points", "satisfaction"])].set_index(["agency", "indicator"])
    assert sorted(rebuilt.index) == sorted(crit.index)
    rebuilt = rebuilt.loc[crit.index]
    assert (np.round(rebuilt["est"].to_numpy() + 1e-12, 2) == crit["points"].to_numpy()).all()
    for col, pub in (("se", "points_se"), ("ci_lo", "points_ci_lo"), ("ci_hi", "points_ci_hi")):
        np.testing.assert_allclose(rebuilt[col].to_numpy(float), crit[pub].to_numpy(float), rtol=1e-9, atol=1e-12)
    assert (rebuilt["df"].to_numpy() == crit["df"].to_numpy()).all()

    summary = res.summary.set_index("agency")
    totals = table[table["indicator"] == "survey_points"].set_index("agency")
    assert sorted(totals.index) == sorted(summary.index[summary["survey_points"].notna()])
    pub = summary.loc[totals.index]
    assert (np.round(totals["est"].to_numpy() + 1e-12, 2) == pub["survey_points"].to_numpy()).all()
    for col in ("se", "ci_lo", "ci_hi"):
        np.testing.assert_allclose(totals[col].to_numpy(float), pub[f"survey_points_{col}"].to_numpy(float),
                                   rtol=1e-9, atol=1e-12)
    assert (totals["df"].to_numpy() == pub["survey_points_df"].to_numpy()).all()

    sat = table[table["indicator"] == "satisfaction"].set_index("agency")
    assert sorted(sat.index) == sorted(summary.index[summary["satisfaction"].notna()])
    pub = summary.loc[sat.index]
    for col in ("est", "se", "ci_lo", "ci_hi"):
        name = "satisfaction" if col == "est" else f"satisfaction_{col}"
        np.testing.assert_allclose(sat[col].to_numpy(float), pub[name].to_numpy(float), rtol=1e-9, atol=1e-12)
    assert (sat["df"].to_numpy() == pub["satisfaction_df"].to_numpy()).all()
    # the round has what makes the reproduction worth checking: corrected cells, uncorrected ones, agencies
    # whose every satisfaction answer is positive, criteria resting on fewer sheets than their agency
    assert (res.cells["fraction"] > 0).any() and (res.cells["fraction"] == 0).any()


def test_python_and_r_rebuild_every_published_number_from_the_export(published, tmp_path):
    res, path = published
    spec = importlib.util.spec_from_file_location("reproduce", SCRIPTS / "reproduce.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    _compare(res, script.reproduce(path))

    # the SPSS file of the responses holds the same sheets × agencies with the same design variables, labelled
    answers = pd.read_csv(path, keep_default_na=False, na_values=[""])
    sav, meta = pyreadstat.read_sav(exports.write_responses_sav(res, tmp_path / "responses.sav"))
    units = answers.drop_duplicates(["response_uid", "agency"]).set_index(["response_uid", "agency"])
    sav = sav.set_index(["response", "agency"])
    assert sorted(sav.index) == sorted(units.index)
    for col in ("stratum", "cell_agency", "agency_kind"):
        assert (sav[col].to_numpy() == units.loc[sav.index, col].fillna("").astype(str).to_numpy()).all()
    np.testing.assert_array_equal(sav["sampling_fraction"], units.loc[sav.index, "sampling_fraction"])
    assert meta.column_names_to_labels["E01"].startswith("[A1] E01.")
    assert set(meta.variable_value_labels["agency_kind"]) == {"department", "district", "vertical"}
    # what the figures leave out is left out of the export: no group under min_breakdown respondents
    sizes = units.reset_index().groupby(["agency", "group"])["response_id"].nunique()
    assert sizes.min() >= res.provenance["analysis_parameters"]["min_breakdown"]

    rscript = shutil.which("Rscript")
    has_survey = rscript and subprocess.run([rscript, "-e", "library(survey)"], capture_output=True).returncode == 0
    if not has_survey:
        reason = "Python part passed; R with the survey package is not installed (apt-get install r-base-core " \
                 "r-cran-survey)"
        if REQUIRE_R:
            pytest.fail(reason)
        pytest.skip(reason)
    # R from the one file the responses page downloads: without the companions
    for companion in ("items", "cells", "criteria"):
        path.with_name(f"answers.{companion}.csv").unlink()
    out = tmp_path / "r.csv"
    subprocess.run([rscript, str(SCRIPTS / "reproduce.R"), str(path), str(out)], check=True)
    _compare(res, pd.read_csv(out, keep_default_na=False, na_values=[""]))
