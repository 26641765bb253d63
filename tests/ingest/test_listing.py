"""The list of files an ingest reads: reading order, what is left out, the list on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from carelens.core.errors import UsageError
from carelens.core.forked import Forked
from carelens.ingest.listing import FileList, list_files


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")


def test_folder_order_referenced_types_first_then_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "export"
    touch(
        root / "Observation.ndjson",
        root / "Patient.001.ndjson",
        root / "Patient.000.ndjson",
        root / "a.json",
        root / "Organization.ndjson",
        root / "sub" / "b.json",
        root / "sub" / "Patient.ndjson",
        root / "sub-2" / "c.json",
        root / "sub" / "deeper" / "d.json",
    )
    listed = list_files([root], tmp_path)
    names = [str(path.relative_to(root)) for path, _ in listed]
    assert names == [
        "Patient.000.ndjson",
        "Patient.001.ndjson",
        "Organization.ndjson",
        "Observation.ndjson",
        "a.json",
        "sub/Patient.ndjson",
        "sub/b.json",
        "sub/deeper/d.json",
        "sub-2/c.json",
    ]
    assert all(path.is_absolute() and not named for path, named in listed)


def test_hidden_files_and_links_to_folders_left_out(tmp_path: Path) -> None:
    root = tmp_path / "in"
    touch(root / ".hidden.json", root / "seen.json", tmp_path / "elsewhere" / "outside.json")
    (root / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert [path.name for path, _ in list_files([root], tmp_path)] == ["seen.json"]


def test_named_files_keep_their_flag_and_order(tmp_path: Path) -> None:
    touch(tmp_path / "z.vcf", tmp_path / "dir" / "a.json")
    listed = list(list_files([tmp_path / "z.vcf", tmp_path / "dir"], tmp_path))
    assert listed == [((tmp_path / "z.vcf").absolute(), True), ((tmp_path / "dir" / "a.json").absolute(), False)]


def test_missing_path_is_a_usage_error_and_leaves_no_list(tmp_path: Path) -> None:
    touch(tmp_path / "in" / "a.json")
    with pytest.raises(UsageError, match="no such file or folder"):
        list_files([tmp_path / "in", tmp_path / "missing"], tmp_path / "in")
    assert not (tmp_path / "in" / "files").exists()


def test_file_list_indexes_odd_names_and_reads_in_a_forked_process(tmp_path: Path) -> None:
    odd = [tmp_path / "naïve name.json", tmp_path / "line\nbreak.json", Path(os.fsdecode(b"/x/\xff-not-utf8.json"))]
    listed = FileList(tmp_path, "list").extend((path, i == 1) for i, path in enumerate(odd))
    assert len(listed) == 3
    assert listed[2] == (odd[2], False) and listed[1] == (odd[1], True)
    assert Forked(lambda: listed[0]).result() == (odd[0], False)
    assert list(listed.select(lambda path: "break" in path.name, "picked")) == [(odd[1], True)]
    listed.close()
    assert not (tmp_path / "list").exists()
