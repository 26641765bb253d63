"""Starting the partner network on a real network: the hub is a Flower SuperLink, each site a
SuperNode; a training or validation job is a ``flwr run`` of the carelens Flower App (a folder
holding only ``pyproject.toml`` that names ``carelens.network.server_app:app`` and
``carelens.network.client_app:app``). Beyond loopback the hub runs only with TLS and Flower's
node authentication (:mod:`carelens.network.security`). A hub or node stops everything it
started on any stop signal (:func:`serve`) and dies with its command (``PR_SET_PDEATHSIG``).
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    "local-steps": 0,
    "site-weighting": "examples",
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


def start_hub(
    store: Path, host: str = "127.0.0.1", port: int = DEFAULT_HUB_PORT, log: Path | None = None, tls: Path | None = None
) -> Any:
    """Start the hub's SuperLink (returns the process; it runs until stopped): with TLS and node
    authentication from the files in ``tls`` (required unless ``host`` is loopback)."""
    home = network_dir(store) / "hub"
    return _spawn(hub_command(host, port, tls), _env(home), log or home / "superlink.log")


def hub_command(host: str, port: int, tls: Path | None) -> list[str]:
    """The SuperLink command line (see :func:`start_hub`)."""
    from carelens.network.security import hub_tls_files, require_tls

    require_tls(host, tls is not None, "hub host")
    cmd = [_bin("flower-superlink"), "--host", host, "--port", str(port), "--disable-runtime-dependency-installation"]
    if tls is None:
        return [*cmd, "--insecure"]
    ca, cert, key = hub_tls_files(tls)
    return [*cmd, "--ssl-ca-certfile", str(ca), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
            "--enable-supernode-auth"]  # fmt: skip


def start_node(
    site: str,
    data: Path,
    hub: str,
    store: Path,
    port: int | None = None,
    capture: Path | None = None,
    log: Path | None = None,
    threads: int | None = None,
    root_cert: Path | None = None,
    auth_key: Path | None = None,
) -> Any:
    """Start a site's SuperNode connected to ``hub`` (host:port) with the site's data path
    (``threads``: torch CPU threads for the site's training and scoring); ``root_cert`` (the
    hub's CA) and ``auth_key`` (the site's private key) are required unless the hub is loopback."""
    check_site_name(site)
    home = network_dir(store) / "sites" / site
    config: dict[str, Any] = {"site": site, "data": str(Path(data).resolve()), "outbound-log": str(home)}
    config["site-state"] = str(home / "site-local")  # FedBN: the layers that never leave the site
    if capture is not None:
        config["capture"] = str(Path(capture).resolve())
    if threads:
        config["threads"] = int(threads)
    node_config = " ".join(f"{k}={_toml(v)}" for k, v in config.items())
    cmd = [_bin("flower-supernode"), "--superlink", hub, "--port", str(port or free_port())]
    cmd += ["--node-config", node_config, *node_security(hub, root_cert, auth_key)]
    return _spawn(cmd, _env(home), log or home / "supernode.log")


def node_security(hub: str, root_cert: Path | None, auth_key: Path | None) -> list[str]:
    """The SuperNode's TLS and authentication options (``--insecure`` only towards loopback)."""
    from carelens.network.security import host_of, require_tls

    require_tls(host_of(hub), root_cert is not None and auth_key is not None, "hub")
    if root_cert is None and auth_key is None:
        return ["--insecure"]
    if root_cert is None or auth_key is None:
        raise UsageError("TLS to the hub needs both the hub's CA certificate and this site's key")
    for path in (root_cert, auth_key):
        if not Path(path).is_file():
            raise UsageError(f"{Path(path).name}: file not found")
    return ["--root-certificates", str(Path(root_cert).resolve()), "--auth-supernode-private-key",
            str(Path(auth_key).resolve())]  # fmt: skip


def _cli_env(hub: str, store: Path, root_cert: Path | None) -> dict[str, str]:
    """The environment of the ``flwr`` command line, its config naming the hub."""
    from carelens.network.security import host_of, require_tls

    require_tls(host_of(hub), root_cert is not None, "hub")
    home = network_dir(store) / "cli"
    env = _env(home)
    security = f'root-certificates = "{Path(root_cert).resolve()}"' if root_cert else "insecure = true"
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "carelens"\n\n[superlink.carelens]\naddress = "{hub}"\n{security}\n',
        encoding="utf-8",
    )
    return env


def register_site(hub: str, store: Path, public_key: Path, root_cert: Path | None) -> str:
    """Register a site's public key with the hub (only registered nodes may connect); returns
    Flower's answer (the node id)."""
    env = _cli_env(hub, store, root_cert)
    cmd = [_bin("flwr"), "supernode", "register", str(Path(public_key).resolve()), "carelens", "--format", "json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode:
        from carelens.core.output import plain

        lines = [line for line in plain(proc.stdout + proc.stderr).splitlines() if line.strip()]
        raise InputError(f"the hub refused the site key: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout.strip()


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
    """Stop a process started here and everything it started: its process group and every
    descendant (Flower starts some helpers in sessions of their own), SIGTERM first, SIGKILL to
    whatever is left after ``grace`` seconds; also when the process itself has already ended."""
    pids = {proc.pid, *descendants(proc.pid)}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(proc.pid, sig)
        for pid in pids:
            _signal(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reaps the leader, so that only live members keep the group
            pids = {pid for pid in pids if _alive(pid)}
            if not pids and not _signal_group(proc.pid, 0):
                return
            time.sleep(0.05)
    proc.poll()


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux ``/proc``; none elsewhere)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return _signal(pid, 0) and not sys.platform.startswith("linux")
    return state != "Z"


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when no process of it is left."""
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):  # PermissionError: a zombie-only group on some kernels
        return False
    return True


@dataclass
class LoopbackNetwork:
    """A hub and its site nodes running on this machine (see :func:`loopback_network`)."""

    address: str
    hub: Any
    nodes: dict[str, Any] = field(default_factory=dict)


@contextmanager
def loopback_network(
    store: Path,
    sites: dict[str, Path],
    capture: Path | None = None,
    threads: int | None = None,
    grace: float = 5.0,
) -> Iterator[LoopbackNetwork]:
    """A hub on a free loopback port and one node per site (name -> data file), stopped with everything
    they started on leaving the block. ``capture``: a folder per site for what leaves it; ``threads``: torch
    threads per site (sites share the machine's cores)."""
    port = free_port()
    net = LoopbackNetwork(f"127.0.0.1:{port}", start_hub(store, port=port))
    try:
        wait_for_port("127.0.0.1", port, proc=net.hub)
        for site, path in sites.items():
            where = capture / site if capture is not None else None
            net.nodes[site] = start_node(site, path, net.address, store, capture=where, threads=threads)
        yield net
    finally:
        for proc in [*net.nodes.values(), net.hub]:
            stop(proc, grace=grace)


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


def run_job(
    hub: str,
    store: Path,
    settings: dict[str, Any],
    timeout: float = 3600,
    quiet: bool = False,
    root_cert: Path | None = None,
) -> dict:
    """Submit a training or validation job to the hub with ``flwr run`` and wait for its result
    (``root_cert``: the hub's CA certificate, required unless the hub is loopback)."""
    unknown = set(settings) - set(RUN_DEFAULTS)
    if unknown:
        raise InputError(f"unknown job setting(s): {', '.join(sorted(unknown))}")
    net = network_dir(store)
    env = _cli_env(hub, store, root_cert)
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
