"""Pure statistics for the survey service: weighting, design-based estimation, scoring, ranking and the
published tables.

A leaf library: frames in, frames out; it imports nothing from the web, database or service layers.
"""
from analysis.design import Design
from analysis.encoding import ANSWER_COLUMNS, item_values
from analysis.estimation import domain_means, mean_covariance
from analysis.ranking import rank_intervals
from analysis.reliability import DEFAULT_MAX_HALF_WIDTH, DEFAULT_PRECISION, REASONS, imprecise, precision_reasons
from analysis.rounding import round_half_away
from analysis.sampling import recommend_sample_size, recommend_sample_sizes, response_rates
from analysis.scoring import (
    FLAG_LOW_RELIABILITY,
    FLAG_MISSING_GROUP,
    FLAG_NO_DATA,
    FLAG_WITHHELD,
    ScoreResult,
    combine_groups,
    criterion_points,
    group_means,
    respondent_scores,
    score_round,
)
from analysis.settings import (
    DEFAULT_LONELY_PSU,
    DEFAULT_MIN_GROUP,
    DEFAULT_MIN_RESPONDENTS,
    LONELY_PSU_RULES,
    OPTIONAL_SETTINGS_KEYS,
    PRESETS,
    SETTINGS_KEYS,
    coefficient_preset,
    group_shares,
    validate_settings,
)
from analysis.tables import (
    agency_ranks,
    answer_weights,
    criteria_table,
    item_distributions,
    option_table,
    pair_codes,
    response_weight_diagnostics,
    summary_table,
)
from analysis.validity import answered_enough, scored_answers
from analysis.weighting import poststratify, rake, trim, weight_diagnostics

__all__ = [
    "ANSWER_COLUMNS",
    "DEFAULT_LONELY_PSU",
    "DEFAULT_MAX_HALF_WIDTH",
    "DEFAULT_PRECISION",
    "DEFAULT_MIN_GROUP",
    "DEFAULT_MIN_RESPONDENTS",
    "Design",
    "FLAG_LOW_RELIABILITY",
    "FLAG_MISSING_GROUP",
    "FLAG_NO_DATA",
    "FLAG_WITHHELD",
    "LONELY_PSU_RULES",
    "OPTIONAL_SETTINGS_KEYS",
    "PRESETS",
    "REASONS",
    "SETTINGS_KEYS",
    "ScoreResult",
    "agency_ranks",
    "answered_enough",
    "answer_weights",
    "coefficient_preset",
    "combine_groups",
    "criteria_table",
    "criterion_points",
    "domain_means",
    "group_means",
    "group_shares",
    "imprecise",
    "item_distributions",
    "item_values",
    "mean_covariance",
    "option_table",
    "pair_codes",
    "poststratify",
    "precision_reasons",
    "rake",
    "rank_intervals",
    "recommend_sample_size",
    "recommend_sample_sizes",
    "respondent_scores",
    "response_rates",
    "round_half_away",
    "score_round",
    "scored_answers",
    "response_weight_diagnostics",
    "summary_table",
    "trim",
    "validate_settings",
    "weight_diagnostics",
]
