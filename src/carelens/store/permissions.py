"""Owner-only files: the store holds PHI, password hashes and keys, so everything carelens makes
is 0700 (folders) / 0600 (files), and a store that others can read is named at start-up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
CHECK_DEPTH = 2  # the store and two levels below: app.sqlite, keys, lake/<table>, fhir/, outputs/...


def private_umask() -> int:
    """Make every file this process creates owner-only (0600 / 0700); returns the old umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """``mkdir -p`` with mode 0700 for what it makes; returns ``path``."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for made in missing:
        made.chmod(0o700)
    return path


def write_private(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Write ``data`` to a new 0600 file (``exclusive``: fail with FileExistsError if it exists)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def too_open(store: Path, depth: int = CHECK_DEPTH) -> list[tuple[Path, int]]:
    """Paths under ``store`` (to ``depth`` levels) that group or others may read, write or enter,
    with their modes."""
    found: list[tuple[Path, int]] = []
    store = Path(store)
    if not store.exists():
        return found
    level = [store]
    for _ in range(depth + 1):
        below: list[Path] = []
        for path in level:
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & 0o077:
                found.append((path, stat.S_IMODE(st.st_mode)))
            if stat.S_ISDIR(st.st_mode):
                try:
                    below.extend(sorted(path.iterdir()))
                except OSError:
                    continue
        level = below
    return found


def store_warning(store: Path) -> str | None:
    """One line naming how open the store is (None when owner-only)."""
    found = too_open(store)
    if not found:
        return None
    path, mode = found[0]
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return (
        f"warning: the store {store} is open to other users ({path} is {mode:04o}{more}); "
        f"it holds PHI and credentials: run chmod -R go-rwx {store}"
    )
