"""An HĐ-CT agency's "not rated" bubble read together with the rest of its block.

A delegate who does not rate an agency fills its "không đánh giá cơ quan này" bubble and leaves its questions
empty: the block is then blank, exactly as if nothing were marked. The bubble never decides an answer by
itself; when it is not clearly empty and something else in its block is marked, the delegate said two
things, so every marked question of that block goes to the clerk.
"""
from __future__ import annotations

from survey_service.omr import layout as L
from survey_service.omr.reader import REVIEW, ItemReading

REASON = "cơ quan có ô “" + L.SKIP_TEXT + "” được tô nhưng vẫn có câu được tô"


def settle(items: dict[str, ItemReading]) -> dict[str, ItemReading]:
    """``items`` (item key → reading, as :func:`reader.read_marks` returns them) with the answers of
    blocks whose "not rated" bubble contradicts them sent to the clerk; the bubbles themselves stay."""
    settled = dict(items)
    suffix = ":" + L.SKIP
    for key, skip in items.items():
        if not key.endswith(suffix) or skip.value is None:
            continue
        row = key[:-len(suffix)]
        for code, reading in items.items():
            if code != key and code.rsplit(":", 1)[0] == row and reading.value is not None:
                settled[code] = ItemReading(REVIEW, reading.scores, -abs(skip.margin), REASON)
    return settled


def answers(items: dict) -> list[str]:
    """The keys of ``items`` that are answers (every key but the "not rated" bubbles')."""
    return [key for key in items if not key.endswith(":" + L.SKIP)]
