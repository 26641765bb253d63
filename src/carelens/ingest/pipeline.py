"""Ingest files and folders into the lake: FHIR, notes, DICOM and VCF, bad input quarantined.

Counting: every input item is either ingested or quarantined. Items are FHIR bundle entries
and NDJSON lines, ``.txt`` note files, DICOM files, VCF records (data lines), and whole files
that cannot be read at all (one quarantine record each). ``notes`` counts the notes decoded
from ingested DocumentReferences (a DocumentReference without a decodable text attachment
is quarantined as a whole) plus the ``.txt`` notes; ``dicom`` counts files, ``variants`` VCF
records.

Literal ``Type/id`` references are checked against every resource of the batch and of the
lake (ingested or quarantined): a file whose references all resolve is committed at once; a
file with references still unknown waits (in memory) until the whole batch has been read, and
its resources whose references still do not resolve are quarantined. The ``Type/id`` of what
was read are kept in SQLite files in the lake's scratch folder (``store.keyset``,
``LakeWriter.scratch``: in the store, since file names may name patients), not in memory: 1.9 M
for 10,000 Synthea patients; so are the content hashes of the files read and of those in the lake
before the run. The files to read are listed there too (``ingest.listing``), in an order that
reads Bulk Data files of often-referenced types first, so that in a usual export no file waits.
Memory does not grow with the batch or the lake beyond a few bytes a file (8 a file listed) and
the catalog's views, which name every part file (~3 KB a part; see ``benchmarks/results/run.md``).
A helper's staged chunks go to a file too (``ingest.staged``), not to its report.
Each file is read whole into memory, the next one read and hashed in a background thread
meanwhile. On a machine with spare cores, a batch with enough FHIR text shares its FHIR files
with forked helper processes (``CARELENS_INGEST_PROCESSES``, default one per core, at most 4),
each file read by whichever process is free first: a helper parses its files and writes their
Parquet parts, and this process commits each of its chunks once every reference the chunk
makes resolves, or drops the chunk and reads its files itself (also all of a failed helper's
files): the tables are those of a single-process run.
Conditional references
(``Type?identifier=...``), contained (``#id``) and absolute URLs are not checked.

Files are content-addressed by their kind and bytes (an empty ``.json`` and an empty ``.dcm``
are two sources): a file ingested before is not read again (it is counted in ``unchanged``, and
what was quarantined of it then is reported again, from the lake's quarantine table); of files
in one batch with the same bytes, the lake records the one a process reaches first (with helper
processes, not always the first in reading order); a Bulk Data export log and note sidecars are
``skipped``, as are files of unknown kind found in a folder (a file of unknown kind named on the
command line is quarantined) and VCFs found in a folder that name no sample: a reference such
as ClinVar's, not a patient's genome (named on the command line, one is ingested, ``sample``
NULL). A file that cannot be read (permissions), or a folder that cannot
be listed, is quarantined for this run only, not recorded in the lake, so the next run tries it
again. Hidden files in folders are
ignored.
"""

from __future__ import annotations

import gc
import hashlib
import os
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from carelens.core.errors import InputError
from carelens.core.forked import Claims, Forked, HelperFailed, can_fork, cores_to_use
from carelens.core.ids import stable_id
from carelens.core.progress import progress
from carelens.core.quarantine import BatchResult
from carelens.core.settings import load_settings
from carelens.ingest.dicom import is_dicom, read_dicom_header
from carelens.ingest.fhir import (
    TOO_DEEP,
    FhirRow,
    is_export_log,
    is_fhir_name,
    literal_references,
    read_fhir_file,
    strip_bom,
)
from carelens.ingest.listing import FileList, list_files
from carelens.ingest.notes import decode_note, read_text_note
from carelens.ingest.staged import StagedFile, read_staged
from carelens.ingest.vcf import is_vcf, read_vcf, sample_count, stream_vcf
from carelens.store.keyset import KeySet
from carelens.store.lake import SCHEMAS, Lake, LakeWriter, lake_keys

NOTE_SIDECARS = (".meta.json", ".phi.json")
DERIVED = ("notes", "dicom", "variants")
STREAM_VCF_BYTES = 65_536  # larger VCF files are streamed in bounded memory
SHARE_MIN_BYTES = 4_000_000  # FHIR text per process worth forking a helper for (~20 ms of parsing)
CATALOG_AT = 0.6  # of the shared files taken: the catalog starts opening, in the background


class Skipped(BaseModel):
    """A file that holds no patient data to ingest (export log, sidecar, unknown kind in a folder)."""

    source: str
    reason: str


class IngestResult(BatchResult):
    """A :class:`BatchResult` with the files left alone: ``unchanged`` (already in the lake)
    and ``skipped``. ``done`` counts resources per type plus ``notes``, ``dicom``, ``variants``."""

    unchanged: int = 0
    skipped: list[Skipped] = Field(default_factory=list)
    text_notes: int = 0

    def merge(self, other: IngestResult) -> None:
        """Add ``other``'s counts and records to these."""
        self.done.update(other.done)
        self.quarantined.extend(other.quarantined)
        self.unchanged += other.unchanged
        self.skipped.extend(other.skipped)
        self.text_notes += other.text_notes

    def ingested(self) -> dict[str, int]:
        """The counts of the command-line contract: resource types, then notes, dicom, variants."""
        counts = {k: v for k, v in sorted(self.done.items()) if k not in DERIVED}
        counts.update({k: self.done.get(k, 0) for k in DERIVED})
        return counts

    def summary(self) -> dict[str, Any]:
        return {
            "ingested": self.ingested(),
            "quarantined": [q.model_dump() for q in self.quarantined],
            "unchanged": self.unchanged,
            "skipped": [s.model_dump() for s in self.skipped],
        }

    def text(self) -> str:
        """``ingested N, quarantined M`` (N counts resources, .txt notes, DICOM files and VCF
        records; notes decoded from DocumentReferences are already counted as resources)."""
        total = sum(v for k, v in self.done.items() if k not in DERIVED)
        total += self.done.get("dicom", 0) + self.done.get("variants", 0) + self.text_notes
        return f"ingested {total}, quarantined {len(self.quarantined)}"


@dataclass
class _File:
    """One source file's rows, held until its references are checked."""

    path: Path
    source_hash: str
    kind: str
    resources: list[FhirRow] = field(default_factory=list)
    notes: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    quarantine: BatchResult = field(default_factory=BatchResult)
    quarantine_keys: list[str | None] = field(default_factory=list)
    references: set[str] = field(default_factory=set)
    items: int = 0


def ingest(
    paths: Iterable[Path],
    store: Path | None = None,
    processes: int | None = None,
    pixel_gate: Callable[[bytes], str | None] | None = None,
) -> IngestResult:
    """Ingest files and folders (FHIR, ``.txt`` notes, DICOM, VCF) into the store's lake.

    ``processes``: how many processes may parse FHIR files (1: this one only; default
    ``CARELENS_INGEST_PROCESSES``, else one per CPU core, at most 4). ``pixel_gate``: called
    with each DICOM file's bytes, the reason to quarantine it for its pixels or None (the
    research zone's burned-in text gate)."""
    result = IngestResult()
    lake = Lake(store)
    if processes is None:
        processes = cores_to_use(load_settings().ingest_processes)
    with lake.writer() as writer:
        files = list_files(paths, writer.scratch)
        collecting = gc.isenabled()
        gc.disable()  # parsing makes millions of acyclic objects; the cyclic collector only slows it
        try:
            run = _Run(lake, writer, result, writer.scratch, pixel_gate=pixel_gate)
            try:
                run.run(files, processes)
            finally:
                run.close()
        finally:
            files.close()
            if collecting:
                gc.enable()
    return result


def kind_of(path: Path, data: bytes) -> str | None:
    """``fhir``, ``note``, ``dicom``, ``vcf``, ``sidecar`` or None for a file carelens does not read."""
    name = path.name.lower()
    if name.endswith(NOTE_SIDECARS):
        return "sidecar"
    if name.endswith((".json", ".ndjson")):
        return "fhir"
    if name.endswith(".txt"):
        return "note"
    if is_vcf(path):
        return "vcf"
    if is_dicom(path, data[:132]):
        return "dicom"
    return None


@dataclass
class _Share:
    """What a helper process did with the files it took: ``staged`` the file of its staged chunks
    (each chunk's manifest and what its files ingested and quarantined, see
    :mod:`carelens.ingest.staged`); the references each source still waiting at its end makes to
    resources the helper did not read; ``result`` has what is not in a chunk (unchanged and
    skipped files, unreadable ones); ``known`` the file of the ``Type/id`` it read; ``taken`` the
    indices of the shared files it took."""

    result: IngestResult
    staged: Path
    needs: dict[str, set[str]]
    known: Path
    taken: array[int]


class _Run:
    def __init__(
        self,
        lake: Lake,
        writer: LakeWriter,
        result: IngestResult,
        spill: Path,
        outcomes: dict[str, IngestResult] | None = None,
        pixel_gate: Callable[[bytes], str | None] | None = None,
        prior: Path | None = None,
    ) -> None:
        self.lake = lake
        self.spill = spill
        self.pixel_gate = pixel_gate
        self.writer = writer
        self.result = result
        self.outcomes = outcomes  # per staged chunk, in a helper process
        # the files of keys are named by process: a helper makes its own after the fork
        self.known = KeySet(self.spill / f"known-{os.getpid()}-{id(self)}.sqlite")
        self.seen = KeySet(self.spill / f"seen-{os.getpid()}-{id(self)}.sqlite")  # sources read in this run
        self._owns_prior = prior is None
        self.prior = KeySet(prior) if prior else self._lake_sources()  # sources in the lake before this run
        self._lake_keys: KeySet | None = None
        self.helper_keys: list[KeySet] = []  # the ``Type/id`` each helper process read
        self.waiting: list[_File] = []
        self._prior_quarantine: dict[str, list[tuple[str, str]]] | None = None

    def run(self, files: FileList, processes: int = 1) -> None:
        own, shared, helpers = _split(files, processes)
        bar = iter(progress(range(len(files)), desc="ingest", unit="file"))
        claims = Claims(len(shared))
        forked = [Forked(partial(self.help, shared, claims)) for _ in range(helpers)]  # before any thread starts
        mine: array[int] = array("q")
        self.read_all(chain(own, _take(shared, claims, mine, self.near_end)), bar)
        if forked:
            self.writer.commit()  # written while the helpers finish
        self.writer.open_catalog()
        reports: list[_Share] = []
        for helper in forked:
            try:
                reports.append(helper.result())
            except HelperFailed:
                continue  # its files are read here, below
        taken = bytearray(len(shared))
        for index in chain(mine, *(report.taken for report in reports)):
            taken[index] = 1
        self.read_all((item for index, item in enumerate(shared) if not taken[index]), bar)
        self.helper_keys = [KeySet(report.known) for report in reports]  # looked up, never copied here
        for report in reports:
            self.settle(report)
            for _ in report.taken:
                next(bar, None)
        for held in self.waiting:
            self.finish(held, final=True)

    def near_end(self, fraction: float) -> None:
        """Called as this process takes shared files: near the end, the catalog starts opening."""
        if fraction >= CATALOG_AT:
            self.writer.open_catalog()

    def read_all(self, files: Iterable[tuple[Path, bool]], bar: Iterator[int] | None = None) -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="carelens-read") as pool:
            for path, named, item in _read_ahead(pool, files):
                self.one(path, named, item)
                if bar is not None:
                    next(bar, None)

    def help(self, shared: FileList, claims: Claims) -> _Share:
        """In a helper process: read shared files as they are free into staged chunks (see
        :class:`_Share`)."""
        staged = StagedFile(self.spill / f"staged-{os.getpid()}-{id(self)}.jsonl")
        outcomes: dict[str, IngestResult] = {}

        def stage(manifest: dict[str, Any]) -> None:  # a chunk's outcome is complete once it is staged
            outcome = outcomes.pop(manifest["sources"][0]["hash"], IngestResult())
            staged.add(manifest, outcome.model_dump(mode="json"))

        writer = LakeWriter(self.lake, self.writer.rows_per_chunk, staging=True, stage=stage)
        run = _Run(self.lake, writer, IngestResult(), self.spill, outcomes, self.pixel_gate, prior=self.prior.path)
        taken: array[int] = array("q")
        try:
            run.read_all(_take(shared, claims, taken))
            needs = {held.source_hash: run.unresolved(held.references) for held in run.waiting}
            for held in run.waiting:
                run.commit(held)
            writer.commit()
        finally:
            writer.close()
            staged.close()
            run.close(keep_known=True)  # handed to the parent
        return _Share(run.result, staged.path, needs, run.known.path, taken)

    def settle(self, share: _Share) -> None:
        """Commit each chunk a helper staged whose references all resolve and whose sources this
        run did not read too; drop the others and read their files here (a shared file has a
        FHIR name: it is read alike whether it was named or found in a folder)."""
        self.result.merge(share.result)
        for manifest, outcome in read_staged(share.staged):
            hashes = [s["hash"] for s in manifest["sources"]]
            needs = set().union(*(share.needs.get(h, set()) for h in hashes))
            if not any(h in self.seen for h in hashes) and not self.unresolved(needs):
                self.writer.commit_staged(manifest)
                self.seen.update(hashes)
                self.result.merge(IngestResult.model_validate(outcome))
                continue
            self.writer.discard_staged(manifest)
            for source in manifest["sources"]:
                path = Path(source["path"])
                self.one(path, True, _load(path))

    def one(self, path: Path, named: bool, loaded: tuple[bytes, str, str | None] | OSError) -> None:
        if isinstance(loaded, OSError):
            held = _File(path=path, source_hash=f"unreadable:{path}", kind="unknown")
            if path.is_dir():  # a folder the listing could not open
                self.bad(held, "folder", "cannot list the folder: its files were not read")
            else:
                self.bad(held, "file", f"cannot read the file ({type(loaded).__name__})")
            self.result.quarantined.extend(held.quarantine.quarantined)
            return
        data, digest, kind = loaded
        if digest in self.seen or digest in self.prior:
            self.result.unchanged += 1
            if digest in self.prior:
                for where, reason in self.prior_quarantine().get(digest, []):
                    self.result.quarantine(str(path), where, reason)
            return
        if kind == "sidecar" or (kind == "fhir" and path.name.lower().endswith(".ndjson") and is_export_log(data)):
            self.result.skipped.append(Skipped(source=str(path), reason="not patient data (sidecar or export log)"))
            return
        if kind is None and not named:
            self.result.skipped.append(Skipped(source=str(path), reason="not a FHIR, note, DICOM or VCF file"))
            return
        if kind == "vcf" and not named and sample_count(path, strip_bom(data)) == 0:
            self.result.skipped.append(Skipped(source=str(path), reason="not patient data (a VCF with no sample)"))
            return
        self.seen.update([digest])
        held = _File(path=path, source_hash=digest, kind=kind or "unknown")
        try:
            committed = self.read(held, kind, data)
        except RecursionError:  # any reader's depth limit: the file, not the batch, fails
            held = _File(path=path, source_hash=digest, kind=kind or "unknown")
            self.bad(held, "file", TOO_DEEP if kind == "fhir" else "nested too deeply")
            committed = False
        if not committed:
            self.finish(held, final=False)

    def read(self, held: _File, kind: str | None, data: bytes) -> bool:
        """Read ``data`` into ``held``; True when the reader committed the file itself (a streamed VCF)."""
        if kind in ("fhir", "note", "vcf"):
            data = strip_bom(data)
        if kind == "fhir":
            self.read_fhir(held, data)
        elif kind == "note":
            self.read_note(held, data)
        elif kind == "dicom":
            self.read_dicom(held, data)
        elif kind == "vcf" and not data:  # streamed: committed on its own, in bounded memory
            self.stream_vcf(held)
            return True
        elif kind == "vcf":
            self.read_vcf(held, data)
        else:
            self.bad(held, "file", "not a FHIR, note, DICOM or VCF file")
        return False

    def prior_quarantine(self) -> dict[str, list[tuple[str, str]]]:
        """``where`` and reason of what was quarantined of each source in an earlier run."""
        if self._prior_quarantine is None:
            table = self.lake.read_table("quarantine", ["where", "reason", "source_hash"]).to_pydict()
            found: dict[str, list[tuple[str, str]]] = {}
            for where, reason, digest in zip(table["where"], table["reason"], table["source_hash"], strict=True):
                found.setdefault(digest, []).append((where, reason))
            self._prior_quarantine = found
        return self._prior_quarantine

    def bad(self, held: _File, where: str, reason: str, key: str | None = None) -> None:
        held.quarantine.quarantine(str(held.path), where, reason)
        held.quarantine_keys.append(key)

    # -- readers ---------------------------------------------------------------------------
    def read_fhir(self, held: _File, data: bytes) -> None:
        rows = read_fhir_file(held.path, held.quarantine, data, held.references)
        held.quarantine_keys.extend([None] * len(held.quarantine.quarantined))
        for row in rows:
            if row.resource_type == "DocumentReference":
                try:
                    note = decode_note(orjson.loads(row.json))
                except InputError as err:
                    self.bad(held, row.where, f"DocumentReference attachment: {err.reason}", row.key)
                    continue
                held.notes[len(held.resources)] = (
                    note.note_id,
                    note.patient_id,
                    note.date,
                    note.type,
                    note.text,
                    note.content_type,
                    note.content_hash,
                    str(held.path),
                    row.where,
                )
            held.resources.append(row)
        self.known.update(chain((row.key for row in held.resources), (key for key in held.quarantine_keys if key)))

    def read_note(self, held: _File, data: bytes) -> None:
        try:
            note = read_text_note(held.path, data)
        except InputError as err:
            self.bad(held, "file", err.reason)
            return
        row = (note.note_id, note.patient_id, note.date, note.type, note.text, note.content_type, note.content_hash)
        held.tables["notes"] = [(*row, str(held.path), "file")]
        held.items = 1

    def read_dicom(self, held: _File, data: bytes) -> None:
        try:
            header = read_dicom_header(data)
        except InputError as err:
            self.bad(held, "file", err.reason)
            return
        reason = self.pixel_gate(data) if self.pixel_gate else None
        if reason:
            self.bad(held, "PixelData", reason)
            return
        row = (*header.values(), str(held.path), held.source_hash)
        held.tables["dicom_instances"] = [row]
        held.items = 1

    def read_vcf(self, held: _File, data: bytes) -> None:
        try:
            parsed = read_vcf(held.path, data, str(held.path))
        except InputError as err:
            self.bad(held, "file", err.reason)
            return
        for number, reason in parsed.bad_lines:
            self.bad(held, f"line {number}", reason)
        held.tables["variants"] = parsed.rows
        held.items = parsed.records

    def stream_vcf(self, held: _File) -> None:
        """A VCF read block by block into its own Parquet part, then committed as one chunk (its
        part, its quarantine rows and its source row) like a helper's staged chunk."""
        chunk = stable_id(held.source_hash, length=24)
        part = self.lake.root / "variants" / f"part-{chunk}.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            parsed = stream_vcf(held.path, str(held.path), part, SCHEMAS["variants"])
        except InputError as err:
            self.bad(held, "file", err.reason)
            parsed = None
        for number, reason in parsed.bad_lines if parsed else []:
            self.bad(held, f"line {number}", reason)
        held.items = parsed.records if parsed else 0
        staging = LakeWriter(self.lake, rows_per_chunk=1 << 62, staging=True)
        try:
            quarantined = held.quarantine.quarantined
            keys = held.quarantine_keys
            rows = [(q.source, q.where, q.reason, k, held.source_hash) for q, k in zip(quarantined, keys, strict=True)]
            staging.add_rows("quarantine", rows)
            staging.source_done(held.source_hash, str(held.path), held.kind, held.items + len(quarantined))
            staging.commit()
            staging.wait()
        finally:
            staging.close()
        manifest = staging.staged[0]
        if parsed is not None:
            manifest["parts"]["variants"] = str(part.relative_to(self.lake.root))
        result = self.result_for(held.source_hash)  # its own chunk: complete before it is staged
        result.done["variants"] += held.items
        result.quarantined.extend(quarantined)
        if self.writer.staging:
            self.writer.stage(manifest)
        else:
            self.writer.commit_staged(manifest)

    # -- references and commit -------------------------------------------------------------
    def unresolved(self, refs: Iterable[str]) -> set[str]:
        """References to nothing read in this batch nor stored in the lake (so far)."""
        missing = self.known.missing(refs)
        for keys in self.helper_keys:
            if not missing:
                break
            missing = keys.missing(missing)
        if missing:
            missing = self.lake_keys().missing(missing)
        return missing

    def lake_keys(self) -> KeySet:
        if self._lake_keys is None:
            self._lake_keys = KeySet(self.spill / f"lake-{os.getpid()}-{id(self)}.sqlite")
            self._lake_keys.update(lake_keys(self.lake))
        return self._lake_keys

    def _lake_sources(self) -> KeySet:
        sources = KeySet(self.spill / f"prior-{os.getpid()}-{id(self)}.sqlite")
        sources.update(self.lake.committed_sources())
        return sources

    def close(self, keep_known: bool = False) -> None:
        """Close (and remove) the files of keys; ``keep_known``: leave the file of keys read."""
        self.known.close(remove=not keep_known)
        for keys in self.helper_keys:
            keys.close()
        self.seen.close()
        self.prior.close(remove=self._owns_prior)
        if self._lake_keys is not None:
            self._lake_keys.close()

    def finish(self, held: _File, final: bool) -> None:
        if not final and self.unresolved(held.references):
            self.waiting.append(held)
            return
        if final:
            self.drop_dangling(held)
        self.commit(held)

    def drop_dangling(self, held: _File) -> None:
        kept: list[FhirRow] = []
        notes: dict[int, tuple[Any, ...]] = {}
        for index, row in enumerate(held.resources):
            missing = self.unresolved(literal_references(row.json))
            if missing:
                types = ", ".join(sorted({m.split("/", 1)[0] for m in missing}))
                self.bad(held, row.where, f"reference to a resource missing from the batch ({types})", row.key)
                continue
            if index in held.notes:
                notes[len(kept)] = held.notes[index]
            kept.append(row)
        held.resources, held.notes = kept, notes

    def result_for(self, chunk: str) -> IngestResult:
        """Where a committed file's counts go: the run's result, or in a helper its chunk's
        (``chunk``: the hash of the chunk's first source)."""
        if self.outcomes is None:
            return self.result
        return self.outcomes.setdefault(chunk, IngestResult())

    def commit(self, held: _File) -> None:
        source = str(held.path)
        result = self.result_for(self.writer.chunk_key(held.source_hash))
        if held.resources:
            columns = _resource_columns(held.resources, source)
            self.writer.add_columns("resources", columns)
            result.done.update(columns[0])  # resource types
        if held.notes:
            self.writer.add_rows("notes", held.notes.values())
            result.done["notes"] += len(held.notes)
        for table, rows in held.tables.items():
            self.writer.add_rows(table, rows)
        if "notes" in held.tables:
            result.done["notes"] += len(held.tables["notes"])
            result.text_notes += len(held.tables["notes"])
        if "dicom_instances" in held.tables:
            result.done["dicom"] += len(held.tables["dicom_instances"])
        if "variants" in held.tables:
            result.done["variants"] += held.items
        quarantined = held.quarantine.quarantined
        self.writer.add_rows(
            "quarantine",
            [
                (q.source, q.where, q.reason, k, held.source_hash)
                for q, k in zip(quarantined, held.quarantine_keys, strict=True)
            ],
        )
        result.quarantined.extend(quarantined)
        items = len(held.resources) + held.items + len(quarantined)
        self.writer.source_done(held.source_hash, source, held.kind, items)


def _split(files: FileList, processes: int) -> tuple[FileList, FileList, int]:
    """The files only this process reads; the FHIR files it shares with helper processes (each
    taken by whichever process is free next, in reading order); how many helpers to fork:
    none where forking is not possible or the FHIR text is too little to be worth one."""
    helpers = min(processes, _fhir_size(files) // SHARE_MIN_BYTES) - 1 if processes > 1 and can_fork() else 0
    if helpers < 1:
        return files, FileList(files.path.parent, "shared"), 0
    return files.select(lambda path: not is_fhir_name(path), "own"), files.select(is_fhir_name, "shared"), helpers


def _fhir_size(files: FileList) -> int:
    total = 0
    for path, _ in files:
        try:
            total += path.stat().st_size if is_fhir_name(path) else 0
        except OSError:
            continue  # read (and quarantined) later
    return total


def _take(
    shared: FileList, claims: Claims, taken: array[int], near_end: Callable[[float], None] | None = None
) -> Iterator[tuple[Path, bool]]:
    """The shared files this process takes, as it is free; their indices go to ``taken``."""
    for index in claims:
        taken.append(index)
        if near_end is not None:
            near_end(index / len(shared))
        yield shared[index]


def _load(path: Path) -> tuple[bytes, str, str | None] | OSError:
    """A file's bytes, content hash (SHA-256 hex of its kind and bytes) and kind (see
    :func:`kind_of`), or the error that kept it from being read; a VCF of more than
    :data:`STREAM_VCF_BYTES` is only hashed (in 1 MB blocks, no bytes kept): it is read again as
    a stream."""
    try:
        if is_vcf(path) and path.stat().st_size > STREAM_VCF_BYTES:
            digest = hashlib.sha256(b"vcf\0")
            with open(path, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
            return b"", digest.hexdigest(), "vcf"
        data = path.read_bytes()
    except OSError as err:
        return err
    kind = kind_of(path, data)
    digest = hashlib.sha256(f"{kind or 'unknown'}\0".encode())
    digest.update(data)
    return data, digest.hexdigest(), kind


def _read_ahead(
    pool: ThreadPoolExecutor, files: Iterable[tuple[Path, bool]]
) -> Iterator[tuple[Path, bool, tuple[bytes, str, str | None] | OSError]]:
    """Each file, whether it was named, and :func:`_load` of it, in order: the next file read and
    hashed in the background (both release the GIL) while this one is parsed; at most two
    files in memory."""
    pending: deque[tuple[Path, bool, Future[tuple[bytes, str, str | None] | OSError]]] = deque()
    for path, named in files:
        pending.append((path, named, pool.submit(_load, path)))
        if len(pending) > 1:
            path, named, loading = pending.popleft()
            yield path, named, loading.result()
    while pending:
        path, named, loading = pending.popleft()
        yield path, named, loading.result()


def _resource_columns(rows: list[FhirRow], source: str) -> list[list[Any]]:
    n = len(rows)
    return [
        [r.resource_type for r in rows],
        [r.id for r in rows],
        [r.patient_id for r in rows],
        [source] * n,
        [r.where for r in rows],
        [hashlib.sha256(r.json).hexdigest() for r in rows],
        [r.json for r in rows],
    ]
