"""The files an ingest reads, in reading order, listed on disk so that memory stays flat however
many there are (8 bytes a file: its offset in the list's file).

A folder is walked depth first: each folder's files (Bulk Data files of often-referenced types,
Patient, Practitioner, Organization, ..., first, so that references resolve as files are read
and few files wait for the end of the batch; then by name), then its subfolders by name. Only
one folder's names are held at a time. Hidden files are left out; links to folders are not
followed. A folder that cannot be listed is listed itself, so that the ingest quarantines it
with its reason instead of leaving its files out unsaid.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from carelens.core.errors import UsageError

REFERENCED_FIRST = (
    "Patient", "Group", "Person", "Organization", "Location", "Practitioner", "PractitionerRole",
    "Device", "Medication", "Substance", "Specimen", "Encounter", "EpisodeOfCare", "Condition",
    "Procedure", "Observation", "MedicationRequest", "DiagnosticReport", "ImagingStudy", "Claim",
)  # fmt: skip


class FileList:
    """Absolute paths, each with whether it was named directly (not found in a folder), kept in a
    file in ``folder``: one record ``0|1 path NUL`` a file. Indexing reads one record (``pread``:
    safe in threads and forked processes sharing the list)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / name
        self._file = open(self.path, "w+b")  # noqa: SIM115 - closed by close()
        self._offsets = array("q", [0])

    def append(self, path: str, named: bool) -> None:
        record = (b"1" if named else b"0") + os.fsencode(path) + b"\0"
        self._file.write(record)
        self._offsets.append(self._offsets[-1] + len(record))

    def extend(self, items: Iterable[tuple[Path, bool]]) -> FileList:
        for path, named in items:
            self.append(str(path), named)
        self._file.flush()
        return self

    def select(self, keep: Callable[[Path], bool], name: str) -> FileList:
        """A new list (beside this one) of the items whose path ``keep`` accepts, in order."""
        return FileList(self.path.parent, name).extend(item for item in self if keep(item[0]))

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> tuple[Path, bool]:
        start = self._offsets[index]
        record = os.pread(self._file.fileno(), self._offsets[index + 1] - start, start)
        return Path(os.fsdecode(record[1:-1])), record[:1] == b"1"

    def __iter__(self) -> Iterator[tuple[Path, bool]]:
        return (self[index] for index in range(len(self)))

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def list_files(paths: Iterable[Path], folder: Path) -> FileList:
    """Every file to look at under ``paths``, in reading order (see the module doc), listed in
    ``folder``; raises :class:`UsageError` for a path that does not exist."""
    listed = FileList(folder, "files")
    try:
        return listed.extend(_walk(paths))
    except BaseException:
        listed.close()
        raise


def _walk(paths: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from ((file, False) for file in _folder_files(path.absolute()))
        elif path.is_file():
            yield path.absolute(), True
        else:
            raise UsageError(f"no such file or folder: {path}")


def _folder_files(root: Path) -> Iterator[Path]:
    folders: list[Iterator[str]] = [iter([str(root)])]
    while folders:
        folder = next(folders[-1], None)
        if folder is None:
            folders.pop()
            continue
        try:
            files, subfolders = _entries(folder)
        except OSError:
            yield Path(folder)
            continue
        yield from (Path(folder, name) for name in sorted(files, key=_reading_order))
        folders.append(iter(sorted(os.path.join(folder, name) for name in subfolders)))


def _entries(folder: str) -> tuple[list[str], list[str]]:
    """The names of a folder's files (hidden ones left out) and of its subfolders."""
    files, subfolders = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.name)
            elif entry.is_file() and not entry.name.startswith("."):
                files.append(entry.name)
    return files, subfolders


def _reading_order(name: str) -> tuple[int, str]:
    kind = name.split(".", 1)[0]
    return (REFERENCED_FIRST.index(kind) if kind in REFERENCED_FIRST else len(REFERENCED_FIRST)), name
