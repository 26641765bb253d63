"""Research SQL in a DuckDB sandbox: only SELECT, only the research lake's files.

``sandboxed_query(lake, sql)`` opens a private in-memory DuckDB, defines the lake's views over
its Parquet files, then closes it around them before running anything it was given (see
DuckDB's "Securing DuckDB"): ``allowed_directories`` is the lake folder (and an empty private
temporary folder), ``enable_external_access`` is off (no other file, no ATTACH, no COPY, no
network), extensions are neither installed nor loaded (``autoinstall``/``autoload`` off,
``allow_community_extensions`` off), and ``lock_configuration`` refuses any SET that would
give it back. Statements are allow-listed too: a query holding anything but SELECT (COPY TO the
lake itself, CREATE, INSTALL, PRAGMA, SET...) is refused before it runs.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from carelens.core.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from carelens.store.lake import Lake

ALLOWED_STATEMENTS = ("SELECT",)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sandboxed_query(lake: Lake, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Run a researcher's SELECT over ``lake`` (its catalog's views) in the sandbox; ``InputError``
    with a one-line reason for anything else or anything DuckDB refuses."""
    import duckdb

    config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
              "allow_community_extensions": False, "allow_unsigned_extensions": False}  # fmt: skip
    temp = tempfile.mkdtemp(prefix="carelens-sql-")
    try:
        with duckdb.connect(":memory:", config=config) as con:
            try:
                statements = con.extract_statements(sql)
            except duckdb.Error as err:
                raise InputError(f"SQL error: {_first_line(err)}") from None
            refused = sorted({s.type.name for s in statements if s.type.name not in ALLOWED_STATEMENTS})
            if refused or not statements:
                kinds = ", ".join(refused) or "nothing"
                raise InputError(f"research SQL runs SELECT only (this query holds {kinds})")
            for name, view in lake.view_sql().items():
                con.execute(f'CREATE VIEW "{name}" AS {view}')
            root = str(lake.root.absolute()).rstrip("/") + "/"
            con.execute(f"SET temp_directory = {_quote(temp)}")
            con.execute(f"SET allowed_directories = [{_quote(root)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            try:
                result = con.sql(sql, params=params) if params else con.sql(sql)
                return result.to_arrow_table() if result is not None else _empty()
            except duckdb.Error as err:
                raise InputError(f"SQL error: {_first_line(err)}") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _empty() -> pa.Table:
    import pyarrow as pa

    return pa.table({})


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
