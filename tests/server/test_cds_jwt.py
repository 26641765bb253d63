"""CDS Hooks client JWTs (the spec's "Trusting CDS Clients"): a signed JWT from an allow-listed
EHR works beside today's tokens; a wrong issuer, audience, key, algorithm, lifetime or a replayed
jti is refused (401, audited)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm

from carelens.server import ServerSettings, create_app
from carelens.store import appdb
from tests.server.conftest import PUBLIC_URL, Workspace
from tests.server.fixture_store import PID

CDS = "/cds-services/carelens-patient-view"
HOOK = {"hook": "patient-view", "hookInstance": "h-jwt", "context": {"patientId": PID}}
ISS = "https://ehr.example.org"


@pytest.fixture
def ehr(ws_sqlite: Workspace, tmp_path: Path) -> tuple[TestClient, Any, Workspace]:
    """The workspace with one configured CDS client (key id k1) acting as the clinician."""
    key = ec.generate_private_key(ec.SECP384R1())
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    clients = {"clients": [{"iss": ISS, "user": "clinician", "jwks": {"keys": [{**public, "kid": "k1"}]}}]}
    path = tmp_path / "cds-clients.json"
    path.write_text(json.dumps(clients))
    settings = ws_sqlite.app.state.ctx.settings  # type: ignore[attr-defined]
    app = create_app(ServerSettings(**{**settings.__dict__, "cds_clients": path}))
    return TestClient(app), key, ws_sqlite


def _token(key: Any, **over: Any) -> str:
    """A signed token; ``exp_in`` (seconds from now) is read when the token is made, not when the
    tests are collected, so a slow suite cannot turn a long-lived token into a short-lived one."""
    now = int(time.time())
    claims = {
        "iss": ISS,
        "sub": "ehr",
        "aud": f"{PUBLIC_URL}{CDS}",
        "iat": now,
        "exp": now + over.pop("exp_in", 120),
        "jti": str(uuid.uuid4()),
    }
    headers = {"kid": "k1", **over.pop("headers", {})}
    claims.update(over)
    return jwt.encode(claims, key, algorithm=over.pop("alg", "ES384"), headers=headers)


def _call(client: TestClient, token: str) -> int:
    return client.post(CDS, json=HOOK, headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_signed_jwt_from_an_allowed_ehr_is_accepted_and_acts_as_its_account(ehr) -> None:  # type: ignore[no-untyped-def]
    client, key, ws = ehr
    assert _call(client, _token(key)) == 200
    (row,) = [e for e in appdb.audit.events(ws.engine) if e.action == "cds.patient-view"]
    assert row.actor == "clinician"
    assert client.post(CDS, json=HOOK, headers=ws.bearer("clinician")).status_code == 200  # tokens still work


def test_a_replayed_jti_is_refused(ehr) -> None:  # type: ignore[no-untyped-def]
    client, key, _ = ehr
    token = _token(key)
    assert _call(client, token) == 200
    assert _call(client, token) == 401


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example"},
        {"aud": "https://evil.example/cds-services/carelens-patient-view"},
        {"aud": "http://testserver/cds-services/carelens-patient-view"},  # the Host header is not the audience
        {"exp_in": -600},
        {"exp_in": 3600},  # lives longer than 5 minutes
        {"headers": {"kid": "unknown"}},
        {"headers": {"jku": "https://evil.example/jwks.json"}},
    ],
)
def test_bad_claims_and_headers_are_refused(ehr, change: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    client, key, _ = ehr
    assert _call(client, _token(key, **change)) == 401


def test_other_keys_and_algorithms_are_refused(ehr) -> None:  # type: ignore[no-untyped-def]
    client, _, ws = ehr
    stranger = ec.generate_private_key(ec.SECP384R1())
    assert _call(client, _token(stranger)) == 401
    now = int(time.time())
    claims = {"iss": ISS, "aud": f"{PUBLIC_URL}{CDS}", "iat": now, "exp": now + 60, "jti": "x"}
    assert _call(client, jwt.encode(claims, "shared-secret-guess-00000000000000", algorithm="HS256")) == 401
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert _call(client, unsigned) == 401
    denied = [e for e in appdb.audit.events(ws.engine) if e.action == "access.denied"]
    assert len(denied) == 3 and all(json.loads(e.detail)["status"] == 401 for e in denied)


def test_without_a_client_list_jwts_are_refused(ws_sqlite: Workspace) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    assert _call(ws_sqlite.client(), _token(key)) == 401
