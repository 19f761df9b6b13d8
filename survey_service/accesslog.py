"""An access log that never writes an invitation code or a sheet token.

The invitation link ``/c/<CODE>`` and the keying link ``/p/<signed sheet id>`` carry a secret in their path;
a log line with it, its time and the client's address is exactly the join the anonymity promise forbids.
Gunicorn uses this class with ``--logger-class survey_service.accesslog.MaskingLogger`` (as
``scripts/demo.sh`` does): every atom that can hold the path, the query or the referrer is masked before
the line is formatted, whatever ``--access-logformat`` says, and the request's cookies and the response's
size are never written.

A code is masked in every spelling the portal accepts, wherever it stands in a URL: any case, its three
groups joined or split by spaces, dashes, dots, underscores (the portal drops them all), and those written
the way a URL carries them (``+`` or ``%20`` for a space, ``%2D``, ``%252D`` escaped twice, or the bytes of a
decoded path), and typed in fullwidth characters (``ＫＷ７Ｑ``, which the portal reads after NFKC).
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from gunicorn.glogging import Logger

from survey_service.services.invitations import ALPHABET, CODE_LENGTH

MASK = "…"
#: /c/<anything> and /p/<anything>, however the path is spelled (case, repeated slashes, %2F).
_SECRET_SEGMENT = re.compile(r"(?i)((?:/|%2f)+[cp](?:/|%2f)+)[^/?#\s\"]+")
#: What may stand between a code's characters when it is typed (see ``invitations.normalise_code``).
_SEPARATORS = " \t\n\r\v\f\xa0-_.+\u00b7\u2013\u2014\u3000\uff0d\uff3f\uff0e\uff0b"
#: Fullwidth digits and letters, which NFKC turns into a code's characters.
_FULLWIDTH = "".join(map(chr, [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]))


def _spellings(ch: str) -> list[str]:
    """``ch`` as a logged URL can show it: itself, its UTF-8 bytes read as Latin-1 (a decoded path), or
    %-escaped, once or twice."""
    utf8 = ch.encode()
    return [re.escape(ch), re.escape(utf8.decode("latin-1")), "".join(f"%(?:25)?{b:02x}" for b in utf8)]


_SEPARATOR = "|".join(dict.fromkeys(s for ch in _SEPARATORS for s in _spellings(ch)))
_FULLWIDTH_CHARACTER = "|".join(s for ch in _FULLWIDTH for s in _spellings(ch))
#: A line cut into separators, characters of a word (a letter or digit, in any spelling) and anything else.
_TOKEN = re.compile(f"(?P<sep>{_SEPARATOR})|(?P<char>{_FULLWIDTH_CHARACTER}|[0-9a-z])|.",
                    re.IGNORECASE | re.DOTALL)
_CODE_LETTERS = set(ALPHABET)
#: Anything shaped like an invitation code, letters outside the codes' alphabet included.
_CODE_LIKE = re.compile(r"(?i)(?<![0-9a-z])[0-9a-z]{4}(?:-|%2d)?[0-9a-z]{4}(?:-|%2d)?[0-9a-z]{4}(?![0-9a-z])")
_PATH_ATOMS = ("U", "q", "f", "{referer}i", "{raw_uri}e", "{path_info}e", "{query_string}e", "{request_uri}e",
               "{http_referer}e", "{script_name}e")
#: Never written: cookies and credentials; and the response's size, which tells one form page from another
#: (an agency's name, an LĐ-CP respondent's departments), and so the respondent's quota cell.
_NEVER = ("{cookie}i", "{set-cookie}o", "{authorization}i", "{http_cookie}e", "{http_authorization}e",
          "b", "B", "{content-length}o")


def mask(text: str | None) -> str | None:
    """``text`` with the secret path segments and anything shaped like a code replaced by a mask."""
    if not text:
        return text
    return _CODE_LIKE.sub(MASK, _mask_codes(_SECRET_SEGMENT.sub(lambda m: m.group(1) + MASK, text)))


def _character(spelling: str) -> str:
    """The character a logged spelling stands for, as the portal reads it (unescaped, NFKC, upper case)."""
    text = unquote(unquote(spelling))
    try:
        text = text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return unicodedata.normalize("NFKC", text).upper()


def _mask_codes(text: str) -> str:
    """Masks consecutive words (runs of letters and digits with only separators between them) of the codes'
    alphabet that make 12 characters: a code however it was typed and escaped."""
    spans, words = [], []  # words: [start, end, characters] of the current run of words and separators
    word = None
    for token in _TOKEN.finditer(text):
        if token.lastgroup == "char":
            if word is None:
                word = [token.start(), token.end(), ""]
                words.append(word)
            word[1], word[2] = token.end(), word[2] + _character(token.group())
            continue
        word = None
        if token.lastgroup != "sep":
            spans += _code_spans(words)
            words = []
    spans += _code_spans(words)
    for start, end in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text


def _code_spans(words: list[list]) -> list[tuple[int, int]]:
    spans, first = [], 0
    while first < len(words):
        length, last = 0, first
        while last < len(words) and length < CODE_LENGTH:
            length += len(words[last][2])
            last += 1
        if length == CODE_LENGTH and all(_CODE_LETTERS.issuperset(chars) for _, _, chars in words[first:last]):
            spans.append((words[first][0], words[last - 1][1]))
            first = last
        else:
            first += 1
    return spans


def _mask_request_line(line: str) -> str:
    """``METHOD URI PROTOCOL`` with the URI masked (the spaces around it are not part of a code)."""
    method, _, rest = line.partition(" ")
    uri, space, protocol = rest.rpartition(" ")
    return f"{method} {mask(uri)}{space}{protocol}" if space else f"{method} {mask(rest)}"


class MaskingLogger(Logger):
    """Gunicorn's logger, with the path, query and referrer masked, and no cookies and no response sizes in
    the access log."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        if atoms.get("r"):
            atoms["r"] = _mask_request_line(atoms["r"])
        for name in _PATH_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = mask(atoms[name])
        for name in _NEVER:
            if name in atoms:
                atoms[name] = "-"
        return atoms
