"""Command-line commands of carelens.server: users, serve, audit."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from carelens.core.errors import InputError
from carelens.core.options import format_option, store_option

users = typer.Typer(help="Manage workspace users and API tokens.", no_args_is_help=True)
audit_cli = typer.Typer(help="Check the audit trail.", no_args_is_help=True)


def _read_password(what: str = "password") -> str:
    """A password without echo at a terminal (asked twice), else one line of stdin."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(f"{what}: ")
        if getpass.getpass(f"{what} again: ") != first:
            raise InputError("the two passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InputError(f"no {what} given (type it at the prompt, or pipe it in on stdin)")
    return password


STORE_OPTION = store_option()


@users.command("add")
def users_add(
    username: str = typer.Argument(..., help="The new user's name."),
    role: str = typer.Option(..., "--role", help="clinician, researcher or admin."),
    one_time: bool = typer.Option(False, "--one-time", help="The user must change this password at the first login."),
    fmt: str = format_option("json", ("json", "text"), "json or text."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Add a user. The password is asked without echo at a terminal, else read from stdin (one
    line); at least 12 characters, not the user name, not a common password
    (json: {"user", "role", "one_time"})."""
    from sqlalchemy.orm import Session

    from carelens.core.output import emit_json
    from carelens.store import appdb

    password = _read_password()
    with Session(appdb.audit.engine_for_store(store)) as s, s.begin():
        appdb.add_user(s, username, password, role, one_time=one_time)
        appdb.audit.append(s, "cli", "user.add", detail={"user": username, "role": role, "one_time": one_time})
    if fmt == "json":
        emit_json({"user": username, "role": role, "one_time": one_time})
    else:
        typer.echo(f"added {username} ({role})")


@users.command("passwd")
def users_passwd(
    username: str = typer.Argument(..., help="The user whose password to set."),
    one_time: bool = typer.Option(False, "--one-time", help="The user must change it at the next login."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Set USER's password (asked without echo at a terminal, else one line of stdin); their
    sessions end (json: {"user", "sessions", "one_time"})."""
    from sqlalchemy.orm import Session

    from carelens.core.output import emit_json
    from carelens.store import appdb

    password = _read_password("new password")
    with Session(appdb.audit.engine_for_store(store)) as s, s.begin():
        ended = appdb.set_password(s, username, password, one_time=one_time)
        appdb.audit.append(
            s, "cli", "user.password", detail={"user": username, "sessions": ended, "one_time": one_time}
        )
    emit_json({"user": username, "sessions": ended, "one_time": one_time})


@users.command("token")
def users_token(
    username: str = typer.Argument(..., help="The user the token is for."),
    days: float = typer.Option(90, "--days", help="How long the token lives (at most 366 days)."),
    scopes: list[str] = typer.Option(["api", "cds"], "--scope", help="api (the JSON API) and/or cds (CDS Hooks)."),
    fmt: str = format_option("text", ("text", "json"), "text (the token alone, for scripts) or json."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Issue an API token for USER and print it once (only its hash is stored)
    (json: {"user", "token", "expires_at", "scopes"})."""
    from sqlalchemy.orm import Session

    from carelens.core.output import emit_json
    from carelens.store import appdb

    with Session(appdb.audit.engine_for_store(store)) as s, s.begin():
        user = appdb.get_user(s, username)
        if user is None:
            raise InputError(f"no user named {username}")
        token = appdb.create_token(s, user, days=days, scopes=tuple(scopes))
        expires = appdb.now_iso(days * 86400)
        appdb.audit.append(s, "cli", "token.issue", detail={"user": username, "days": days, "scopes": sorted(scopes)})
    if fmt == "json":
        emit_json({"user": username, "token": token, "expires_at": expires, "scopes": sorted(set(scopes))})
    else:
        typer.echo(token)


@users.command("list")
def users_list(
    fmt: str = format_option("json", ("json", "table"), "json or table."),
    store: Path | None = STORE_OPTION,
) -> None:
    """List users (json: {"users": [{"username", "role", "active", "created_at", "tokens", "locked",
    "must_change_password"}]}; tokens: live ones)."""
    from sqlalchemy.orm import Session

    from carelens.core.output import emit_json
    from carelens.store import appdb

    with Session(appdb.audit.engine_for_store(store)) as s:
        rows = appdb.list_users(s)
    if fmt == "json":
        emit_json({"users": rows})
        return
    for r in rows:
        state = "active" if r["active"] else "disabled"
        typer.echo(f"{r['username']}  {r['role']}  {state}  tokens={r['tokens']}  created {r['created_at']}")


def _change(store: Path | None, change: str, username: str) -> None:
    """Apply one account change and its audit row in one transaction; print the JSON result."""
    from sqlalchemy.orm import Session

    from carelens.core.output import emit_json
    from carelens.store import appdb

    with Session(appdb.audit.engine_for_store(store)) as s, s.begin():
        result = appdb.change_account(s, "cli", change, username)
    emit_json({"user": username, **result})


@users.command("disable")
def users_disable(
    username: str = typer.Argument(..., help="The user to disable."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Disable USER: no more logins; their sessions end and their API tokens are revoked at once
    (json: {"user", "sessions", "tokens"}: how many were ended). The last active admin cannot be disabled."""
    _change(store, "user.disable", username)


@users.command("enable")
def users_enable(
    username: str = typer.Argument(..., help="The user to enable again."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Enable USER again (old sessions and tokens stay ended: they log in and get a new token)."""
    _change(store, "user.enable", username)


@users.command("unlock")
def users_unlock(
    username: str = typer.Argument(..., help="The user that failed logins locked."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Unlock USER after failed logins locked the account (audited; json: {"user", "unlocked"})."""
    _change(store, "user.unlock", username)


@users.command("revoke-tokens")
def users_revoke_tokens(
    username: str = typer.Argument(..., help="The user whose API tokens to revoke."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Revoke every API token of USER at once (json: {"user", "tokens"}: how many); the user stays active."""
    _change(store, "token.revoke", username)


@audit_cli.command("verify")
def audit_verify(
    fmt: str = format_option("json", ("json", "text"), "json or text."),
    anchors: list[Path] = typer.Option(
        [], "--anchor", help="A checkpoint exported earlier and kept elsewhere (repeatable)."
    ),
    store: Path | None = STORE_OPTION,
) -> None:
    """Check the audit chain: every row's seal (HMAC, key outside the database), the head, the
    sealed head file, saved checkpoints and the --anchor files. Exit 0 when intact, 1 naming the
    first problem (json: {"ok", "rows", "bad_row", "reason", "checkpoints", "head"})."""
    import json

    from carelens.core.output import emit_json
    from carelens.store import appdb

    loaded = []
    for path in anchors:
        try:
            loaded.append(json.loads(path.read_text()))
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read the checkpoint {path} ({type(err).__name__})") from None
    report = appdb.audit.verify(appdb.audit.engine_for_store(store), anchors=loaded)
    if fmt == "json":
        emit_json(report.as_json())
    if not report.ok:
        where = f" at row {report.bad_row}" if report.bad_row else ""
        raise InputError(f"audit chain broken{where}: {report.reason}")
    if fmt == "text":
        typer.echo(f"audit chain intact: {report.rows} rows, {report.checkpoints} heads/checkpoints agree")


@audit_cli.command("checkpoint")
def audit_checkpoint(
    out: Path | None = typer.Option(None, "--out", help="Also write the checkpoint to this file."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Print a signed checkpoint of the chain's head (Ed25519; json: {"type", "last_id",
    "last_hash", "ts", "key", "signature"}) and save it in the store. Keep a copy elsewhere (a
    ticket, another host): `audit verify --anchor FILE` then detects any rewrite up to it."""
    from carelens.core.output import emit_json
    from carelens.store import appdb

    engine = appdb.audit.engine_for_store(store)
    report = appdb.audit.verify(engine)
    if not report.ok:
        raise InputError(f"the audit chain is broken ({report.reason}); no checkpoint signed")
    checkpoint = appdb.audit.checkpoint(engine)
    if out is not None:
        emit_json(checkpoint, out)
    emit_json(checkpoint)


@audit_cli.command("export")
def audit_export(
    fmt: str = format_option("fhir", ("fhir",), "fhir (a Bundle of IHE BALP AuditEvents)."),
    since: int = typer.Option(0, "--since", min=0, help="Only rows after this id."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    store: Path | None = STORE_OPTION,
) -> None:
    """Export the audit log as FHIR R4 AuditEvents (IHE Basic Audit Log Patterns), for an ATNA
    audit repository or a SIEM; each event names its chain row and seal."""
    from carelens.core.output import emit_json
    from carelens.store import appdb
    from carelens.store.appdb.fhir_audit import export_bundle

    emit_json(export_bundle(appdb.audit.engine_for_store(store), since=since), out)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    store: Path | None = STORE_OPTION,
    workers: int = typer.Option(
        1, "--workers", min=1, max=16, help="Server processes (each caches summaries; the audit chain is shared)."
    ),
) -> None:
    """Serve the clinician workspace: web pages, the JSON API and CDS Hooks.

    Behind a TLS-terminating proxy, name it in CARELENS_TRUSTED_PROXIES (default 127.0.0.1) so
    that its X-Forwarded-Proto/-For are believed (Secure cookies and HSTS follow), and set
    CARELENS_PUBLIC_URL to the address users reach (the default is http://HOST:PORT)."""
    import os

    import uvicorn

    from carelens.core.settings import load_settings
    from carelens.server import ServerSettings, create_app
    from carelens.server.app import configure_logging
    from carelens.store.permissions import private_umask

    private_umask()
    configure_logging()
    if load_settings().public_url is None and host not in ("0.0.0.0", "::"):
        shown = f"[{host}]" if ":" in host else host
        os.environ["CARELENS_PUBLIC_URL"] = f"http://{shown}:{port}"  # links and the CDS JWT audience
    app = create_app(ServerSettings.from_env(store))  # fails here, in one line, on a bad store or database
    typer.echo(f"carelens workspace on http://{host}:{port}/ ({workers} process(es))", err=True)
    if workers > 1 and store is not None:
        os.environ["CARELENS_SERVE_STORE"] = str(store)  # the worker processes build their own app
    uvicorn.run(
        app if workers == 1 else "carelens.server.app:app_from_env",
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips=load_settings().trusted_proxies,
        timeout_graceful_shutdown=5,
    )


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.add_typer(users, name="users")
    app.add_typer(audit_cli, name="audit")
    app.command("serve")(serve)
