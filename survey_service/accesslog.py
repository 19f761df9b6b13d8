"""An access log that never writes an invitation code or a sheet token.

The invitation link ``/c/<CODE>`` and the keying link ``/p/<signed sheet id>`` carry a secret in their path;
a log line with it, its time and the client's address is exactly the join the anonymity promise forbids.
Gunicorn uses this class with ``--logger-class survey_service.accesslog.MaskingLogger`` (as
``scripts/demo.sh`` does): every atom that can hold the path, the query or the referrer is masked before
the line is formatted, whatever ``--access-logformat`` says, and the request's cookies and the response's
size are never written.
"""
from __future__ import annotations

import re

from gunicorn.glogging import Logger

MASK = "…"
#: /c/<anything> and /p/<anything>, however the path is spelled (case, repeated slashes, %2F).
_SECRET_SEGMENT = re.compile(r"(?i)((?:/|%2f)+[cp](?:/|%2f)+)[^/?#\s\"]+")
#: Anything shaped like an invitation code, wherever it appears (a code pasted into another address).
_CODE_LIKE = re.compile(r"(?i)(?<![0-9a-z])[0-9a-z]{4}(?:-|%2d)?[0-9a-z]{4}(?:-|%2d)?[0-9a-z]{4}(?![0-9a-z])")
_PATH_ATOMS = ("r", "U", "q", "f", "{referer}i")
#: Never written: cookies and credentials; and the response's size, which tells one form page from another
#: (an agency's name, an LĐ-CP respondent's departments), and so the respondent's quota cell.
_NEVER = ("{cookie}i", "{set-cookie}o", "{authorization}i", "b", "B", "{content-length}o")


def mask(text: str | None) -> str | None:
    """``text`` with the secret path segments and anything code-like replaced by a mask."""
    if not text:
        return text
    return _CODE_LIKE.sub(MASK, _SECRET_SEGMENT.sub(lambda m: m.group(1) + MASK, text))


class MaskingLogger(Logger):
    """Gunicorn's logger, with the path, query and referrer masked, and no cookies and no response sizes in
    the access log."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in _PATH_ATOMS:
            if name in atoms:
                atoms[name] = mask(atoms[name])
        for name in _NEVER:
            if name in atoms:
                atoms[name] = "-"
        return atoms
