"""CDS Hooks client authentication: the calling EHR signs a JWT (CDS Hooks 2.0, "Trusting CDS
Clients") and carelens checks it.

The clients are configured in a JSON file (``CARELENS_CDS_CLIENTS``)::

    {"clients": [{"iss": "https://ehr.example.org", "user": "ehr-epic",
                  "jwks": {"keys": [...]}, "jku": ["https://ehr.example.org/jwks.json"]}]}

``iss`` must be on that allow-list; the key is found by ``kid`` in the client's ``jwks`` (or
fetched from a ``jku`` URL that the client's entry allows, never from any other URL); ``aud`` must
be this service's URL under the configured public base URL; ``exp`` (at most 5 minutes after
``iat``) and ``jti`` are required and a ``jti`` is accepted once. The request then acts as the
carelens account ``user`` (its role decides as for a token).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from fastapi import Request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from carelens.core.errors import InputError
from carelens.server.auth import Principal, Problem
from carelens.store.appdb import CdsJti, now_iso

ALGORITHMS = ("ES384", "RS384", "ES256", "RS256", "ES512", "RS512")  # asymmetric only: never none or HS*
MAX_LIFETIME_S = 300
LEEWAY_S = 30
USER_SQL = "SELECT id, username, role FROM users WHERE username = ? AND active = ?"


@cache
def load_clients(path: str) -> dict[str, dict[str, Any]]:
    """The configured CDS clients by ``iss``; raises ``InputError`` on a malformed file."""
    try:
        raw = json.loads(Path(path).read_text())
        clients = {str(c["iss"]): c for c in raw["clients"]}
        for c in clients.values():
            if not isinstance(c.get("user"), str) or not (c.get("jwks") or c.get("jku")):
                raise ValueError("each client needs user and jwks or jku")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"CARELENS_CDS_CLIENTS {path} is not a valid client list ({err})") from err
    return clients


@cache
def _fetch_jwks(url: str) -> dict[str, Any]:
    import httpx

    response = httpx.get(url, timeout=5.0, follow_redirects=False)
    response.raise_for_status()
    return response.json()


def _signing_key(client: dict[str, Any], header: dict[str, Any]) -> Any:
    kid, jku = header.get("kid"), header.get("jku")
    if not kid:
        raise Problem(401, "the CDS client JWT has no kid")
    if jku is not None:
        if jku not in (client.get("jku") or []):
            raise Problem(401, "the CDS client JWT names a jku that is not allowed for its issuer")
        try:
            jwks = _fetch_jwks(str(jku))
        except Exception as err:
            raise Problem(401, f"the CDS client's key set could not be fetched ({type(err).__name__})") from None
    elif client.get("jwks"):
        jwks = client["jwks"]
    else:
        jwks = _fetch_jwks(str(client["jku"][0]))
    for key in jwks.get("keys", []):
        if key.get("kid") == kid:
            return jwt.PyJWK(key).key
    raise Problem(401, "no key with the JWT's kid in the CDS client's key set")


def verify_jwt(token: str, clients: dict[str, dict[str, Any]], audience: str) -> dict[str, Any]:
    """The verified claims of a CDS client's JWT, or ``Problem(401)`` naming what is wrong."""
    try:
        header = jwt.get_unverified_header(token)
        claimed = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Problem(401, "malformed CDS client JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise Problem(401, f"CDS client JWTs must be signed with one of {', '.join(ALGORITHMS)}")
    client = clients.get(str(claimed.get("iss")))
    if client is None:
        raise Problem(401, "the CDS client JWT's issuer is not on the allow-list")
    try:
        claims = jwt.decode(
            token,
            _signing_key(client, header),
            algorithms=[header["alg"]],
            audience=audience,
            issuer=client["iss"],
            leeway=LEEWAY_S,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as err:
        raise Problem(401, f"CDS client JWT refused: {type(err).__name__}") from None
    if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME_S:
        raise Problem(401, f"CDS client JWTs may live at most {MAX_LIFETIME_S} s (exp - iat)")
    return claims


def _remember_jti(ctx: Any, iss: str, jti: str, exp: int) -> bool:
    """Store the jti; False when it was seen before (a replay)."""
    from datetime import UTC, datetime

    expires = datetime.fromtimestamp(exp + LEEWAY_S, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        with ctx.writing() as s:
            s.execute(delete(CdsJti).where(CdsJti.expires_at < now_iso()))
            s.add(CdsJti(jti=f"{iss}|{jti}"[:200], expires_at=expires))
    except IntegrityError:
        return False
    return True


async def jwt_principal(request: Request, token: str) -> Principal:
    """The carelens account a verified CDS client JWT acts as (401 otherwise)."""
    ctx = request.app.state.ctx
    path = ctx.settings.cds_clients
    if not path:
        raise Problem(401, "CDS client JWTs are not configured here (CARELENS_CDS_CLIENTS); use an API token")
    if not ctx.settings.public_url:
        raise Problem(401, "CDS client JWTs need the public base URL (CARELENS_PUBLIC_URL) to check aud")
    clients = load_clients(str(path))
    audience = ctx.settings.public_url.rstrip("/") + request.url.path
    claims = await run_in_threadpool(verify_jwt, token, clients, audience)
    if not await run_in_threadpool(_remember_jti, ctx, claims["iss"], str(claims["jti"]), int(claims["exp"])):
        raise Problem(401, "this CDS client JWT was used before (jti replay)")
    row = await ctx.fetch_one(USER_SQL, (clients[claims["iss"]]["user"], True))
    if row is None:
        raise Problem(401, "the CDS client's carelens account is missing or disabled")
    return Principal(row[0], row[1], row[2], scopes=("cds",))
