"""TLS and node authentication whenever the hub is reachable beyond loopback (Flower's own)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carelens.core.errors import UsageError
from carelens.network.runtime import _cli_env, free_port, hub_command, node_security, wait_for_port
from carelens.network.security import is_loopback, make_certs, make_node_key

from .conftest import write_site


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("10.1.2.3", False), ("hub.example.org", False), ("::", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_no_plaintext_beyond_loopback(tmp_path: Path) -> None:
    assert "--insecure" in hub_command("127.0.0.1", 9092, None)
    for host in ("0.0.0.0", "10.1.2.3"):
        with pytest.raises(UsageError, match="needs TLS and node authentication"):
            hub_command(host, 9092, None)
    with pytest.raises(UsageError, match="needs TLS"):
        node_security("hub.example.org:9092", None, None)
    with pytest.raises(UsageError, match="needs TLS"):
        _cli_env("10.1.2.3:9092", tmp_path, None)  # hub train / validate / add-site
    assert node_security("127.0.0.1:9092", None, None) == ["--insecure"]


def test_tls_hub_and_node_command_lines(tmp_path: Path) -> None:
    make_certs(tmp_path / "certs", ["hub.example.org", "10.1.2.3"])
    keys = make_node_key(tmp_path / "keys", "north")
    cmd = hub_command("0.0.0.0", 9092, tmp_path / "certs")
    assert "--insecure" not in cmd and "--enable-supernode-auth" in cmd
    assert cmd[cmd.index("--ssl-certfile") + 1].endswith("server.pem")
    args = node_security("hub.example.org:9092", tmp_path / "certs" / "ca.crt", Path(keys["private_key"]))
    assert args[0] == "--root-certificates" and "--auth-supernode-private-key" in args and "--insecure" not in args
    with pytest.raises(UsageError, match="missing"):
        hub_command("0.0.0.0", 9092, tmp_path / "keys")  # not a certificate folder


def test_certificates_chain_to_the_ca_and_keys_are_private(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

    make_certs(tmp_path, ["hub.example.org", "10.1.2.3"])
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["hub.example.org"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    for secret in ("ca.key", "server.key"):
        assert stat.S_IMODE(os.stat(tmp_path / secret).st_mode) == 0o600
    keys = make_node_key(tmp_path / "k", "north")
    private = load_ssh_private_key(Path(keys["private_key"]).read_bytes(), None)  # as flower-supernode reads it
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(load_ssh_public_key(Path(keys["public_key"]).read_bytes()), ec.EllipticCurvePublicKey)
    assert stat.S_IMODE(os.stat(keys["private_key"]).st_mode) == 0o600
    with pytest.raises(UsageError, match="exists"):
        make_node_key(tmp_path / "k", "north")


def _carelens(*args: str, store: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "CARELENS_STORE": str(store)}
    return subprocess.Popen([sys.executable, "-m", "carelens.cli", *args], env=env, **kw)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_only_registered_sites_join_a_tls_hub(tmp_path: Path) -> None:
    store, certs, keys = tmp_path / "store", tmp_path / "certs", tmp_path / "keys"
    make_certs(certs, ["127.0.0.1"])
    make_node_key(keys, "north")
    make_node_key(keys, "south")
    port = free_port()
    hub = f"127.0.0.1:{port}"
    procs = [_carelens("hub", "start", "--port", str(port), "--tls", str(certs), store=store)]
    try:
        wait_for_port("127.0.0.1", port, timeout=90)
        added = subprocess.run(
            [sys.executable, "-m", "carelens.cli", "hub", "add-site", str(keys / "north.pub"), "--hub", hub,
             "--ca", str(certs / "ca.crt")],
            env={**os.environ, "CARELENS_STORE": str(store)}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        registered = str(json.loads(added.stdout)["node-id"])
        for site in ("north", "south"):
            data = write_site(tmp_path / f"{site}.npz")
            args = ["node", "start", "--site", site, "--data", str(data), "--hub", hub, "--ca", str(certs / "ca.crt")]
            procs.append(_carelens(*args, "--key", str(keys / f"{site}.key"), store=store, stderr=subprocess.PIPE))
        assert procs[2].wait(timeout=120) == 1  # south's key was never registered: refused, the node exits
        env = {**os.environ, "FLWR_HOME": str(store.resolve() / "network" / "cli")}
        online: list[str] = []
        deadline = time.monotonic() + 90
        while registered not in online and time.monotonic() < deadline:
            flwr = str(Path(sys.executable).with_name("flwr"))
            listed = subprocess.run(
                [flwr, "supernode", "list", "carelens", "--format", "json"],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            nodes = json.loads(listed.stdout).get("nodes", []) if listed.returncode == 0 else []
            online = [n["node-id"] for n in nodes if n.get("status") == "online"]
            time.sleep(1)
        assert online == [registered]
        assert procs[1].poll() is None  # north stays connected
    finally:
        for proc in reversed(procs):  # each command stops its own Flower processes on SIGTERM
            proc.terminate()
            proc.wait(timeout=60)
