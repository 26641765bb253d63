"""ASGI middleware: request body limit (413), security headers (HSTS over TLS), PHI-free access log."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson

log = logging.getLogger("carelens.server.access")
Scope = dict[str, Any]

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # same-origin posts carry Origin; nothing to other sites
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_ID_SEGMENT = re.compile(r"/(patients|signed|models|users|cds-services)/[^/]+")


def masked_path(path: str) -> str:
    """The request path with ids replaced, fit for a log line (no patient ids, no values)."""
    return _ID_SEGMENT.sub(lambda m: f"/{m.group(1)}/{{id}}", path)


class _TooLarge(BaseException):
    """Raised from ``receive``; a BaseException so that body parsers cannot turn it into a 400."""


class Guard:
    """Refuses bodies over ``max_bytes`` with 413 (declared or streamed), adds the security
    headers and ``Cache-Control: no-store`` (except static files), HSTS when the request came
    over HTTPS (directly or from a trusted proxy) or ``hsts`` says the site is behind TLS, and
    logs one PHI-free line per request."""

    def __init__(self, app: Any, max_bytes: int, hsts: bool = False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, state = time.perf_counter(), {"started": False, "status": 0, "seen": 0}
        path = scope.get("path", "")
        extra = [HSTS] if self.hsts or scope.get("scheme") == "https" else []

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["started"], state["status"] = True, message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                cache = b"public, max-age=3600" if path.startswith("/static/") else b"no-store"
                message["headers"] = [*headers, *SECURITY_HEADERS, *extra, (b"cache-control", cache)]
            await send(message)

        async def limited_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_bytes:
                    raise _TooLarge
            return message

        declared = dict(scope.get("headers", [])).get(b"content-length")
        try:
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
                raise _TooLarge
            await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if not state["started"]:
                body = orjson.dumps({"detail": f"request body too large (limit {self.max_bytes} bytes)"})
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        except Exception as err:
            log.error("internal error %s on %s %s", type(err).__name__, scope.get("method"), masked_path(path))
            if not state["started"]:
                body = orjson.dumps({"detail": "internal error; the server log names the error type"})
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            ms = (time.perf_counter() - start) * 1000
            log.info("%s %s %s %.1fms", scope.get("method"), masked_path(path), state["status"], ms)
