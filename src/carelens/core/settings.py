"""Every ``CARELENS_*`` environment variable, in one typed settings object.

Each field is one variable (``CARELENS_`` + the field name in capitals) with its type, default
and meaning; an empty variable counts as unset. A bad value is a one-line :class:`UsageError`
naming the variable and the form expected (never quoting the value: it may be a secret).
``carelens settings --format markdown`` writes the table in the README from these fields.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ByteSize,
    Field,
    PositiveInt,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from carelens.core.errors import UsageError

PREFIX = "CARELENS_"
DEFAULT_STORE = Path("carelens-data")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)?")
_DURATION_FORM = "a duration such as 1800 (seconds), 90s, 30min, 12h, 2d or ISO 8601 PT30M"


def parse_duration(value: Any) -> float:
    """Seconds from a number, ``<n><unit>`` (s, min, h, d and their long forms) or ISO 8601."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        match = _DURATION.fullmatch(text)
        if match:
            seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s")[0]]
        else:
            try:
                seconds = TypeAdapter(timedelta).validate_python(value.strip()).total_seconds()
            except ValidationError:
                raise ValueError(f"expected {_DURATION_FORM}") from None
    else:
        raise ValueError(f"expected {_DURATION_FORM}")
    if seconds <= 0:
        raise ValueError(f"expected a positive duration ({_DURATION_FORM})")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    """carelens settings, from ``CARELENS_*`` environment variables (see the module doc)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore")

    store: Path = Field(default=DEFAULT_STORE, description="The store: the lake and everything else carelens writes.")
    db_url: str = Field(
        default="",
        description="The app database: `sqlite:///...` or `postgresql+psycopg://...` "
        "(default: `app.sqlite` inside the store).",
    )
    secret_file: Path | None = Field(
        default=None, description="The site secret for pseudonyms and date shifts (`carelens deid keygen FILE`)."
    )
    secret: SecretStr | None = Field(default=None, description="The site secret itself (when there is no secret file).")
    session_ttl: Duration = Field(
        default=1800.0, description="How long a browser session lives (seconds, or 30min, 12h)."
    )
    max_body: ByteSize = Field(
        default=ByteSize(64 * 1024), description="Larger request bodies are refused with 413 (bytes, or 64KiB, 1MB)."
    )
    secure_cookies: bool = Field(default=False, description="Mark the workspace's cookies Secure (serve behind HTTPS).")
    public_url: str | None = Field(
        default=None,
        description="The base URL users and EHRs reach the workspace at (every absolute link, the CDS JWT audience; "
        "`serve` defaults it to http://HOST:PORT).",
    )
    cds_clients: Path | None = Field(
        default=None, description="JSON list of CDS clients (EHRs) allowed to call with a signed JWT."
    )
    trusted_proxies: str = Field(
        default="127.0.0.1", description="Proxies whose X-Forwarded-* headers `serve` trusts (comma-separated)."
    )
    audit_dir: Path | None = Field(
        default=None,
        description="Where the audit key and sealed head live (default: the SQLite database's folder, else the store).",
    )
    summarizer: str = Field(
        default="record",
        description="The summariser, by name, of a workspace over a folder of bundles: `record`, or one an installed "
        "package registers in the `carelens.summarizers` entry-point group.",
    )
    ingest_processes: PositiveInt | None = Field(
        default=None, description="Processes parsing FHIR files in `ingest` (default: one per core, at most 4)."
    )
    lake_chunk_rows: PositiveInt = Field(default=10_000, description="Rows per committed lake chunk.")
    ocr_threads: PositiveInt | None = Field(
        default=None,
        description="Tesseract calls run at once when DICOM de-identification looks for burned-in text "
        "(default: one per core, at most 4).",
    )
    pgx_definitions: Path | None = Field(
        default=None, description="Pharmacogene definitions file (default: the copy shipped with carelens)."
    )
    pgx_dpwg: Path | None = Field(
        default=None,
        description="DPWG recommendations file written by `genome import-dpwg --out` (default: the copy shipped).",
    )
    shared_data: Path | None = Field(
        default=None, description="The public test and benchmark data (default: `../shared/data` if present)."
    )
    small_cell: int = Field(
        default=11,
        ge=2,
        description="Research views hide every count below this (totals too, with complementary suppression).",
    )
    site: str | None = Field(
        default=None,
        description="This site's name, as its local validations name it (`image validate --site`, `image adapt "
        "--site`, a federated site); the workspace marks reads of models not validated here.",
    )
    progress: bool = Field(default=False, description="Show progress bars on stderr even when it is not a terminal.")
    debug: bool = Field(default=False, description="Show tracebacks of internal errors.")
    serve_store: Path | None = Field(
        default=None, description="Internal: the store `serve --workers N` hands to its worker processes."
    )

    @model_validator(mode="after")
    def _default_db(self) -> Settings:
        if not self.db_url:
            self.db_url = f"sqlite:///{(self.store / 'app.sqlite').resolve()}"
        return self

    @classmethod
    def from_env(cls, store: Path | None = None) -> Settings:
        """The settings now in the environment (``store`` overriding ``CARELENS_STORE``)."""
        return load_settings(store)


def load_settings(store: Path | None = None) -> Settings:
    """Read the environment now; a bad value is a one-line :class:`UsageError` per variable. Built once per
    set of ``CARELENS_*`` variables and working folder (relative paths resolve against it), a copy each call:
    building one costs ~2 ms, and a run asks per patient."""
    variables = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(PREFIX)))
    return _settings_from(variables, os.getcwd(), store).model_copy()


@lru_cache(maxsize=16)
def _settings_from(variables: tuple[tuple[str, str], ...], cwd: str, store: Path | None) -> Settings:
    try:
        return Settings(store=store) if store is not None else Settings()
    except ValidationError as err:
        raise UsageError("; ".join(_problem(e) for e in err.errors())) from None


def _problem(error: Any) -> str:
    name = PREFIX + "_".join(str(part) for part in error["loc"]).upper()
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {message}"


def settings_table() -> str:
    """The settings as a Markdown table (variable, type, default, meaning), for the README."""
    rows = ["| Variable | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.get_default()
        if name == "db_url":
            shown = "SQLite in the store"
        else:
            shown = "—" if default is None else f"`{default:g}`" if isinstance(default, float) else f"`{default}`"
        rows.append(f"| `{PREFIX}{name.upper()}` | {_type_name(name)} | {shown} | {field.description} |")
    return "\n".join(rows) + "\n"


def _type_name(name: str) -> str:
    field = Settings.model_fields[name]
    if name == "db_url":
        return "URL"
    if any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in field.metadata):
        return "duration"
    kinds = {"Path": "path", "bool": "boolean", "str": "text", "ByteSize": "size", "SecretStr": "secret"}
    for kind, label in kinds.items():
        if kind in str(field.annotation):
            return label
    floor = next((m.ge for m in field.metadata if hasattr(m, "ge")), 1)
    return f"integer ≥ {floor}" if "int" in str(field.annotation) or field.metadata else str(field.annotation)


def public_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON values, the secret and any database password masked."""
    data = settings.model_dump(mode="json")
    data["secret"] = "********" if settings.secret is not None else None
    data["db_url"] = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1********@", settings.db_url)
    return {PREFIX + k.upper(): v for k, v in data.items()}
