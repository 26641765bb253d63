"""TLS and node authentication for a hub that other machines can reach (both built into Flower).

A hub listening anywhere but loopback must run with TLS (its certificate signed by a CA the
sites trust) and Flower's SuperNode authentication: only nodes whose public key the hub has
registered may connect. ``make_certs`` writes a private CA and the hub's certificate;
``make_node_key`` a site's EC key pair in the OpenSSH format Flower reads.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any

from carelens.core.errors import UsageError

CA_CERT, SERVER_CERT, SERVER_KEY = "ca.crt", "server.pem", "server.key"
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(address: str) -> str:
    """The host of ``host:port`` (``[v6]:port`` too)."""
    return address.rsplit(":", 1)[0] if ":" in address else address


def hub_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """The CA certificate, hub certificate and hub key in ``folder`` (made by :func:`make_certs`)."""
    files = (folder / CA_CERT, folder / SERVER_CERT, folder / SERVER_KEY)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"--tls {folder}: missing {', '.join(missing)} (make them with `carelens hub certs`)")
    return files


def require_tls(host: str, given: bool, what: str) -> None:
    """Refuse to reach beyond loopback without TLS and node authentication."""
    if not given and not is_loopback(host):
        raise UsageError(
            f"{what} {host} is not loopback: it needs TLS and node authentication "
            "(see `carelens hub certs`, `carelens node keygen` and `carelens hub add-site`)"
        )


def make_certs(folder: Path, hosts: list[str], days: int = 825) -> dict[str, Any]:
    """A private CA and the hub's certificate for ``hosts`` (names or IP addresses), keys 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts:
        raise UsageError("give the hub's host name or address (--host), as the sites will dial it")
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carelens partner network CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    plain = serialization.NoEncryption()
    _write(folder / "ca.key", ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, plain), secret=True)
    _write(folder / CA_CERT, ca_cert.public_bytes(pem))
    _write(folder / SERVER_KEY, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, plain), secret=True)
    _write(folder / SERVER_CERT, cert.public_bytes(pem))
    return {"ca_certificate": str(folder / CA_CERT), "certificate": str(folder / SERVER_CERT), "hosts": hosts}


def make_node_key(folder: Path, site: str) -> dict[str, str]:
    """A site's EC P-384 key pair for Flower's node authentication: ``SITE.key`` (OpenSSH private
    key, 0600, stays at the site) and ``SITE.pub`` (give it to the hub: ``hub add-site``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / f"{site}.key", folder / f"{site}.pub"
    if private.exists():
        raise UsageError(f"{private} exists: a site keeps its key (remove it first to make a new one)")
    key = ec.generate_private_key(ec.SECP384R1())
    ssh = serialization.Encoding.OpenSSH
    pem, openssh = serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH
    _write(private, key.private_bytes(pem, openssh, serialization.NoEncryption()), secret=True)
    _write(public, key.public_key().public_bytes(ssh, serialization.PublicFormat.OpenSSH) + b"\n")
    return {"private_key": str(private), "public_key": str(public)}


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
