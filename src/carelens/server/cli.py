"""Command-line commands of carelens.server: users, serve, audit."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from carelens.core.errors import InputError
from carelens.core.options import format_option

users = typer.Typer(help="Manage workspace users and API tokens.", no_args_is_help=True)
audit_cli = typer.Typer(help="Check the audit trail.", no_args_is_help=True)


def _db_url(store: Path | None) -> str:
    from carelens.server.settings import ServerSettings

    return ServerSettings.from_env(store).db_url


@users.command("add")
def users_add(
    username: str = typer.Argument(..., help="The new user's name."),
    role: str = typer.Option(..., "--role", help="clinician, researcher or admin."),
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
) -> None:
    """Add a user; the password is read from stdin (one line)."""
    from sqlalchemy.orm import Session

    from carelens.store import appdb

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InputError("no password on stdin (pipe it in: echo PASSWORD | carelens users add NAME --role ROLE)")
    with Session(appdb.get_engine(_db_url(store))) as s, s.begin():
        appdb.add_user(s, username, password, role)
        appdb.audit.append(s, "cli", "user.add", detail={"user": username, "role": role})
    typer.echo(f"added {username} ({role})", err=True)


@users.command("token")
def users_token(
    username: str = typer.Argument(..., help="The user the token is for."),
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
) -> None:
    """Issue an API token for USER and print it (only its hash is stored)."""
    from sqlalchemy.orm import Session

    from carelens.store import appdb

    with Session(appdb.get_engine(_db_url(store))) as s, s.begin():
        user = appdb.get_user(s, username)
        if user is None:
            raise InputError(f"no user named {username}")
        token = appdb.create_token(s, user)
        appdb.audit.append(s, "cli", "token.issue", detail={"user": username})
    typer.echo(token)


@users.command("list")
def users_list(
    fmt: str = format_option("json", ("json", "table"), "json or table."),
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
) -> None:
    """List users (json: {"users": [{"username", "role", "active", "created_at", "tokens"}]}; tokens: live ones)."""
    from sqlalchemy.orm import Session

    from carelens.core.output import emit_json
    from carelens.store import appdb

    with Session(appdb.get_engine(_db_url(store))) as s:
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

    with Session(appdb.get_engine(_db_url(store))) as s, s.begin():
        result = appdb.change_account(s, "cli", change, username)
    emit_json({"user": username, **result})


@users.command("disable")
def users_disable(
    username: str = typer.Argument(..., help="The user to disable."),
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
) -> None:
    """Disable USER: no more logins; their sessions end and their API tokens are revoked at once
    (json: {"user", "sessions", "tokens"}: how many were ended). The last active admin cannot be disabled."""
    _change(store, "user.disable", username)


@users.command("enable")
def users_enable(
    username: str = typer.Argument(..., help="The user to enable again."),
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
) -> None:
    """Enable USER again (old sessions and tokens stay ended: they log in and get a new token)."""
    _change(store, "user.enable", username)


@users.command("revoke-tokens")
def users_revoke_tokens(
    username: str = typer.Argument(..., help="The user whose API tokens to revoke."),
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
) -> None:
    """Revoke every API token of USER at once (json: {"user", "tokens"}: how many); the user stays active."""
    _change(store, "token.revoke", username)


@audit_cli.command("verify")
def audit_verify(
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
) -> None:
    """Walk the audit hash chain: exit 0 when intact, 1 naming the first bad row."""
    from carelens.store import appdb

    report = appdb.audit.verify(appdb.get_engine(_db_url(store)))
    if not report.ok:
        raise InputError(f"audit chain broken at row {report.bad_row}: {report.reason}")
    typer.echo(f"audit chain intact: {report.rows} rows")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    store: Path | None = typer.Option(None, "--store", help="The carelens store (default: CARELENS_STORE)."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=16, help="Server processes (each caches summaries; the audit chain is shared)."
    ),
) -> None:
    """Serve the clinician workspace: web pages, the JSON API and CDS Hooks."""
    import os

    import uvicorn

    from carelens.server import ServerSettings, create_app
    from carelens.server.app import configure_logging

    configure_logging()
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
        timeout_graceful_shutdown=5,
    )


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.add_typer(users, name="users")
    app.add_typer(audit_cli, name="audit")
    app.command("serve")(serve)
