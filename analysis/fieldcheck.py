"""Checking fieldwork afterwards (phúc tra): which returned sheets to re-contact, what a re-contact found,
and when an investigator's sheets are to be left out.

Works on the sheet ledger only (who returned which sheet, on which day, what was keyed from it), never on
responses. All of it is our proposal: the share re-contacted and the method of phúc tra are not published.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable

import numpy as np

__all__ = ["CONFIRMED", "FAILED", "NOT_REACHED", "busy_day_sheets", "draw_share", "failure_rate",
           "identical_sheets", "outcome", "quarantined"]

CONFIRMED, NOT_REACHED, FAILED = "confirmed", "not_reached", "failed"


def draw_share(sheets: Iterable[tuple[Hashable, Hashable, Hashable]], share: float,
               rng: np.random.Generator) -> list[Hashable]:
    """A random ``share`` of each investigator's sheets, stratified by commune.

    ``sheets`` are ``(sheet, investigator, commune)``. Each investigator gets ``ceil(share × their
    sheets)`` draws (at least one), shared out over their communes in proportion to their sheets there
    (largest remainders, ties broken at random), then drawn at random within each commune. Returns the
    drawn sheets.

    Examples
    --------
    >>> rows = [(i, "a", "x" if i < 30 else "y") for i in range(40)] + [(100, "b", "x")]
    >>> drawn = draw_share(rows, 0.1, np.random.default_rng(0))
    >>> len(drawn), sum(1 for s in drawn if s < 30), 100 in drawn
    (5, 3, True)
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    cells: dict[Hashable, dict[Hashable, list]] = defaultdict(lambda: defaultdict(list))
    for sheet, investigator, commune in sheets:
        cells[investigator][commune].append(sheet)
    drawn: list[Hashable] = []
    for investigator in sorted(cells, key=str):
        communes = cells[investigator]
        total = sum(len(v) for v in communes.values())
        wanted = max(1, math.ceil(share * total - 1e-9))
        keys = sorted(communes, key=str)
        quotas = {k: wanted * len(communes[k]) / total for k in keys}
        counts = {k: math.floor(q) for k, q in quotas.items()}
        order = sorted(keys, key=lambda k: (-(quotas[k] - counts[k]), rng.random()))
        for k in order[:wanted - sum(counts.values())]:
            counts[k] += 1
        for k in keys:
            members = sorted(communes[k], key=str)
            picked = rng.choice(len(members), size=min(counts[k], len(members)), replace=False)
            drawn += [members[i] for i in sorted(picked)]
    return drawn


def identical_sheets(patterns: Iterable[tuple[Hashable, Hashable, Hashable]]) -> set[Hashable]:
    """Sheets whose answer pattern is exactly that of another sheet of the same investigator.

    ``patterns`` are ``(sheet, investigator, pattern)``, the pattern any hashable mark of the answers (None:
    not compared, e.g. a nearly blank sheet).

    Examples
    --------
    >>> sorted(identical_sheets([(1, "x", "p"), (2, "x", "p"), (3, "y", "p"), (4, "x", None), (5, "x", None)]))
    [1, 2]
    """
    groups: dict[tuple, list] = defaultdict(list)
    for sheet, investigator, pattern in patterns:
        if pattern is not None:
            groups[(investigator, pattern)].append(sheet)
    return {sheet for members in groups.values() if len(members) > 1 for sheet in members}


def busy_day_sheets(returns: Iterable[tuple[Hashable, Hashable, Hashable]], limit: int) -> set[Hashable]:
    """Sheets returned by an investigator on a day they returned more than ``limit`` sheets.

    ``returns`` are ``(sheet, investigator, day)``.

    Examples
    --------
    >>> sorted(busy_day_sheets([(1, "x", "d1"), (2, "x", "d1"), (3, "x", "d2"), (4, "y", "d1")], 1))
    [1, 2]
    """
    days: dict[tuple, list] = defaultdict(list)
    for sheet, investigator, day in returns:
        days[(investigator, day)].append(sheet)
    return {sheet for members in days.values() if len(members) > limit for sheet in members}


def outcome(*, reached: bool, received: bool | None = None, self_filled: bool | None = None,
            prompted: bool | None = None, paid: bool | None = None) -> str:
    """What a re-contact found: ``not_reached``; ``failed`` when the person did not receive the sheet, did
    not fill it in themselves, was prompted what to answer, or was not paid the fee the list says they
    were; ``confirmed`` otherwise. A question left unanswered (None) counts as neither.

    Examples
    --------
    >>> outcome(reached=False)
    'not_reached'
    >>> outcome(reached=True, received=True, self_filled=True, prompted=False, paid=True)
    'confirmed'
    >>> outcome(reached=True, received=True, self_filled=False)
    'failed'
    """
    if not reached:
        return NOT_REACHED
    if received is False or self_filled is False or prompted is True or paid is False:
        return FAILED
    return CONFIRMED


def failure_rate(outcomes: Iterable[str]) -> tuple[int, int, float | None]:
    """``(failures, re-contacts that reached someone, failures / reached)``; the rate is None when nobody
    was reached.

    Examples
    --------
    >>> failure_rate(["failed", "confirmed", "not_reached", "confirmed"])
    (1, 3, 0.3333333333333333)
    """
    values = list(outcomes)
    failures = values.count(FAILED)
    reached = failures + values.count(CONFIRMED)
    return failures, reached, (failures / reached if reached else None)


def quarantined(outcomes: Iterable[str], *, threshold: float, min_failures: int) -> bool:
    """An investigator's sheets are left out when their failure rate is above ``threshold`` and they have
    at least ``min_failures`` failures (one failure among two calls is not yet a pattern).

    Examples
    --------
    >>> quarantined(["failed", "failed", "confirmed"], threshold=0.2, min_failures=2)
    True
    >>> quarantined(["failed", "confirmed"], threshold=0.2, min_failures=2)
    False
    """
    failures, _, rate = failure_rate(outcomes)
    return rate is not None and rate > threshold and failures >= min_failures
