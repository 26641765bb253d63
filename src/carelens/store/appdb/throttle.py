"""Login throttling per account and per address: after a few failures each further attempt waits
twice as long (refused, even with the right password, until then); an account locks after
``LOCK_AFTER`` failures in a row until an admin unlocks it. Unknown user names are throttled
the same way, so the answers do not tell which accounts exist."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from carelens.store.appdb import clock
from carelens.store.appdb.models import LoginThrottle

ACCOUNT_FREE, ADDRESS_FREE = 3, 10  # failures before any wait
LOCK_AFTER = 10  # account failures in a row that lock it
MAX_WAIT_S = 900.0
FORGET_AFTER_S = 86400.0  # failures older than a day (and no lock) are forgotten


@dataclass(frozen=True)
class Verdict:
    """Whether a login may be tried now; else how long to wait or that the account is locked."""

    allowed: bool
    wait_s: float = 0.0
    locked: bool = False


def _keys(username: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(f"user:{username.lower()[:64]}", ACCOUNT_FREE)]
    if address:
        keys.append((f"addr:{address[:64]}", ADDRESS_FREE))
    return keys


def _seconds_until(moment: str) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return (datetime.strptime(moment, fmt) - datetime.strptime(clock.now_iso(), fmt)).total_seconds()


def check(s: Session, username: str, address: str | None) -> Verdict:
    """May ``username`` from ``address`` try a password now?"""
    now = clock.now_iso()
    wait = 0.0
    for key, _ in _keys(username, address):
        row = s.get(LoginThrottle, key)
        if row is None:
            continue
        if row.locked:
            return Verdict(False, locked=True)
        if row.blocked_until and row.blocked_until > now:
            wait = max(wait, _seconds_until(row.blocked_until))
    return Verdict(wait <= 0, wait)


def failed(s: Session, username: str, address: str | None) -> Verdict:
    """Count a failed login; returns what the next attempt faces. Unlocked entries quiet for
    ``FORGET_AFTER_S`` are dropped first (so made-up user names do not pile up)."""
    now = clock.now_iso()
    stale = clock.now_iso(-FORGET_AFTER_S)  # a block ends at most MAX_WAIT_S after the last failure
    s.execute(delete(LoginThrottle).where(LoginThrottle.locked.is_(False), LoginThrottle.last_failure_at < stale))
    for key, free in _keys(username, address):
        row = s.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, last_failure_at=now, locked=False)
            s.add(row)
        row.failures += 1
        row.last_failure_at = now
        if row.failures > free:
            row.blocked_until = clock.now_iso(min(2.0 ** (row.failures - free), MAX_WAIT_S))
        if key.startswith("user:") and row.failures >= LOCK_AFTER:
            row.locked = True
    s.flush()
    return check(s, username, address)


def succeeded(s: Session, username: str, address: str | None) -> None:
    """A good password: forget the account's and the address's failures."""
    s.execute(delete(LoginThrottle).where(LoginThrottle.key.in_([k for k, _ in _keys(username, address)])))


def unlock(s: Session, username: str) -> bool:
    """Clear an account's failures and lock (admin); returns whether there was anything to clear."""
    row = s.get(LoginThrottle, f"user:{username.lower()[:64]}")
    if row is None:
        return False
    s.delete(row)
    return True


def locked_users(s: Session) -> set[str]:
    """The (lower-cased) names of locked accounts."""
    return {k.removeprefix("user:") for k in s.scalars(select(LoginThrottle.key).where(LoginThrottle.locked.is_(True)))}
