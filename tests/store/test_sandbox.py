"""Research SQL: a DuckDB sandbox over the research lake; every escape a researcher could try fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.core import InputError
from carelens.ingest import ingest
from carelens.store import Lake
from carelens.store.sandbox import sandboxed_query
from tests.ingest.makefiles import bundle, observation, patient, write_json


@pytest.fixture
def research(tmp_path: Path) -> Lake:
    """A research lake beside an identified lake, a site secret and an app database."""
    folder = tmp_path / "in"
    write_json(folder / "a.json", bundle(patient("P1", "Ann Test"), observation("O1", "urn:uuid:P1")))
    store = tmp_path / "store"
    ingest([folder], store / "research")
    ingest([folder], store)
    (store / "site.key").write_text("CANARY-SECRET-0001\n")
    (store / "app.db").write_text("password-hash CANARY-HASH-0002\n")
    return Lake(store / "research")


def test_select_over_the_research_lake_works(research: Lake) -> None:
    rows = sandboxed_query(research, "SELECT count(*) AS n FROM Patient").to_pylist()
    assert rows == [{"n": 1}]
    part = research.part_files("resources")[0]
    assert sandboxed_query(research, f"SELECT count(*) AS n FROM read_parquet('{part}')").to_pylist()[0]["n"] >= 2


@pytest.mark.parametrize(
    "escape",
    [
        "SELECT * FROM read_text('{store}/site.key')",
        "SELECT * FROM read_text('{store}/app.db')",
        "SELECT * FROM read_text('{root}/../../site.key')",  # a path that climbs out of the lake
        "SELECT * FROM read_parquet('{store}/lake/**/*.parquet')",  # the identified lake
        "SELECT * FROM read_csv('/etc/passwd', sep=':')",
        "SELECT * FROM glob('{store}/*')",
        "ATTACH '{store}/lake/catalog.duckdb' AS clinical",
        "COPY (SELECT 1) TO '{store}/out.csv'",
        "COPY (SELECT 1) TO '{root}/planted.csv'",  # writing into the research lake itself
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "RESET lock_configuration",
        "PRAGMA enable_profiling",
        "CREATE TABLE t AS SELECT 1; SELECT * FROM t",
        "SELECT 1; COPY (SELECT 1) TO '{store}/two.csv'",
        "EXPORT DATABASE '{store}/dump'",
        "SELECT * FROM read_text('https://example.com/x')",
    ],
)
def test_escapes_are_refused(research: Lake, escape: str) -> None:
    sql = escape.format(store=research.store.parent, root=research.root)
    with pytest.raises(InputError) as err:
        sandboxed_query(research, sql)
    reason = str(err.value)
    assert "\n" not in reason and "CANARY" not in reason
    assert not any(p.name in ("out.csv", "planted.csv", "two.csv", "dump") for p in research.store.parent.rglob("*"))


def test_cli_research_zone_is_sandboxed(research: Lake) -> None:
    from typer.testing import CliRunner

    from carelens.cli import app

    store = research.store.parent
    res = CliRunner().invoke(app, ["sql", f"SELECT * FROM read_text('{store}/site.key')", "--zone", "research",
                                   "--store", str(store)])  # fmt: skip
    assert res.exit_code != 0 and "CANARY" not in res.output
    res = CliRunner().invoke(
        app, ["sql", "SELECT count(*) AS n FROM Patient", "--zone", "research", "--store", str(store)]
    )
    assert res.exit_code == 0 and '"n": 1' in res.output
