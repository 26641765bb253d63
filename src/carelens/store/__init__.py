"""The store: the lake (Parquet part files with a DuckDB catalog, queryable with SQL) and the
app database (``carelens.store.appdb``)."""

from carelens.store.lake import SCHEMAS, TABLES, Lake, LakeWriter

__all__ = ["SCHEMAS", "TABLES", "Lake", "LakeWriter"]
