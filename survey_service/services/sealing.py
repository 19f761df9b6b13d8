"""Authenticated encryption of small values the server must read back but nobody else should.

Three uses: a submitted questionnaire waiting in the ballot box, sealed with a key derived from the server's
secret and the round (:mod:`survey_service.services.ballots`), a respondent's draft, sealed with a key derived
from the server's secret and the invitation code (a draft left behind in the database's free pages or
write-ahead log is unreadable without both), and the respondent's session cookie, which carries the code
sealed so that it cannot be read off a shared computer.
AES-256-GCM with a fresh 96-bit nonce per value; keys come from HKDF-SHA256 with a distinct ``purpose``.

Two more: a round may seal its ballots to its owner's public key instead (:class:`OwnerBox`, X25519 and
AES-256-GCM), so that the server, which holds only the public half, cannot open them until the owner hands
over the private half (:class:`OwnerKey`); and :func:`code_mark` names an invitation code wherever its use is
recorded, so that what the database keeps of a code's use cannot be told from the list of codes without the
server's secret.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from survey_service.services.errors import ServiceError

NONCE_BYTES = 12


def _derive(secret: bytes, purpose: str, context: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"survey-service/{purpose}/{context}".encode()).derive(secret)


@functools.lru_cache(maxsize=32)
def derive_key(secret: str, purpose: str, context: str = "") -> bytes:
    """A 256-bit key for ``purpose`` (and ``context``, e.g. a round) derived from the server's secret."""
    return _derive(secret.encode(), purpose, context)


def _padded(value, min_size: int) -> bytes:
    """``value`` as JSON; with ``min_size``, padded to the smallest power of two that is at least that and the
    value's length, so that values below ``min_size`` all seal to one length."""
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    if min_size:
        data += b" " * ((1 << (max(len(data), min_size) - 1).bit_length()) - len(data))
    return data


def _unsealed(aead: AESGCM, raw: bytes):
    try:
        return json.loads(aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None))
    except (InvalidTag, ValueError, UnicodeError):
        return None


def _decoded(token: str | None) -> bytes | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode("ascii"))
    except (ValueError, UnicodeError, binascii.Error):
        return None


class Sealer:
    """Seals and opens JSON values under one key: ``Sealer(secret, "draft", code)``."""

    def __init__(self, secret: str | bytes, purpose: str, context: str = ""):
        secret = secret.encode() if isinstance(secret, str) else secret
        self._aead = AESGCM(_derive(secret, purpose, context))

    def seal(self, value, *, min_size: int = 0) -> str:
        """``value`` as JSON, sealed (padded as :func:`_padded` says)."""
        nonce = os.urandom(NONCE_BYTES)
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, _padded(value, min_size), None)
                                        ).decode("ascii")

    def open(self, token: str | None):
        """The value sealed in ``token``, or None if it is missing, altered or sealed under another key."""
        raw = _decoded(token)
        return None if raw is None else _unsealed(self._aead, raw)

    def seal_bytes(self, data: bytes) -> str:
        """Raw bytes (an image), sealed as :meth:`seal` seals JSON."""
        nonce = os.urandom(NONCE_BYTES)
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, data, None)).decode("ascii")

    def open_bytes(self, token: str | None) -> bytes | None:
        raw = _decoded(token)
        if raw is None:
            return None
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
        except InvalidTag:
            return None


@functools.lru_cache(maxsize=32)
def shared_sealer(secret: str, purpose: str, context: str = "") -> Sealer:
    """The :class:`Sealer` of a key that serves many requests (the session cookie, a round's ballots),
    derived once per process instead of on every use. Not for per-code keys, which are not kept."""
    return Sealer(secret, purpose, context)


class KeyFileError(ServiceError):
    """An owner's key file that cannot be read: not a key, or the wrong passphrase."""


class OwnerBox:
    """Seals to a round owner's X25519 public key: a fresh key pair per value, whose public half travels with
    it; only the owner's private half (:class:`OwnerKey`) opens it. ``context`` (the round code) binds a
    value to its round."""

    def __init__(self, public_key: str, context: str):
        self._public = X25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        self._context = context

    def seal(self, value, *, min_size: int = 0) -> str:
        ephemeral = X25519PrivateKey.generate()
        raw_public = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        aead = AESGCM(_derive(ephemeral.exchange(self._public) + raw_public, "ballot-owner", self._context))
        nonce = os.urandom(NONCE_BYTES)
        return base64.urlsafe_b64encode(raw_public + nonce + aead.encrypt(nonce, _padded(value, min_size), None)
                                        ).decode("ascii")


class OwnerKey:
    """The private half of a round owner's key, given at release; opens what :class:`OwnerBox` sealed."""

    def __init__(self, private_key: X25519PrivateKey, context: str):
        self._private, self._context = private_key, context

    @classmethod
    def generate(cls, context: str) -> OwnerKey:
        return cls(X25519PrivateKey.generate(), context)

    @classmethod
    def from_file(cls, data: bytes, passphrase: str, context: str) -> OwnerKey:
        """Read a key file written by :meth:`to_file`.

        :raises KeyFileError: when the file is not such a key or the passphrase is wrong.
        """
        try:
            key = serialization.load_pem_private_key(data, password=passphrase.encode())
        except (ValueError, TypeError) as exc:
            raise KeyFileError("Tệp khóa không đọc được: không phải khóa của đợt hoặc sai mật khẩu.") from exc
        if not isinstance(key, X25519PrivateKey):
            raise KeyFileError("Tệp khóa không phải khóa niêm phong phiếu (X25519).")
        return cls(key, context)

    def to_file(self, passphrase: str) -> bytes:
        """The private half as PEM, encrypted under ``passphrase`` (PKCS#8, the library's best available)."""
        return self._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(passphrase.encode()))

    @property
    def public_key(self) -> str:
        """The public half, base64, as a round stores it."""
        return base64.b64encode(self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode("ascii")

    def open(self, token: str | None):
        """The value sealed in ``token``, or None if it is missing, altered or sealed to another key."""
        raw = _decoded(token)
        if raw is None or len(raw) < 32 + NONCE_BYTES:
            return None
        peer = X25519PublicKey.from_public_bytes(raw[:32])
        aead = AESGCM(_derive(self._private.exchange(peer) + raw[:32], "ballot-owner", self._context))
        return _unsealed(aead, raw[32:])


@functools.lru_cache(maxsize=4)
def _mark_key(secret: str) -> bytes:
    return _derive(secret.encode(), "code-mark", "")


def code_mark(secret: str, code: str) -> str:
    """The keyed name (HMAC-SHA256, 128 bits, hex) under which a code's spending and its draft are stored.

    Why: a row written when a code is used is written in the order codes are used (PostgreSQL's ``xmin``
    and ``ctid``, a file's byte order, the write-ahead log). Named by this mark rather than by the code or
    its row, such rows order marks that nobody holding the database, but not the secret, can match to codes.
    """
    return hmac.new(_mark_key(secret), code.encode(), hashlib.sha256).hexdigest()[:32]
