"""Killing `carelens ingest` with SIGKILL at any moment and running it again yields exactly the
tables of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carelens.ingest import ingest
from carelens.store import TABLES, Lake

CHUNK_ROWS = "400"  # many small commits, so kills land between, inside and after commits


def table_rows(lake: Lake, table: str) -> list[tuple[str, ...]]:
    return sorted(tuple(str(v) for v in r.values()) for r in lake.read_table(table).to_pylist())


def start(paths: list[Path], store: Path, tmp: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CARELENS_LAKE_CHUNK_ROWS": CHUNK_ROWS, **({"TMPDIR": str(tmp)} if tmp else {})}
    args = [
        sys.executable,
        "-c",
        "from carelens.cli import main; main()",
        "ingest",
        *map(str, paths),
        "--store",
        str(store),
    ]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_after_commits(proc: subprocess.Popen[bytes], store: Path, commits: int, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after the lake holds ``commits`` manifests; False if it
    finished first."""
    folder = store / "lake" / "_manifest"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and len(list(folder.glob("*.json"))) >= commits:
            time.sleep(delay)
            break
        time.sleep(0.002)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return True


@pytest.mark.slow
def test_sigkill_and_resume_equals_clean_run(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [shared_data / "fhir" / "synthea-r4", shared_data / "fhir" / "bulk-10-patients"]
    monkeypatch.setenv("CARELENS_LAKE_CHUNK_ROWS", CHUNK_ROWS)
    clean = tmp_path / "clean"
    ingest(paths, clean)
    total = len(list((clean / "lake" / "_manifest").glob("*.json")))
    assert total > 10

    store, tmp = tmp_path / "killed", tmp_path / "tmp"
    tmp.mkdir()
    manifests = store / "lake" / "_manifest"
    kills = 0
    for commits, delay in [(2, 0.0), (8, 0.013), (total - 3, 0.002)]:
        proc = start(paths, store, tmp)
        if kill_after_commits(proc, store, commits, delay):
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()[-500:] if proc.stderr else ""
    assert kills >= 2  # the runs really were cut off mid-way
    # commits were made before the kills; there may be more than a clean run's: each run packs the files left to it
    # into chunks afresh, so the chunk boundaries of killed-and-resumed runs need not be a clean run's
    assert len(list(manifests.glob("*.json"))) > 0

    proc = start(paths, store, tmp)
    assert proc.wait(timeout=600) == 0
    # the killed runs' temporary files (file names name patients) were in the store, and the last run removed them
    assert list(tmp.iterdir()) == [] and not (store / "lake" / "_scratch").exists()
    killed, reference = Lake(store), Lake(clean)
    for table in TABLES:
        assert table_rows(killed, table) == table_rows(reference, table), table
    on_disk = {p for t in TABLES for p in (killed.root / t).glob("*")}
    assert on_disk == {p for t in TABLES for p in killed.part_files(t)}  # nothing half-written left
    assert killed.query("SELECT count(*) AS n FROM notes").to_pylist() == [{"n": 1215}]


class _Crash(BaseException):
    """Stands for a kill: raised out of the writer, so nothing after it runs."""


@pytest.mark.parametrize("crash_after", [1, 4, 14, 15])
def test_crash_between_commits_with_waiting_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    """Files that wait for references (and their quarantine) resume to the same tables."""
    from carelens.store.lake import LakeWriter
    from tests.ingest.test_bad_input import make_batch

    folder = tmp_path / "in"
    folder.mkdir()
    make_batch(folder)
    monkeypatch.setenv("CARELENS_LAKE_CHUNK_ROWS", "1")  # one commit per source file
    clean = tmp_path / "clean"
    expected = ingest([folder], clean)
    assert expected.quarantined  # the batch holds bad items and a file that waits (resources.ndjson)

    real_commit = LakeWriter.commit
    calls = {"n": 0}

    def crashing_commit(self: LakeWriter) -> None:
        real_commit(self)
        calls["n"] += 1
        if calls["n"] == crash_after:
            raise _Crash

    monkeypatch.setattr(LakeWriter, "commit", crashing_commit)
    store = tmp_path / "crashed"
    with pytest.raises(_Crash):
        ingest([folder], store)
    monkeypatch.setattr(LakeWriter, "commit", real_commit)
    resumed = ingest([folder], store)
    assert resumed.unchanged == crash_after
    killed, reference = Lake(store), Lake(clean)
    for table in TABLES:
        assert table_rows(killed, table) == table_rows(reference, table), table
