"""The workspace's patient list over a lake's run outputs (``LakeData``): pages in name order,
search by part of a name (any case, short or long), MRN, id or the start of a birth date, with
the matches' count; a batch committed later is seen on the next call."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from carelens.run import OutputStore
from carelens.run.index import index_row
from carelens.server.lake_data import LakeData

PEOPLE = [  # id, given, family, MRN, birth date
    ("p1", "Ana", "Smith", "MRN-001", "1957-09-17"),
    ("p2", "Bo", "Smithers", "MRN-002", "1957-10-01"),
    ("p3", "Cy", "Jones", "MRN-003", "1988-01-30"),
    ("p4", "Di", "Lee", "MRN-004", "2001-05-05"),
    ("p5", "Ed", "O'Neil", "MRN-005", "1957-09-02"),
]


def _commit(store: Path, people: list[tuple[str, str, str, str, str]]) -> None:
    rows = [index_row(pid, "h-" + pid, {"resourceType": "Patient", "id": pid, "birthDate": born, "gender": "other",
                                        "name": [{"given": [given], "family": family}],
                                        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": mrn}]})
            for pid, given, family, mrn, born in people]  # fmt: skip
    entries = [{"patient": p[0], "input_hash": "h-" + p[0], "status": "done", "reason": None} for p in people]
    with OutputStore(store).writer() as writer:
        writer.commit({"patient_index": rows}, entries)


def _ids(found: tuple[list, int]) -> tuple[list[str], int]:
    return [r.id for r in found[0]], found[1]


def test_pages_and_searches(tmp_path: Path) -> None:
    _commit(tmp_path, PEOPLE)
    data = LakeData(tmp_path)
    assert _ids(data.search("", limit=2)) == (["p1", "p2"], 5)  # by name: Ana Smith, Bo Smithers, ...
    assert _ids(data.search("", limit=2, offset=4)) == (["p5"], 5)
    assert _ids(data.search("smith")) == (["p1", "p2"], 2)
    assert _ids(data.search("SMITHERS")) == (["p2"], 1)
    assert _ids(data.search("ith")) == (["p1", "p2"], 2)  # inside a word
    assert _ids(data.search("on")) == (["p3"], 1)  # two letters: below a trigram, still found
    assert _ids(data.search("o'n")) == (["p5"], 1)
    assert _ids(data.search("MRN-003")) == (["p3"], 1)
    assert _ids(data.search("p4")) == (["p4"], 1)
    assert _ids(data.search("1957")) == (["p1", "p2", "p5"], 3)
    assert _ids(data.search("1957-09")) == (["p1", "p5"], 2)
    assert _ids(data.search("1957", limit=1, offset=2)) == (["p5"], 3)
    assert _ids(data.search("nobody")) == ([], 0)
    row = data.patient("p3")
    assert row is not None and row.mrn == "MRN-003" and data.input_hash("p3") == "h-p3"
    assert data.patient("nobody") is None and data.input_hash("nobody") == "not-run"
    # a later batch (a new patient, another's name corrected) is seen by the same object
    _commit(
        tmp_path, [("p6", "Al", "Smithson", "MRN-006", "1990-01-01"), ("p3", "Cy", "Jonas", "MRN-003", "1988-01-30")]
    )
    assert _ids(data.search("smith")) == (["p6", "p1", "p2"], 3)  # Al Smithson first
    assert _ids(data.search("jones")) == ([], 0) and _ids(data.search("jonas")) == (["p3"], 1)
    assert data.search("")[1] == 6


def test_keyset_pages_are_the_offset_pages(tmp_path: Path) -> None:
    """``after``: the page after a patient's row, in the list and in a search; the same rows as by offset."""
    import pytest

    from carelens.core.errors import InputError

    _commit(tmp_path, PEOPLE)
    data = LakeData(tmp_path)
    by_offset = [_ids(data.search("", limit=2, offset=o))[0] for o in (0, 2, 4)]
    by_key, after = [], None
    for _ in range(3):
        rows, total = data.search("", limit=2, after=after)
        by_key.append([r.id for r in rows])
        after = rows[-1].id
    assert by_key == by_offset == [["p1", "p2"], ["p3", "p4"], ["p5"]] and total == 5
    assert _ids(data.search("", limit=2, after="p5")) == ([], 5)
    assert _ids(data.search("1957", limit=1, after="p1")) == (["p2"], 3)  # a search: p1, p2, p5 by name
    assert _ids(data.search("1957", limit=5, after="p2")) == (["p5"], 3)
    with pytest.raises(InputError, match="cursor"):
        data.search("", after="nobody")


def _every(data: LakeData) -> list[tuple[list[str], int]]:
    """The whole list by pages of two and a few searches: what a user of the list sees."""
    pages = [_ids(data.search("", limit=2, offset=o)) for o in range(0, 8, 2)]
    return pages + [_ids(data.search(q)) for q in ("smith", "1957", "MRN-003", "p4", "on")]


def test_the_index_file_is_shared_and_updated_batch_by_batch(tmp_path: Path) -> None:
    _commit(tmp_path, PEOPLE[:3])
    _commit(tmp_path, PEOPLE[3:])
    first = LakeData(tmp_path)
    seen = _every(first)
    assert first.index_path.is_file() and first.index_path.is_relative_to(tmp_path)
    assert (first.rebuilds, first.applied_count) == (1, 2)
    # a new reader (another worker) opens the file as it is: nothing rebuilt or applied
    second = LakeData(tmp_path)
    assert _every(second) == seen and (second.rebuilds, second.applied_count) == (0, 0)
    # a batch committed later: the first reader to look applies it alone, the other sees it
    later = [("p6", "Al", "Smithson", "MRN-006", "1990-01-01"), ("p3", "Cy", "Jonas", "MRN-003", "1988-01-30")]
    _commit(tmp_path, later)
    assert _ids(second.search("smith")) == (["p6", "p1", "p2"], 3)
    assert (second.rebuilds, second.applied_count) == (0, 1)
    assert _every(first) == _every(second) and first.applied_count == 2
    assert _ids(first.search("jones")) == ([], 0) and first.input_hash("p6") == "h-p6"


def test_a_compaction_or_a_broken_file_rebuilds_the_index(tmp_path: Path) -> None:
    _commit(tmp_path, PEOPLE[:3])
    _commit(tmp_path, [*PEOPLE[3:], ("p1", "Ana", "Smyth", "MRN-001", "1957-09-17")])
    data = LakeData(tmp_path)
    seen = _every(data)
    assert _ids(data.search("smyth")) == (["p1"], 1) and data.rebuilds == 1
    outputs = OutputStore(tmp_path)
    with outputs.writer():
        assert outputs.compact() == 2
    assert _every(data) == seen and data.rebuilds == 2 and data.applied_count == 3  # the one merged batch
    other = LakeData(tmp_path)  # opens the rebuilt file as it is
    assert _every(other) == seen and other.rebuilds == 0
    # a damaged file (or one of another schema version) is rebuilt by the next reader to open it
    assert data.index_path.stat().st_mode & 0o077 == 0  # owner-only: it holds names and MRNs
    data.index_path.write_bytes(b"not a database" * 100)
    fresh = LakeData(tmp_path)
    assert _every(fresh) == seen and fresh.rebuilds == 1
    data.index_path.write_bytes(b"damaged under a reader" * 100)
    assert _every(data) == seen and data.rebuilds == 3  # the reader's query failed: checked, rebuilt
    with closing(sqlite3.connect(fresh.index_path)) as db:
        db.execute("PRAGMA user_version = 1")
    again = LakeData(tmp_path)
    assert _every(again) == seen and again.rebuilds == 1


def test_workers_opening_at_once_build_the_index_once(tmp_path: Path) -> None:
    _commit(tmp_path, PEOPLE[:2])
    _commit(tmp_path, PEOPLE[2:])
    readers = [LakeData(tmp_path) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:  # each its own lock file handle: they queue on the file lock
        seen = list(pool.map(_every, readers))
    assert all(s == seen[0] for s in seen) and seen[0][0] == (["p1", "p2"], 5)
    assert sum(r.rebuilds for r in readers) == 1 and sum(r.applied_count for r in readers) == 2


def test_a_store_it_cannot_write_gets_a_private_index_removed_at_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carelens.server.lake_data as lake_data

    _commit(tmp_path, PEOPLE)
    opened, at_exit = lake_data._private, []

    def refuse_the_store(path: Path) -> object:
        if tmp_path in path.parents:
            raise PermissionError("read-only store")
        return opened(path)

    monkeypatch.setattr(lake_data, "_private", refuse_the_store)
    monkeypatch.setattr(lake_data.atexit, "register", lambda *call: at_exit.append(call))
    data = LakeData(tmp_path)
    assert _ids(data.search("smith")) == (["p1", "p2"], 2)
    folder = data.index_path.parent
    assert tmp_path not in folder.parents and folder.stat().st_mode & 0o077 == 0  # private, outside the store
    ((remove, *args),) = at_exit
    remove(*args)
    assert not folder.exists()  # what runs at exit removes the patients' names
