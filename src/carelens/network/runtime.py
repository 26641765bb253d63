"""Starting the partner network on a real network: the hub is a Flower SuperLink, each site a
SuperNode; a training or validation job is a ``flwr run`` of the carelens Flower App (a folder
holding only ``pyproject.toml`` that names ``carelens.network.server_app:app`` and
``carelens.network.client_app:app``). A hub or node stops everything it started on any stop
signal (:func:`serve`) and dies with its command (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from carelens.core.errors import InputError, UsageError

DEFAULT_HUB_PORT = 9092
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
APP_NAME = "carelens-federation"

RUN_DEFAULTS: dict[str, Any] = {
    "mode": "train",
    "store": "",
    "result": "",
    "rounds": 3,
    "strategy": "fedavg",
    "min-sites": 2,
    "expected-sites": 2,
    "local-epochs": 1,
    "lr": 0.001,
    "proximal-mu": 0.01,
    "dp-noise": 0.0,
    "dp-clip": 1.0,
    "secagg": True,
    "timeout": 300,
    "join-timeout": 120,
    "arch": "cnn",
    "image-size": 28,
    "seed": 0,
    "name": "carelens-federated-cnn",
    "version": "",
    "card": "",
    "cohort": "",
    "model": "",
    "split": "test",
}


def _bin(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise InputError(f"{name} not found: is flwr installed in this environment?")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_TELEMETRY_ENABLED": "0"}
    # Flower starts its helpers (flower-superexec, flwr-serverapp, ...) by name: find this environment's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def network_dir(store: Path) -> Path:
    return Path(store).resolve() / "network"


def start_hub(store: Path, host: str = "127.0.0.1", port: int = DEFAULT_HUB_PORT, log: Path | None = None) -> Any:
    """Start the hub's SuperLink (returns the process; it runs until stopped)."""
    home = network_dir(store) / "hub"
    cmd = [_bin("flower-superlink"), "--insecure", "--host", host, "--port", str(port)]
    cmd.append("--disable-runtime-dependency-installation")
    return _spawn(cmd, _env(home), log or home / "superlink.log")


def start_node(
    site: str,
    data: Path,
    hub: str,
    store: Path,
    port: int | None = None,
    capture: Path | None = None,
    log: Path | None = None,
    threads: int | None = None,
) -> Any:
    """Start a site's SuperNode connected to ``hub`` (host:port) with the site's data path
    (``threads``: torch CPU threads for the site's training and scoring)."""
    check_site_name(site)
    home = network_dir(store) / "sites" / site
    config: dict[str, Any] = {"site": site, "data": str(Path(data).resolve()), "outbound-log": str(home)}
    if capture is not None:
        config["capture"] = str(Path(capture).resolve())
    if threads:
        config["threads"] = int(threads)
    node_config = " ".join(f"{k}={_toml(v)}" for k, v in config.items())
    cmd = [_bin("flower-supernode"), "--insecure", "--superlink", hub, "--port", str(port or free_port())]
    cmd += ["--node-config", node_config]
    return _spawn(cmd, _env(home), log or home / "supernode.log")


def check_site_name(site: str) -> None:
    """Raise ``UsageError`` unless ``site`` is a valid site name."""
    from carelens.network.guard import SITE_NAME

    if not SITE_NAME.match(site):
        raise UsageError("site name must be 1-40 letters, digits, '.', '_' or '-'")


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> Any:
    """Start ``cmd`` in its own process group (its helpers join it), logging to ``log``; it gets
    SIGTERM if this process dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "ab")  # noqa: SIM115 - the child keeps it open
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None,
    )


def _die_with_parent(parent: int) -> Any:
    def setup() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the death signal was set
            os._exit(1)

    return setup


class Stopped(Exception):
    """A stop signal (SIGTERM, SIGINT, SIGHUP) reached a process serving the network."""


def serve(proc: Any) -> int:
    """Wait for ``proc`` (a hub or node); on SIGTERM, SIGINT or SIGHUP stop it and everything it
    started (its process group), so no Flower helper outlives the command holding its ports.
    Returns its exit status (0 when stopped by a signal)."""

    def stopping(signum: int, frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stopping) for sig in STOP_SIGNALS}
    try:
        return int(proc.wait())
    except (Stopped, KeyboardInterrupt):
        return 0
    finally:
        for sig in STOP_SIGNALS:  # a second signal while stopping must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop(proc: Any, grace: float = 5.0) -> None:
    """Stop a process started here and everything it started: SIGTERM to its process group (even
    when the process itself has already ended), SIGKILL to whatever is left after ``grace`` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _signal_group(proc.pid, sig):
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reaps the leader, so that only live members keep the group
            if not _signal_group(proc.pid, 0):
                break
            time.sleep(0.05)
        else:
            continue
        break
    proc.poll()


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when no process of it is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a zombie-only group on some kernels
        return False
    return True


def wait_for_port(host: str, port: int, timeout: float = 60.0, proc: Any = None) -> None:
    """Wait until something listens on ``host:port`` (fails early when ``proc`` has exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InputError(f"hub process exited with status {proc.returncode} before listening; see its log")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.5)
    raise InputError(f"hub at {host}:{port} did not start within {int(timeout)} s")


def _relay(stream: Any) -> None:
    """Flower's job log to stderr as it comes (its colour codes only at a terminal)."""
    from carelens.core.output import colour_allowed, plain

    keep = colour_allowed()
    for line in stream:
        sys.stderr.write(line if keep else plain(line))
        sys.stderr.flush()


def write_app(folder: Path) -> Path:
    """The carelens Flower App: only a ``pyproject.toml`` naming the carelens apps."""
    folder.mkdir(parents=True, exist_ok=True)
    config = "\n".join(f"{k} = {_toml(v)}" for k, v in RUN_DEFAULTS.items())
    (folder / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{APP_NAME}"
version = "1.0.0"
description = "carelens partner network: federated training and validation"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "carelens"

[tool.flwr.app.components]
serverapp = "carelens.network.server_app:app"
clientapp = "carelens.network.client_app:app"

[tool.flwr.app.config]
{config}
""",
        encoding="utf-8",
    )
    return folder


def run_job(hub: str, store: Path, settings: dict[str, Any], timeout: float = 3600, quiet: bool = False) -> dict:
    """Submit a training or validation job to the hub with ``flwr run`` and wait for its result."""
    unknown = set(settings) - set(RUN_DEFAULTS)
    if unknown:
        raise InputError(f"unknown job setting(s): {', '.join(sorted(unknown))}")
    net = network_dir(store)
    home = net / "cli"
    env = _env(home)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "carelens"\n\n[superlink.carelens]\naddress = "{hub}"\ninsecure = true\n',
        encoding="utf-8",
    )
    app = write_app(net / "app")
    result = net / "runs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.json"
    values = {**settings, "store": str(Path(store).resolve()), "result": str(result)}
    overrides = " ".join(f"{k}={_toml(v)}" for k, v in values.items())
    cmd = [_bin("flwr"), "run", str(app), "carelens", "--stream", "--run-config", overrides]
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, errors="replace")
    relay = threading.Thread(target=_relay, args=(proc.stdout,), daemon=True) if proc.stdout else None
    if relay is not None:
        relay.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise InputError(f"federated job did not finish within {int(timeout)} s") from None
    finally:
        if relay is not None:
            relay.join(timeout=5)
    if not result.exists():
        raise InputError(f"federated job failed (flwr run exit {proc.returncode}); see {net / 'hub'}/superlink.log")
    data = json.loads(result.read_text(encoding="utf-8"))
    if not data.get("ok") and "failures" not in data:  # the job itself failed: no result to show
        raise InputError(f"federated job failed at the hub: {data.get('reason', 'unknown reason')}")
    return data
