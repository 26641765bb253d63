"""Text de-identification: detect PHI, replace it with surrogates, keep the spans.

``deidentify_text(text, context)`` is the library call; ``deid_text_path`` runs it over a
file or a folder of ``.txt`` notes, writing ``<name>.txt`` (surrogates) and
``<name>.phi.json`` (``[{"start","end","type","text","replacement"}]``, offsets into the
input) for each, and quarantining what cannot be read as text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from carelens.core.quarantine import BatchResult
from carelens.privacy.context import PatientContext
from carelens.privacy.detect import PhiSpan, detect_phi
from carelens.privacy.keys import KeyService
from carelens.privacy.surrogates import Surrogates


@dataclass
class DeidSpan:
    """One replaced identifier: ``input[start:end] == text`` became ``replacement``."""

    start: int
    end: int
    type: str
    text: str
    replacement: str

    def as_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "type": self.type, "text": self.text,
                "replacement": self.replacement}  # fmt: skip


@dataclass
class TextResult:
    """The de-identified text and every span replaced (offsets into the original)."""

    text: str
    spans: list[DeidSpan] = field(default_factory=list)


def deidentify_text(
    text: str,
    context: PatientContext | None = None,
    keys: KeyService | None = None,
    document_id: str = "",
) -> TextResult:
    """Detect PHI in ``text`` and replace it with surrogates.

    With a ``context`` (the patient the text belongs to) the patient's known identifiers are
    searched too, and surrogates and the date shift are that patient's. Without one, they are
    keyed on ``document_id`` under ``keys`` (an ephemeral key when none is given).
    """
    if context is None:
        context = PatientContext(patient_id=document_id or "document", keys=keys or KeyService.ephemeral())
    found = detect_phi(text, context)
    return apply_spans(text, found, Surrogates.for_context(context))


def apply_spans(text: str, found: list[PhiSpan], surrogates: Surrogates) -> TextResult:
    """Replace ``found`` spans in ``text``; the output's spans keep input offsets."""
    pieces: list[str] = []
    spans: list[DeidSpan] = []
    pos = 0
    cache: dict[tuple[str, str], str] = {}
    for span in found:
        original = text[span.start : span.end]
        key = (span.type, original)
        if key not in cache:
            cache[key] = surrogates.replace(span.type, original)
        pieces.append(text[pos : span.start])
        pieces.append(cache[key])
        spans.append(DeidSpan(span.start, span.end, span.type, original, cache[key]))
        pos = span.end
    pieces.append(text[pos:])
    return TextResult("".join(pieces), spans)


MAX_NOTE_BYTES = 16_000_000  # beyond this it is not a note (a 5 MB one takes ~22 CPU-s and ~0.7 GB)


def read_note(path: Path) -> str:
    """A note's text; ``ValueError`` with a PHI-free reason when it is not UTF-8 text."""
    size = path.stat().st_size
    if size > MAX_NOTE_BYTES:
        raise ValueError(f"note too large ({size} bytes; the limit is {MAX_NOTE_BYTES})")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ValueError("binary file, not text (NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text (invalid byte at offset {err.start})") from None
    if not text.strip():
        raise ValueError("empty note (no text to de-identify)")
    return text


def note_files(path: Path) -> list[Path]:
    """The ``.txt`` notes of a file or folder (recursive, sorted)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.txt") if p.is_file())


def deid_text_path(
    src: Path,
    out: Path,
    keys: KeyService,
    context_for: Callable[[Path], PatientContext | None] | None = None,
    on_file: Callable[[Path], object] | None = None,
) -> BatchResult:
    """De-identify one note or a folder of notes into ``out`` (same relative layout).

    ``context_for(path)`` gives the patient of a note (None: the note's own stem keys its
    surrogates). Notes that cannot be read are quarantined; outputs are written atomically.
    """
    result = BatchResult()
    files = note_files(src)
    base = src if src.is_dir() else src.parent
    for path in files:
        rel = path.relative_to(base)
        try:
            text = read_note(path)
        except (ValueError, OSError) as err:
            result.quarantine(str(path), "file", str(err))
            continue
        context = context_for(path) if context_for else None
        res = deidentify_text(text, context, keys=keys, document_id=path.stem)
        target = out / rel
        _write_atomic(target, res.text.encode("utf-8"))
        _write_atomic(target.with_name(target.stem + ".phi.json"),
                      orjson.dumps([s.as_dict() for s in res.spans], option=orjson.OPT_INDENT_2))  # fmt: skip
        result.done["notes"] += 1
        if on_file:
            on_file(path)
    return result


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)
