"""Vietnamese conventions: collation without ICU, and the one way numbers are written.

Collation: Python's ``sorted`` puts Đ, Ă, Ơ, Ư and toned vowels after Z. The key compares base letters first
in the Vietnamese alphabet (a ă â b c d đ e ê … o ô ơ … u ư …), then tones in the order ngang, huyền, hỏi,
ngã, sắc, nặng, then the original text (for a stable, total order).

Numbers: a comma before the decimals and a dot between thousands (``1.234,5``), a percentage with a
no-break space before the sign (``83,0 %``), and a dash for a missing value. Pages use :func:`number` and
:func:`percent` (the Jinja filters ``vi_num``, ``vi_int``, ``vi_pct``); workbooks store full-precision values
with :func:`xlsx_format`, which Excel shows with the reader's separators.

Dates and times: ``07/12/2026`` and ``07/12/2026 09:00`` in Vietnam time (stored times are UTC), through
:func:`short_date` and :func:`date_time` (the filters ``vi_date`` and ``local_time``) on every page.
"""
from __future__ import annotations

import math
import unicodedata
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from survey_service.dates import VIETNAM

ALPHABET = "a ă â b c d đ e ê f g h i j k l m n o ô ơ p q r s t u ư v w x y z".split()
_RANK = {letter: i for i, letter in enumerate(ALPHABET)}
#: Combining tone marks: huyền, hỏi, ngã, sắc, nặng (ngang, no mark, is 0).
_TONES = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}


def sort_key(text: str) -> tuple:
    """Key for ``sorted(names, key=sort_key)`` in Vietnamese dictionary order."""
    letters, tones = [], []
    for ch in unicodedata.normalize("NFC", text).lower():
        tone, base = 0, ""
        for part in unicodedata.normalize("NFD", ch):
            if part in _TONES:
                tone = _TONES[part]
            else:
                base += part
        base = unicodedata.normalize("NFC", base)
        if not base:  # a lone combining tone mark: it belongs to the previous letter
            if tones:
                tones[-1] = tones[-1] or tone
            continue
        if base in _RANK:
            letters.append((1, _RANK[base]))
        elif base.isspace():
            letters.append((0, 0))  # "An Hòa" before "Anh"
        else:
            letters.append((2, ord(base[0])))
        tones.append(tone)
    return letters, tones, text


# --- numbers -------------------------------------------------------------------------------------------
MISSING = "—"
PERCENT_SIGN = "\u00a0%"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value, digits: int = 0) -> str:
    """12345.678 → "12.345,68" (``digits=2``); None or NaN → "—"."""
    if _missing(value):
        return MISSING
    text = f"{float(value):,.{digits}f}" if digits else f"{round(float(value)):,}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def percent(value, digits: int = 1) -> str:
    """A value in percentage points: 16.24 → "16,2 %"; None or NaN → "—"."""
    return MISSING if _missing(value) else number(value, digits) + PERCENT_SIGN


def short_date(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else MISSING


DATE_TIME_FORMAT = "%d/%m/%Y %H:%M"


def date_time(at: datetime | None, zone: ZoneInfo = VIETNAM, *, seconds: bool = False) -> str:
    """A stored time as "07/12/2026 09:00" in ``zone``; a time without a zone is UTC (as SQLite gives
    stored times back). ``seconds`` for a live page's "updated at", which must change between updates."""
    if at is None:
        return MISSING
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(zone).strftime(DATE_TIME_FORMAT + (":%S" if seconds else ""))


def xlsx_format(digits: int) -> str:
    """The Excel number format showing ``digits`` decimals with thousands grouped."""
    return "#,##0" + ("." + "0" * digits if digits else "")


def register_filters(app) -> None:
    """The Jinja filters every page writes numbers and dates with."""
    app.add_template_filter(number, "vi_num")
    app.add_template_filter(lambda value: "" if value is None else number(value), "vi_int")
    app.add_template_filter(percent, "vi_pct")
    app.add_template_filter(short_date, "vi_date")
    app.add_template_filter(lambda at: date_time(at, display_zone(app.config)), "local_time")


def display_zone(config) -> ZoneInfo:
    """The time zone of the times shown to staff (the ``DISPLAY_TIMEZONE`` setting, Vietnam by default)."""
    return ZoneInfo(config.get("DISPLAY_TIMEZONE") or VIETNAM.key)
