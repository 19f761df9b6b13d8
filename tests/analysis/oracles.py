"""The reference implementations the analysis tests compare with (pinned in the ``test`` extra).

Where they are missing the oracle tests skip with the reason, except in CI (``CI=true``), where a
missing oracle is an error: a green CI must mean the comparisons ran.
"""
import importlib
import os
import warnings

import pytest


def oracle(name: str):
    """Import the oracle module *name*, or skip the calling test module (fail in CI)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # samplics warns on import that it is archived
        if os.environ.get("CI") == "true":
            return importlib.import_module(name)
        return pytest.importorskip(name,
                                   reason=f"{name} (test oracle) is not installed: pip install -e '.[test]'")


def printed(value, expected, digits, slack=0.0):
    """*value* rounds to R's printed *expected* (given with *digits* decimals), up to a relative *slack*."""
    assert abs(value - expected) <= 0.5 * 10.0**-digits + slack * abs(expected), (value, expected)
