"""The audit chain's keys and its sealed head, kept outside the database.

``<audit dir>/audit.key`` (0600, made on first use) holds an HMAC key that seals every audit row
and an Ed25519 key that signs checkpoints of the chain's head. ``audit-head.json`` is the newest
head (sealed with the HMAC key), rewritten after every commit that appends rows;
``audit-checkpoints.jsonl`` keeps the checkpoints exported with ``carelens audit checkpoint``.
Someone who can rewrite the database but not this folder cannot recompute the chain, and
truncating or wiping the log is seen against the sealed head. Anchor exported checkpoints
elsewhere (a ticket, a WORM bucket) to catch someone who holds the folder too.

The folder: ``CARELENS_AUDIT_DIR``, else the SQLite database's folder (the store), else the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from carelens.core.config import load_settings
from carelens.core.errors import InputError
from carelens.store.permissions import private_dir, write_private

KEY_FILE, HEAD_FILE, CHECKPOINTS_FILE = "audit.key", "audit-head.json", "audit-checkpoints.jsonl"
CHECKPOINT_TYPE, HEAD_TYPE = "carelens.audit.checkpoint/1", "carelens.audit.head/1"
_bound: dict[str, Path] = {}
_keys: dict[Path, AuditKeys] = {}
_head_fds: dict[tuple[Path, int], int] = {}
_head_lock = threading.Lock()
MAX_OPEN_HEADS = 16
_lock = threading.Lock()


def canonical(obj: dict[str, Any]) -> str:
    """Sorted keys, no spaces: the text a MAC or signature covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class AuditKeys:
    """The row-sealing HMAC key and the checkpoint-signing Ed25519 key of one audit folder."""

    folder: Path
    mac_key: bytes
    signing_key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        return self.signing_key.public_key().public_bytes_raw().hex()

    def derive(self, purpose: str) -> bytes:
        """A key for another purpose (the web forms' CSRF binding), derived from the MAC key."""
        return hmac.new(self.mac_key, b"carelens-derive|" + purpose.encode(), hashlib.sha256).digest()

    def mac(self, text: str) -> str:
        return hmac.new(self.mac_key, text.encode(), hashlib.sha256).hexdigest()

    def head(self, last_id: int, last_hash: str, ts: str) -> dict[str, Any]:
        """The head as the head file keeps it, sealed with the HMAC key (cheap enough for every
        commit; ``checkpoint`` signs the exported ones)."""
        body = {"type": HEAD_TYPE, "last_id": last_id, "last_hash": last_hash, "ts": ts}
        return {**body, "mac": self.mac(canonical(body))}

    def checkpoint(self, last_id: int, last_hash: str, ts: str) -> dict[str, Any]:
        """A signed statement of the head: verifiable by anyone holding ``public_key``."""
        body = {"type": CHECKPOINT_TYPE, "last_id": last_id, "last_hash": last_hash, "ts": ts, "key": self.public_key}
        return {**body, "signature": self.signing_key.sign(canonical(body).encode()).hex()}


def bind(url: str, folder: Path) -> None:
    """Keep the audit keys of the database at ``url`` in ``folder`` (tests, embedding)."""
    _bound[url] = Path(folder)


def bind_store(url: str, store: Path) -> None:
    """A server's or command's database outside the store (PostgreSQL) keeps its audit keys in
    the store, unless bound already or ``CARELENS_AUDIT_DIR`` says where."""
    if not url.startswith("sqlite") and url not in _bound and load_settings().audit_dir is None:
        _bound[url] = Path(store)


def audit_dir(url: str) -> Path:
    """Where the keys and signed head of the database at ``url`` live."""
    if url in _bound:
        return _bound[url]
    env = load_settings().audit_dir
    if env is not None:
        return env
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.split(":///", 1)[1]).resolve().parent
    return load_settings().store


def load_keys(folder: Path, create: bool = True) -> AuditKeys | None:
    """The folder's keys (made with 0600 permissions when ``create`` and absent), else None."""
    folder = Path(folder).resolve()
    with _lock:
        if folder in _keys:
            return _keys[folder]
        path = folder / KEY_FILE
        if not path.exists():
            if not create:
                return None
            private_dir(folder)
            raw = {"mac_key": secrets.token_hex(32), "signing_key": secrets.token_hex(32)}
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                write_private(path, json.dumps(raw).encode(), exclusive=True)
        try:
            raw = json.loads(path.read_text())
            keys = AuditKeys(
                folder,
                bytes.fromhex(raw["mac_key"]),
                Ed25519PrivateKey.from_private_bytes(bytes.fromhex(raw["signing_key"])),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"the audit key file {path} is unreadable; restore it from backup") from err
        _keys[folder] = keys
        return keys


def check_signature(checkpoint: dict[str, Any], public_key: str | None = None, keys: AuditKeys | None = None) -> bool:
    """Whether ``checkpoint`` carries a valid signature (by ``public_key`` when given), or, for a
    head file, a valid seal under ``keys``."""
    if checkpoint.get("type") == HEAD_TYPE:
        try:
            body = {k: checkpoint[k] for k in ("type", "last_id", "last_hash", "ts")}
        except KeyError:
            return False
        return keys is not None and hmac.compare_digest(keys.mac(canonical(body)), str(checkpoint.get("mac")))
    try:
        body = {k: checkpoint[k] for k in ("type", "last_id", "last_hash", "ts", "key")}
        key = public_key or body["key"]
        if body["key"] != key or body["type"] != CHECKPOINT_TYPE:
            return False
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(
            bytes.fromhex(checkpoint["signature"]), canonical(body).encode()
        )
    except (KeyError, ValueError, TypeError, InvalidSignature):
        return False
    return True


def _head_fd(folder: Path) -> int:
    """This process's open descriptor of the head file (one per process: ``flock`` excludes
    other processes only through their own descriptions)."""
    key = (folder, os.getpid())
    fd = _head_fds.get(key)
    if fd is None:
        if len(_head_fds) >= MAX_OPEN_HEADS:  # many stores in one process (tests): reopen later
            for old in _head_fds.values():
                os.close(old)
            _head_fds.clear()
        fd = _head_fds[key] = os.open(folder / HEAD_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    return fd


def write_head(keys: AuditKeys, last_id: int, last_hash: str, ts: str) -> None:
    """Record the sealed head after a commit, in place under a lock; never moves it back
    (processes may finish out of order)."""
    with _head_lock:
        fd = _head_fd(keys.folder)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            try:
                current = json.loads(os.pread(fd, 65536, 0) or b"{}")
            except ValueError:
                current = {}
            if int(current.get("last_id", -1)) >= last_id:
                return
            data = canonical(keys.head(last_id, last_hash, ts)).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def read_head(folder: Path) -> dict[str, Any] | None:
    """The signed head file's content, or None when there is none (or it is not JSON)."""
    try:
        return json.loads((Path(folder) / HEAD_FILE).read_text())
    except (OSError, ValueError):
        return None


def save_checkpoint(keys: AuditKeys, checkpoint: dict[str, Any]) -> None:
    """Append an exported checkpoint to the folder's checkpoint log."""
    path = keys.folder / CHECKPOINTS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (canonical(checkpoint) + "\n").encode())
    finally:
        os.close(fd)


def saved_checkpoints(folder: Path) -> list[dict[str, Any]]:
    """The checkpoints of the folder's checkpoint log (unparsable lines come back as ``{}``, which fail)."""
    path = Path(folder) / CHECKPOINTS_FILE
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({})
    return out
