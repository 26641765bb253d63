"""Forked helper processes: their return value comes back, their failures come back by type
only, and they die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from carelens.core.forked import Forked, HelperFailed, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="helpers are forked on Linux only")
SECRET = "Quiviran Zebediah-Canary"


def test_return_value_comes_back() -> None:
    values = [3, 4]
    assert Forked(lambda: {"sum": sum(values), "pid": os.getpid()}).result()["sum"] == 7
    assert Forked(os.getpid).result() != os.getpid()


def test_exception_comes_back_by_type_only() -> None:
    def fails() -> None:
        raise ValueError(f"bad value {SECRET}")

    with pytest.raises(HelperFailed) as err:
        Forked(fails).result()
    assert "ValueError" in str(err.value) and SECRET not in str(err.value)


def test_killed_helper_is_reported() -> None:
    def dies() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(HelperFailed, match="ended without a result"):
        Forked(dies).result()


def test_helper_dies_with_its_parent(tmp_path: os.PathLike[str]) -> None:
    """SIGKILL the parent while its helper sleeps: the helper is gone too."""
    code = (
        "import os, time\n"
        "from carelens.core.forked import Forked\n"
        "helper = Forked(lambda: time.sleep(60))\n"
        "print(helper._process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.01)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
