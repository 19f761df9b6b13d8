"""Dates people type or import are written one way: YYYY-MM-DD, ten ASCII characters, a real day.

Python reads more than that: since 3.11 ``date.fromisoformat`` takes ``20261201`` and week dates
(``2026-W49-1``), and ``strptime`` takes ``2026-1-5``, digits of other scripts, and whatever a caller's
``strip()`` removed (spaces, no-break spaces). Every date read from an import, a form, a command-line option
or a round file goes through :func:`parse_iso_date`, so what the README promises is what is accepted.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def vietnam_today() -> date:
    """Today in Vietnam, whatever the machine's time zone: the day a round's window, a close and an import
    are judged by (a server on UTC is still on yesterday until 07:00 in Vietnam)."""
    return datetime.now(VIETNAM).date()


class DateError(ValueError):
    """Not a date written YYYY-MM-DD; the message says why, in Vietnamese (to follow the date quoted)."""


def parse_iso_date(text: str) -> date:
    """The day ``text`` names, written exactly YYYY-MM-DD. :raises DateError: for anything else."""
    if not isinstance(text, str) or not _ISO_DATE.fullmatch(text):
        raise DateError("không đúng dạng YYYY-MM-DD (ví dụ 2023-10-01, không có khoảng trắng hay ký tự nào "
                        "khác)")
    try:
        return date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError:
        raise DateError("không phải một ngày có thật") from None
