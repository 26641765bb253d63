"""The key service: one site secret derives, per patient, a pseudonym and a date shift.

Every modality asks the same ``KeyService`` for the same patient, so one patient's notes,
FHIR resources, DICOM studies and VCF samples stay linked after de-identification, across
runs and across partner sites that share the secret. Rotating the secret re-derives
everything. The secret lives in a file (``CARELENS_SECRET_FILE``) or in ``CARELENS_SECRET``;
never in the lake.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from carelens.core.errors import InputError, UsageError
from carelens.core.settings import load_settings

T = TypeVar("T")

MAX_SHIFT_DAYS = 365
MIN_SECRET_BYTES = 16


class KeyService:
    """Keyed derivations from one site secret (HMAC-SHA256 with a purpose label per use)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise InputError(f"site secret is too short: need at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    # construction -----------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Path) -> KeyService:
        """Read the secret from ``path`` (hex text as written by ``carelens deid keygen``, or raw)."""
        try:
            raw = Path(path).read_bytes().strip()
        except OSError as err:
            raise InputError(f"cannot read the site secret file {path}: {err.strerror or 'unreadable'}") from None
        return cls(_decode_secret(raw))

    @classmethod
    def from_env(cls) -> KeyService:
        """The site's key service from ``CARELENS_SECRET_FILE`` or ``CARELENS_SECRET``.

        Raises ``UsageError`` with the way to fix it when neither is set.
        """
        settings = load_settings()
        if settings.secret_file:
            return cls.from_file(settings.secret_file)
        if settings.secret:
            return cls(_decode_secret(settings.secret.get_secret_value().strip().encode()))
        raise UsageError(
            "no site secret: set CARELENS_SECRET_FILE to a file made by `carelens deid keygen FILE` "
            "(or CARELENS_SECRET to the secret itself)"
        )

    @classmethod
    def ephemeral(cls) -> KeyService:
        """A one-off random key: pseudonyms and shifts will not link to any other run."""
        return cls(secrets.token_bytes(32))

    # derivations ------------------------------------------------------------------------
    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` under this secret, separated by ``purpose``."""
        return hmac.new(self._secret, f"{purpose}\x1f{value}".encode(), hashlib.sha256).digest()

    def hash_hex(self, purpose: str, value: str, length: int = 32) -> str:
        """A keyed hash as hex (``cryptoHash`` in FHIR rules, hashed resource ids)."""
        return self.digest(purpose, value).hex()[:length]

    def pseudonym(self, patient_id: str) -> str:
        """The patient's research-zone id, e.g. ``P3f9c0a1b2d4e5f60``."""
        return "P" + self.hash_hex("pseudonym", patient_id, 16)

    def date_shift(self, patient_id: str) -> int:
        """The patient's date shift in days: in ``-365..-1``, never 0."""
        n = int.from_bytes(self.digest("date-shift", patient_id)[:8], "big")
        return -(1 + n % MAX_SHIFT_DAYS)

    def choose(self, purpose: str, value: str, options: Sequence[T]) -> T:
        """A deterministic pick from ``options`` keyed on ``value`` (surrogates)."""
        n = int.from_bytes(self.digest(purpose, value)[:8], "big")
        return options[n % len(options)]

    def number(self, purpose: str, value: str) -> int:
        """A deterministic non-negative 64-bit number keyed on ``value``."""
        return int.from_bytes(self.digest(purpose, value)[:8], "big")

    def uid(self, uid: str) -> str:
        """A consistent replacement DICOM UID under the ``2.25`` (UUID-derived) root."""
        return "2.25." + str(int.from_bytes(self.digest("dicom-uid", uid)[:16], "big"))

    @property
    def fingerprint(self) -> str:
        """A short public id of the secret (safe to record: it reveals nothing of the secret)."""
        return self.hash_hex("fingerprint", "carelens", 12)


def generate_secret() -> str:
    """A new random site secret as 64 hex characters."""
    return secrets.token_hex(32)


def write_secret(path: Path, overwrite: bool = False) -> Path:
    """Write a new site secret to ``path`` with owner-only permissions (0600)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists: rotating the secret re-derives every pseudonym (use --force)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_secret() + "\n")
    os.chmod(path, 0o600)
    return path


def _decode_secret(raw: bytes) -> bytes:
    text = raw.decode("ascii", errors="ignore")
    if text and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    return raw
