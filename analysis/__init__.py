"""Pure statistics for the survey service: weighting, design-based estimation, scoring, ranking and the
published tables.

A leaf library: frames in, frames out; it imports nothing from the web, database or service layers.

The names below are loaded from their modules when first used, so that importing the package (as the
command line does for every command) does not load SciPy and statsmodels for a command that never scores.
"""
from __future__ import annotations

import importlib

#: Each public name and the module that defines it.
_MODULES = {
    **dict.fromkeys(["Design"], "design"),
    **dict.fromkeys(["ANSWER_COLUMNS", "item_values"], "encoding"),
    **dict.fromkeys(["domain_means", "mean_covariance"], "estimation"),
    **dict.fromkeys([
        "busy_day_sheets", "draw_share", "failure_rate", "identical_sheets", "outcome", "quarantined"
    ], "fieldcheck"),
    **dict.fromkeys(["rank_intervals"], "ranking"),
    **dict.fromkeys(["DEFAULT_MAX_HALF_WIDTH", "DEFAULT_PRECISION", "REASONS", "imprecise", "precision_reasons"],
                    "reliability"),
    **dict.fromkeys(["round_half_away"], "rounding"),
    **dict.fromkeys([
        "pps_systematic", "precision_sample_size", "recommend_sample_size", "recommend_sample_sizes",
        "response_rates", "systematic_sample"
    ], "sampling"),
    **dict.fromkeys([
        "FLAG_LOW_RELIABILITY", "FLAG_MISSING_GROUP", "FLAG_NO_DATA", "FLAG_WITHHELD", "ScoreResult",
        "combine_groups", "criterion_points", "group_means", "respondent_scores", "score_round"
    ], "scoring"),
    **dict.fromkeys([
        "DEFAULT_LONELY_PSU", "DEFAULT_MIN_GROUP", "DEFAULT_MIN_RESPONDENTS", "LONELY_PSU_RULES",
        "OPTIONAL_SETTINGS_KEYS", "PRESETS", "SETTINGS_KEYS", "coefficient_preset", "group_shares",
        "validate_settings"
    ], "settings"),
    **dict.fromkeys([
        "agency_ranks", "answer_weights", "criteria_table", "item_distributions", "option_table",
        "pair_codes", "response_weight_diagnostics", "summary_table"
    ], "tables"),
    **dict.fromkeys(["answered_enough", "scored_answers"], "validity"),
    **dict.fromkeys([
        "calibrate", "model_matrix", "poststratify", "rake", "trim", "weight_diagnostics"
    ], "weighting"),
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
