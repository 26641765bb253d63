"""The store: the lake (Parquet part files with a DuckDB catalog, queryable with SQL) and the
app database (``carelens.store.appdb``).

Names are imported on first use: every command sets its umask through ``store.permissions``, and most
need no lake (pyarrow, DuckDB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carelens.core.lazy import lazy_exports

if TYPE_CHECKING:
    from carelens.store.lake import SCHEMAS, TABLES, Lake, LakeWriter

__all__ = ["SCHEMAS", "TABLES", "Lake", "LakeWriter"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "carelens.store.lake"))
