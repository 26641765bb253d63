"""Ingest with helper processes stores exactly what a single-process ingest stores: the same
tables, counts and quarantine, whichever process read a file, whether its references resolve
inside its share or only across shares, and when a helper fails."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

import carelens.ingest.pipeline as pipeline
from carelens.core.forked import Claims, Forked
from carelens.ingest import IngestResult, ingest
from carelens.ingest.listing import FileList
from carelens.ingest.staged import read_staged
from carelens.store import TABLES, Lake
from tests.ingest.makefiles import bundle, observation, patient, write_json, write_ndjson
from tests.ingest.test_bad_input import make_batch


def lake_rows(store: Path) -> dict[str, list[tuple[str, ...]]]:
    """Every table's rows, sorted (chunking differs between runs; contents must not)."""
    lake = Lake(store)
    return {t: sorted(tuple(str(v) for v in r.values()) for r in lake.read_table(t).to_pylist()) for t in TABLES}


def outcome(result: IngestResult) -> tuple[object, ...]:
    quarantined = sorted((Path(q.source).name, q.where, q.reason) for q in result.quarantined)
    skipped = sorted(Path(s.source).name for s in result.skipped)
    return result.text(), dict(result.done), quarantined, skipped, result.unchanged


def either(rows: dict[str, list[tuple[str, ...]]], same_bytes: tuple[Path, ...]) -> dict[str, list[tuple[str, ...]]]:
    """``rows`` with the paths of files holding the same bytes made one: the batch reads such bytes
    once, from whichever of those files a process reaches first."""
    names = {str(path) for path in same_bytes}
    return {t: sorted(tuple("<same bytes>" if v in names else v for v in r) for r in rs) for t, rs in rows.items()}


def both_ways(
    paths: list[Path], tmp_path: Path, processes: int = 2, same_bytes: tuple[Path, ...] = ()
) -> tuple[IngestResult, IngestResult]:
    single = ingest(paths, tmp_path / "single", processes=1)
    shared = ingest(paths, tmp_path / "shared", processes=processes)
    assert outcome(shared) == outcome(single)
    assert either(lake_rows(tmp_path / "shared"), same_bytes) == either(lake_rows(tmp_path / "single"), same_bytes)
    return single, shared


@pytest.fixture
def small_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    """Share out even a few small files, so the tests below reach the helper processes."""
    monkeypatch.setattr(pipeline, "SHARE_MIN_BYTES", 1)


def test_fhir_files_are_shared_in_reading_order(tmp_path: Path, small_shares: None) -> None:
    files = [(write_json(tmp_path / f"{i}.json", bundle(patient(f"P{i}"))), False) for i in range(3)]
    note = tmp_path / "n.txt"
    note.write_text("a note")
    own, shared, helpers = split([files[0], (note, False), *files[1:]], tmp_path, processes=3)
    assert (own, shared, helpers) == ([(note, False)], files, 2)
    assert split(files, tmp_path, processes=1) == (files, [], 0)


def test_no_helpers_for_little_fhir(tmp_path: Path) -> None:
    path = write_json(tmp_path / "b.json", bundle(patient("P1")))
    assert split([(path, True)], tmp_path, processes=4) == ([(path, True)], [], 0)


def split(
    files: list[tuple[Path, bool]], folder: Path, processes: int
) -> tuple[list[tuple[Path, bool]], list[tuple[Path, bool]], int]:
    """``pipeline._split`` of these files, its lists read back."""
    own, shared, helpers = pipeline._split(FileList(folder, "in").extend(files), processes)
    return list(own), list(shared), helpers


def test_claims_hand_each_index_to_one_process() -> None:
    claims = Claims(500)
    helpers = [Forked(lambda: list(claims)) for _ in range(2)]
    mine = list(claims)
    theirs = [helper.result() for helper in helpers]
    taken = sorted(mine + theirs[0] + theirs[1])
    assert taken == list(range(500))
    assert list(Claims(0)) == []


def test_shared_data_same_as_single_process(shared_data: Path, tmp_path: Path) -> None:
    fhir = shared_data / "fhir"
    single, _ = both_ways([fhir / "synthea-r4", fhir / "bulk-10-patients"], tmp_path)
    assert single.quarantined == [] and single.done["notes"] == 1215


def test_bad_input_same_as_single_process(tmp_path: Path, small_shares: None) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_batch(folder)
    single, _ = both_ways([folder], tmp_path, processes=3)
    assert any(q.where == "line 2" and "missing from the batch" in q.reason for q in single.quarantined)


def test_references_across_shares_resolve_or_are_quarantined(tmp_path: Path, small_shares: None) -> None:
    """Each process holds files whose references only the other's files satisfy; one reference
    names nothing at all, so its chunk is dropped and read again by the main process."""
    folder = tmp_path / "in"
    for i in range(6):
        write_ndjson(folder / f"patients{i}.ndjson", patient(f"P{i}"))
        refs = [observation(f"O{i}-{j}", f"Patient/P{(i + j) % 6}") for j in range(1, 4)]
        write_ndjson(folder / f"obs{i}.ndjson", *refs)
    write_ndjson(folder / "obs-dangling.ndjson", observation("OX", "Patient/nobody"), observation("OY", "Patient/P1"))
    dups = (folder / "dup-a.json", folder / "dup-b.json")
    write_json(dups[0], bundle(patient("PD"), observation("OD", "urn:uuid:PD")))
    dups[1].write_bytes(dups[0].read_bytes())  # same bytes: read once
    single, _ = both_ways([folder], tmp_path, same_bytes=dups)
    for store in ("single", "shared"):
        sources = [row[1] for row in lake_rows(tmp_path / store)["sources"]]
        assert sum(sources.count(str(dup)) for dup in dups) == 1  # one of the two, once
    assert [(q.where, "missing from the batch" in q.reason) for q in single.quarantined] == [("line 1", True)]
    assert single.unchanged == 1 and single.done["Observation"] == 6 * 3 + 1 + 1


def helper_first(real_take: Any) -> Any:
    """``_take`` in which this process takes shared files only once the forked helper has claimed
    every one (waits on the claims, not on a clock: the helper may be slow to start)."""
    parent = os.getpid()

    def take(shared: FileList, claims: Claims, *args: Any, **kwargs: Any) -> Iterator[tuple[Path, bool]]:
        give_up = time.monotonic() + 600  # only so that a helper that never starts cannot hang the suite
        while os.getpid() == parent and claims._next is not None and claims._next.value < claims.count:
            if time.monotonic() > give_up:
                break
            time.sleep(0.01)
        yield from real_take(shared, claims, *args, **kwargs)

    return take


def test_failed_helper_files_are_read_by_the_main_process(
    tmp_path: Path, small_shares: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper takes every file, then dies: the main process reads them all itself."""

    def broken(self: object, shared: FileList, claims: Claims) -> None:
        taken = list(claims)
        raise MemoryError(f"pretend the helper ran out of memory after taking {len(taken)} files")

    monkeypatch.setattr(pipeline, "_take", helper_first(pipeline._take))
    monkeypatch.setattr(pipeline._Run, "help", broken)  # the forked child runs these copies
    folder = tmp_path / "in"
    for i in range(6):
        write_json(folder / f"b{i}.json", bundle(patient(f"P{i}"), observation(f"O{i}", f"urn:uuid:P{i}")))
    _, shared = both_ways([folder], tmp_path)
    assert shared.done["Patient"] == 6
    lake = Lake(tmp_path / "shared")
    named = {p.name for p in (lake.root / "resources").iterdir()}
    assert named == {Path(m["parts"]["resources"]).name for m in lake.manifests()}  # no part file left over


def test_helper_hands_its_staged_chunks_over_in_a_file(
    tmp_path: Path, small_shares: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper's report holds no record a file: its staged chunks (manifest and outcome each) are
    lines of a file, which the committing process reads back one at a time."""
    real_settle = pipeline._Run.settle
    reports: list[tuple[Any, list[tuple[dict[str, Any], dict[str, Any]]]]] = []

    def settle(self: Any, share: Any) -> None:
        reports.append((share, list(read_staged(share.staged))))
        real_settle(self, share)

    monkeypatch.setattr(pipeline, "_take", helper_first(pipeline._take))
    monkeypatch.setattr(pipeline._Run, "settle", settle)
    monkeypatch.setenv("CARELENS_LAKE_CHUNK_ROWS", "3")  # a chunk every file or two
    folder = tmp_path / "in"
    for i in range(8):
        write_json(folder / f"b{i}.json", bundle(patient(f"P{i}"), observation(f"O{i}", f"urn:uuid:P{i}")))
    _, shared = both_ways([folder], tmp_path)
    [(share, staged)] = reports
    assert isinstance(share.staged, Path) and {f.name for f in fields(share)} == {
        "result", "staged", "needs", "known", "taken"
    }  # fmt: skip
    assert len(staged) > 1 and sum(len(manifest["sources"]) for manifest, _ in staged) == len(share.taken) > 0
    patients = sum(IngestResult.model_validate(outcome).done["Patient"] for _, outcome in staged)
    assert patients == len(share.taken) and shared.done["Patient"] == 8
