"""One settings object for every CARELENS_* variable: types, clear errors, the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core.errors import UsageError
from carelens.core.settings import PREFIX, Settings, load_settings, parse_duration, settings_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1800", 1800), ("90s", 90), ("30min", 1800), ("30 minutes", 1800), ("12h", 43200), ("2d", 172800),
     ("PT30M", 1800), ("1.5h", 5400)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30mins of fun", "-5", "0", "soon", "12 parsecs"])
def test_bad_duration_names_variable_and_form(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELENS_SESSION_TTL", text)
    with pytest.raises(UsageError) as err:
        load_settings()
    assert err.value.reason.startswith("CARELENS_SESSION_TTL: ")
    assert "30min" in err.value.reason and "\n" not in err.value.reason


def test_values_are_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARELENS_SESSION_TTL", "30min")
    monkeypatch.setenv("CARELENS_MAX_BODY", "1MiB")
    monkeypatch.setenv("CARELENS_SECURE_COOKIES", "1")
    monkeypatch.setenv("CARELENS_INGEST_PROCESSES", "3")
    monkeypatch.setenv("CARELENS_PROGRESS", "")  # empty: unset
    monkeypatch.setenv("CARELENS_STORE", str(tmp_path))
    monkeypatch.delenv("CARELENS_DB_URL", raising=False)
    settings = load_settings()
    assert (settings.session_ttl, int(settings.max_body), settings.secure_cookies) == (1800.0, 1 << 20, True)
    assert (settings.ingest_processes, settings.progress) == (3, False)
    assert settings.db_url == f"sqlite:///{(tmp_path / 'app.sqlite').resolve()}"
    assert load_settings(tmp_path / "other").db_url.endswith("other/app.sqlite")


def test_several_bad_values_in_one_line_without_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELENS_INGEST_PROCESSES", "zero-canary")
    monkeypatch.setenv("CARELENS_SECURE_COOKIES", "maybe-canary")
    with pytest.raises(UsageError) as err:
        load_settings()
    assert "CARELENS_INGEST_PROCESSES" in err.value.reason and "CARELENS_SECURE_COOKIES" in err.value.reason
    assert "canary" not in err.value.reason


def test_server_settings_read_the_one_object(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from carelens.server.settings import ServerSettings

    monkeypatch.setenv("CARELENS_SESSION_TTL", "12h")
    monkeypatch.setenv("CARELENS_MAX_BODY", "2048")
    server = ServerSettings.from_env(tmp_path)
    assert (server.session_ttl_s, server.max_body_bytes, server.store) == (43200.0, 2048, tmp_path)


def test_every_carelens_variable_in_the_source_is_a_setting() -> None:
    used = set()
    for path in (ROOT / "src" / "carelens").rglob("*.py"):
        used |= set(re.findall(r"CARELENS_[A-Z_]+[A-Z]", path.read_text()))
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    assert used <= fields, f"not in carelens.core.settings: {sorted(used - fields)}"


def test_readme_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings:begin -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert table == settings_table(), "README settings table is stale: paste `carelens settings --format markdown`"


def test_cli_bad_setting_fails_before_work_and_settings_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELENS_SESSION_TTL", "30 fortnights")
    result = CliRunner().invoke(app, ["sql", "SELECT 1"])
    assert isinstance(result.exception, UsageError) and "CARELENS_SESSION_TTL" in result.exception.reason
    monkeypatch.setenv("CARELENS_SESSION_TTL", "30min")
    monkeypatch.setenv("CARELENS_SECRET", "canary-secret")
    monkeypatch.setenv("CARELENS_DB_URL", "postgresql+psycopg://u:canary-pw@h/db")
    result = CliRunner().invoke(app, ["settings"])
    assert result.exit_code == 0 and "canary" not in result.output
    assert '"CARELENS_SESSION_TTL": 1800.0' in result.output
    markdown = CliRunner().invoke(app, ["settings", "--format", "markdown"])
    assert markdown.output == settings_table()
