"""Clinical notes: decode DocumentReference attachments and read plain-text note files.

A DocumentReference note is its first ``text/*`` attachment with inline base64 ``data``
(``text/plain`` preferred), decoded with the ``charset`` of its ``contentType`` (UTF-8 when
none is given). A plain ``.txt`` file is a note whose patient is unknown unless a sidecar
``NAME.meta.json`` next to ``NAME.txt`` gives ``{"patient_id": ..., "date": ..., "type": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from carelens.core.errors import InputError
from carelens.core.fhir import patient_of
from carelens.core.ids import content_hash


class Note(BaseModel):
    """One clinical note's text and where it belongs.

    ``note_id`` is the DocumentReference id (``txt-<hash>`` for a plain-text file).
    """

    note_id: str
    patient_id: str | None = None
    date: str | None = None
    type: str | None = None
    text: str
    content_type: str = "text/plain"
    content_hash: str


def decode_note(doc_ref: dict[str, Any]) -> Note:
    """The note a DocumentReference carries; raises ``InputError`` (one-line reason, no
    content quoted) when it has no decodable text attachment."""
    if doc_ref.get("resourceType") != "DocumentReference":
        raise InputError("not a DocumentReference")
    attachment = _text_attachment(doc_ref)
    content_type = str(attachment.get("contentType") or "text/plain")
    raw = _decode_base64(attachment["data"])
    text = _decode_text(raw, _charset(content_type))
    return Note(
        note_id=str(doc_ref.get("id") or ""),
        patient_id=patient_of(doc_ref, urn_is_patient=False),
        date=doc_ref.get("date") or _context_date(doc_ref),
        type=_type_label(doc_ref),
        text=text,
        content_type=content_type,
        content_hash=content_hash(text),
    )


def read_text_note(path: Path, data: bytes | None = None) -> Note:
    """A plain-text note file (``decode_note_file``), with metadata from its ``NAME.meta.json`` sidecar."""
    text = decode_note_file(path.read_bytes() if data is None else data)
    meta: dict[str, Any] = {}
    sidecar = path.with_name(path.name[: -len(path.suffix)] + ".meta.json")
    if sidecar.exists():
        try:
            meta = orjson.loads(sidecar.read_bytes())
        except orjson.JSONDecodeError as err:
            raise InputError(f"sidecar {sidecar.name} is not valid JSON (line {err.lineno})") from None
        if not isinstance(meta, dict):
            raise InputError(f"sidecar {sidecar.name} is not a JSON object")
    digest = content_hash(text)
    return Note(
        note_id=str(meta.get("note_id") or f"txt-{digest[:16]}"),
        patient_id=meta.get("patient_id"),
        date=meta.get("date"),
        type=meta.get("type"),
        text=text,
        content_hash=digest,
    )


# byte order marks and their encodings (UTF-32's before UTF-16's: the little-endian UTF-32 mark starts with UTF-16's)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))  # fmt: skip


def decode_note_file(data: bytes) -> str:
    """The text of a note file: UTF-8, or the encoding its byte order mark names (Windows saves "Unicode" text
    as UTF-16 with one), the mark left out; ``InputError`` with a reason that quotes nothing otherwise."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode_text(data[len(bom) :], encoding)
    if b"\x00" in data[:8192]:
        raise InputError("binary content (NUL bytes), not a text note")
    return _decode_text(data, "utf-8")


def _text_attachment(doc_ref: dict[str, Any]) -> dict[str, Any]:
    attachments = [
        c["attachment"]
        for c in doc_ref.get("content") or []
        if isinstance(c, dict) and isinstance(c.get("attachment"), dict)
    ]
    if not attachments:
        raise InputError("DocumentReference has no attachment")
    texts = [a for a in attachments if str(a.get("contentType") or "text/plain").lower().startswith("text/")]
    if not texts:
        kinds = sorted({_media_type(str(a.get("contentType"))) for a in attachments})
        raise InputError(f"attachment is not text (content type {', '.join(kinds)})")
    texts.sort(key=lambda a: not str(a.get("contentType") or "text/plain").lower().startswith("text/plain"))
    for attachment in texts:
        if isinstance(attachment.get("data"), str):
            return attachment
    if any(a.get("url") for a in texts):
        raise InputError("attachment is referenced by URL, not inline data (not fetched)")
    raise InputError("text attachment has no data")


def _media_type(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media
        if len(media) < 80 and media.replace("/", "").replace("-", "").replace(".", "").replace("+", "").isalnum()
        else "unknown"
    )


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _decode_base64(data: str) -> bytes:
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("attachment data is not valid base64") from None


def _decode_text(raw: bytes, charset: str) -> str:
    try:
        codecs.lookup(charset)
    except LookupError:
        raise InputError("attachment charset is unknown") from None
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as err:
        raise InputError(f"text is not valid {codecs.lookup(charset).name} (byte {err.start})") from None


def _context_date(doc_ref: dict[str, Any]) -> str | None:
    period = (doc_ref.get("context") or {}).get("period") or {}
    start = period.get("start")
    return start if isinstance(start, str) else None


def _type_label(doc_ref: dict[str, Any]) -> str | None:
    kind = doc_ref.get("type") or {}
    for coding in kind.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    text = kind.get("text")
    return text if isinstance(text, str) else None
