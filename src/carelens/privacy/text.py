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

from carelens.core.errors import InputError
from carelens.core.quarantine import BatchResult
from carelens.ingest.notes import decode_note_file
from carelens.privacy.batch import MAX_NAMES, add_batch_names, confident_names, first_words
from carelens.privacy.context import PatientContext
from carelens.privacy.crf import crf_model
from carelens.privacy.detect import PhiSpan, detect_phi, merge_spans, proposals
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
    context = _context(context, keys, document_id)
    found = detect_phi(text, context)
    return apply_spans(text, found, Surrogates.for_context(context))


def _context(context: PatientContext | None, keys: KeyService | None, document_id: str) -> PatientContext:
    if context is not None:
        return context
    return PatientContext(patient_id=document_id or "document", keys=keys or KeyService.ephemeral())


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
    """A note's text (``decode_note_file``: UTF-8, or UTF-16/32 with a byte order mark); ``ValueError`` with a
    PHI-free reason when it is no text."""
    size = path.stat().st_size
    if size > MAX_NOTE_BYTES:
        raise ValueError(f"note too large ({size} bytes; the limit is {MAX_NOTE_BYTES})")
    try:
        text = decode_note_file(path.read_bytes())
    except InputError as err:
        raise ValueError(err.reason) from None
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
    surrogates). Notes that cannot be read are quarantined; outputs are written atomically. The
    notes are one batch (``batch``): a name found with confidence in one is replaced in all, by a
    second pass over the notes whose text holds it uncovered.
    """
    result = BatchResult()
    files = note_files(src)
    base = src if src.is_dir() else src.parent
    names: set[tuple[str, ...]] = set()
    model = crf_model()
    vocabulary = model.vocabulary if model is not None else frozenset()
    done: list[Path] = []
    for path in files:
        try:
            text = read_note(path)
        except (ValueError, OSError) as err:
            result.quarantine(str(path), "file", str(err))
            continue
        context = _context(context_for(path) if context_for else None, keys, path.stem)
        try:
            found = proposals(text, context)
            cleaned = apply_spans(text, merge_spans(found, text), Surrogates.for_context(context))
        except Exception as err:  # a detector bug must not end the batch; the type only (no PHI)
            result.quarantine(str(path), "file", f"internal error ({type(err).__name__}); nothing written")
            continue
        if len(names) < MAX_NAMES:
            names |= confident_names(text, found, vocabulary)
        _write(out / path.relative_to(base), cleaned)
        done.append(path)
        result.done["notes"] += 1
        if on_file:
            on_file(path)
    firsts = first_words(names)
    for path in done if len(done) > 1 else []:
        _apply_batch(
            path,
            out / path.relative_to(base),
            (names, firsts),
            _context(context_for(path) if context_for else None, keys, path.stem),
        )
    return result


def _apply_batch(
    path: Path, target: Path, names: tuple[set[tuple[str, ...]], frozenset[str]], context: PatientContext
) -> None:
    """Rewrite ``target`` when the batch's ``names`` (and their ``first_words``) occur uncovered in the
    note at ``path``."""
    try:
        text = read_note(path)
        spans = [PhiSpan(d["start"], d["end"], d["type"], "") for d in orjson.loads(_spans_file(target).read_bytes())]
    except (ValueError, OSError):  # changed since the first pass: its first-pass output stands
        return
    extra = add_batch_names(text, spans, *names)
    if extra:
        _write(target, apply_spans(text, merge_spans(spans + extra, text), Surrogates.for_context(context)))


def _spans_file(target: Path) -> Path:
    return target.with_name(target.stem + ".phi.json")


def _write(target: Path, res: TextResult) -> None:
    _write_atomic(target, res.text.encode("utf-8"))
    _write_atomic(_spans_file(target), orjson.dumps([s.as_dict() for s in res.spans], option=orjson.OPT_INDENT_2))


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)
