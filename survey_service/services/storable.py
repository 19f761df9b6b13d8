"""Text that no database column can hold.

PostgreSQL refuses NUL (U+0000) in text, and neither database driver can encode a lone surrogate (U+D800 to
U+DFFF, which a ``\\ud800`` escape makes). Services that store typed or imported text check it here first,
so such text is a Vietnamese message saying where it is, never a database error: that would be a 500, and
the failing statement's values (the answers) would be in its error.
"""
from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """What keeps ``text`` out of the database, in Vietnamese ("có ký tự rỗng (NUL, mã 0)"), or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "có ký tự rỗng (NUL, mã 0)"
    return f"có ký tự không hợp lệ (U+{ord(found.group()):04X})"
