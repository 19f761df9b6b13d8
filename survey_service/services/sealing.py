"""Authenticated encryption of small values the server must read back but nobody else should.

Three uses: a submitted questionnaire waiting in the ballot box, sealed with a key derived from the server's
secret and the round (:mod:`survey_service.services.ballots`), a respondent's draft, sealed with a key derived from the server's secret and the invitation code
(a draft left behind in the database's free pages or write-ahead log is unreadable without both), and the
respondent's session cookie, which carries the code sealed so that it cannot be read off a shared computer.
AES-256-GCM with a fresh 96-bit nonce per value; keys come from HKDF-SHA256 with a distinct ``purpose``.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class Sealer:
    """Seals and opens JSON values under one key: ``Sealer(secret, "draft", code)``."""

    def __init__(self, secret: str | bytes, purpose: str, context: str = ""):
        secret = secret.encode() if isinstance(secret, str) else secret
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=f"survey-service/{purpose}/{context}".encode()).derive(secret)
        self._aead = AESGCM(key)

    def seal(self, value, *, min_size: int = 0) -> str:
        """``value`` as JSON, sealed; with ``min_size``, padded first to the smallest power of two that is at
        least that and the value's length, so that values below ``min_size`` all seal to one length."""
        nonce = os.urandom(NONCE_BYTES)
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        if min_size:
            data += b" " * ((1 << (max(len(data), min_size) - 1).bit_length()) - len(data))
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, data, None)).decode("ascii")

    def open(self, token: str | None):
        """The value sealed in ``token``, or None if it is missing, altered or sealed under another key."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
            return json.loads(self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None))
        except (InvalidTag, ValueError, UnicodeError, binascii.Error):
            return None


@functools.lru_cache(maxsize=32)
def shared_sealer(secret: str, purpose: str, context: str = "") -> Sealer:
    """The :class:`Sealer` of a key that serves many requests (the session cookie, a round's ballots),
    derived once per process instead of on every use. Not for per-code keys, which are not kept."""
    return Sealer(secret, purpose, context)
