"""Run a function in a forked helper process and get its return value back.

For CPU-bound work that holds the GIL (JSON parsing), on machines with a spare core. The child
is a ``fork`` of the caller, so the function needs no pickling, only its return value does. The
child dies with its parent (Linux ``PR_SET_PDEATHSIG``): killing the caller with SIGKILL leaves
no helper behind still writing. An exception in the child comes back as :class:`HelperFailed`
naming its type only: a message may quote the data being read.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1


class HelperFailed(RuntimeError):
    """A helper process raised, or ended without a result (killed, out of memory)."""


def can_fork() -> bool:
    """True where helpers can be forked (Linux: ``fork`` plus a parent-death signal)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def spare_cores() -> int:
    """CPU cores this process may run on, beyond the one it runs on."""
    return max(len(os.sched_getaffinity(0)) - 1, 0)


def cores_to_use(asked: int | None, most: int = 4) -> int:
    """``asked`` (a setting), or one per core this process may run on, at most ``most``."""
    return asked or min(spare_cores() + 1, most)


class Forked(Generic[T]):
    """``fn()`` running in a forked child; :meth:`result` waits for its return value.

    Fork before starting threads of your own: a child gets a copy of the memory, not of the
    other threads."""

    def __init__(self, fn: Callable[[], T]) -> None:
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_child, args=(fn, send, os.getpid()), daemon=True)
        self._process.start()
        send.close()

    def result(self) -> T:
        """The child's return value; raises :class:`HelperFailed` if it raised or died."""
        try:
            status, value = self._receive.recv()
        except EOFError:
            status, value = "error", "ended without a result"
        finally:
            self._receive.close()
            self._process.join()
        if status != "ok":
            raise HelperFailed(f"helper process failed: {value} (exit code {self._process.exitcode})")
        return value


class Claims:
    """The indices ``0 .. count-1`` handed out one at a time across forked processes, each to
    whichever process asks first (make it before forking; iterate it in each process)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._next = multiprocessing.get_context("fork").Value("q", 0) if count else None

    def __iter__(self) -> Iterator[int]:
        if self._next is None:
            return
        while True:
            with self._next.get_lock():
                index = self._next.value
                self._next.value = index + 1
            if index >= self.count:
                return
            yield index


def _child(fn: Callable[[], Any], send: Connection, parent: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the death signal was set
        os._exit(1)
    try:
        value = fn()
    except BaseException as err:  # reported to the parent, by type only
        send.send(("error", type(err).__name__))
    else:
        send.send(("ok", value))
    finally:
        send.close()
