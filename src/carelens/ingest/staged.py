"""A helper process's staged chunks kept in a file instead of memory: one JSON line a chunk, its
manifest and what its files ingested and quarantined. Neither the helper nor the process that
commits the chunks holds a record for each file of the batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


class StagedFile:
    """Appends a line a staged chunk to ``path`` (from the writer's background thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "ab")  # noqa: SIM115 - closed by close()

    def add(self, manifest: dict[str, Any], outcome: dict[str, Any]) -> None:
        self._file.write(orjson.dumps({"manifest": manifest, "outcome": outcome}) + b"\n")

    def close(self) -> None:
        self._file.close()


def read_staged(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each staged chunk's manifest and outcome, in the order they were staged, a line at a time."""
    with open(path, "rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            yield record["manifest"], record["outcome"]
