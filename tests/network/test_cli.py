"""The network commands fail fast with one-line reasons before touching the network."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _carelens(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARELENS_STORE": str(store)}
    return subprocess.run(
        [sys.executable, "-m", "carelens.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_bad_invocations_exit_with_one_line_reasons(tmp_path: Path) -> None:
    unknown = _carelens("hub", "validate", "no-such-model", store=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.strip().splitlines() == [
        "error: no model 'no-such-model' in the registry (0 entries): see 'carelens models list'"
    ]
    strategy = _carelens("hub", "train", "--strategy", "fedsgd", store=tmp_path)
    assert strategy.returncode == 2 and "unknown strategy 'fedsgd'" in strategy.stderr
    for option, value, reason in (
        ("--image-size", "8", "--image-size must be between 28 and 512"),
        ("--arch", "vit", "unknown architecture 'vit'"),
        ("--site-weighting", "by-size", "unknown site weighting 'by-size'"),
    ):
        bad = _carelens("hub", "train", option, value, store=tmp_path)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and reason in bad.stderr
    site = _carelens("node", "start", "--site", "bad name!", "--data", str(tmp_path / "x.npz"), store=tmp_path)
    assert site.returncode == 2 and site.stderr.strip().splitlines() == [
        "error: site name must be 1-40 letters, digits, '.', '_' or '-'"
    ]


def test_node_refuses_to_start_on_data_it_cannot_use(tmp_path: Path) -> None:
    missing = _carelens("node", "start", "--site", "north", "--data", str(tmp_path / "x.npz"), store=tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == ["error: site data x.npz: file not found"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    bad = _carelens("node", "start", "--site", "north", "--data", str(tmp_path / "bad.npz"), store=tmp_path)
    assert bad.returncode == 1 and "not a readable .npz" in bad.stderr
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 20)  # a zip cut short
    cut = _carelens("node", "start", "--site", "north", "--data", str(tmp_path / "cut.npz"), store=tmp_path)
    assert cut.returncode == 1 and "not a readable .npz" in cut.stderr
    assert "node started" not in missing.stderr + bad.stderr + cut.stderr and not (tmp_path / "network").exists()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_hub_stops_everything_it_started_on_any_stop_signal(sig: signal.Signals, tmp_path: Path) -> None:
    from carelens.network.runtime import descendants, free_port, wait_for_port

    port = free_port()
    env = {**os.environ, "CARELENS_STORE": str(tmp_path)}
    cmd = [sys.executable, "-m", "carelens.cli", "hub", "start", "--port", str(port)]
    hub = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=90)
        [superlink] = _children(hub.pid)
        assert os.getpgid(superlink) == superlink != os.getpgid(hub.pid)  # its own group, helpers in it
        deadline = time.monotonic() + 30
        while not descendants(superlink) and time.monotonic() < deadline:  # Flower's superexec starts
            time.sleep(0.2)
        tree = [superlink, *descendants(superlink)]
        hub.send_signal(sig)
        assert hub.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(_live(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in tree if _live(pid)], "a Flower process outlived the hub"
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # the port is free again
    finally:
        if hub.poll() is None:
            hub.kill()
        hub.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG: Linux")
def test_flower_processes_die_with_a_killed_hub_command(tmp_path: Path) -> None:
    from carelens.network.runtime import descendants, free_port, wait_for_port

    port = free_port()
    env = {**os.environ, "CARELENS_STORE": str(tmp_path)}
    cmd = [sys.executable, "-m", "carelens.cli", "hub", "start", "--port", str(port)]
    hub = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    group = None
    try:
        wait_for_port("127.0.0.1", port, timeout=90)
        [group] = _children(hub.pid)
        deadline = time.monotonic() + 30
        while not descendants(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        tree = [group, *descendants(group)]
        hub.kill()  # SIGKILL: no handler runs; the parent-death signal stops the SuperLink
        hub.wait()
        deadline = time.monotonic() + 20
        while any(_live(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in tree if _live(pid)], "a Flower process outlived the killed hub command"
    finally:
        if group is not None and _group_alive(group):
            os.killpg(group, signal.SIGKILL)


def _live(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
