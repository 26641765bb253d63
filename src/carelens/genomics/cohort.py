"""Cohort pharmacogenomics: diplotype and phenotype frequencies across samples, written to the lake.

The lake table ``pgx_cohort`` holds frequencies only (no sample ids: the lake is the research zone):
Parquet files under ``<store>/lake/pgx_cohort/`` and a DuckDB view of the same name in
``<store>/lake/catalog.duckdb``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from carelens.core.errors import CarelensError
from carelens.core.ids import stable_id
from carelens.core.plots import figure
from carelens.core.progress import progress
from carelens.core.quarantine import BatchResult, Quarantined
from carelens.genomics.definitions import load_definitions
from carelens.genomics.pgx import gene_positions, report_from_calls
from carelens.genomics.vcf import read_calls_multi, vcf_info

TABLE = "pgx_cohort"


class FrequencyRow(BaseModel):
    """How often one diplotype or phenotype (``kind``) of a gene occurs in the cohort."""

    gene: str
    kind: str
    value: str
    count: int
    samples_called: int
    samples_total: int
    frequency: float


class CohortResult(BaseModel):
    """Frequencies, where they were written, and the VCFs that could not be used (with a reason)."""

    samples: int
    files: int
    rows: list[FrequencyRow]
    quarantined: list[Quarantined] = Field(default_factory=list)
    parquet: str | None = None
    view: str | None = None


def cohort_frequencies(vcfs: list[Path]) -> CohortResult:
    """Call every sample of every VCF and count diplotypes and phenotypes per gene (ties count as 'A or B')."""
    defs = load_definitions()
    positions = gene_positions(defs)
    dip: dict[str, Counter[str]] = {}
    phe: dict[str, Counter[str]] = {}
    called: Counter[str] = Counter()
    total = 0
    batch = BatchResult()
    for path in progress(vcfs, desc="VCFs", unit="file"):
        try:
            info = vcf_info(path)
            if not info.samples:
                raise CarelensError(f"{path.name}: the VCF has no sample columns")
            per_sample = read_calls_multi(path, info.samples, positions, info)
        except CarelensError as err:
            batch.quarantine(str(path), "", err.reason)
            continue
        batch.done["vcf"] += 1
        for name, calls in per_sample.items():
            total += 1
            report = report_from_calls(defs, name, calls, info.warnings)
            for g in report.genes:
                if not g.diplotypes:
                    continue
                called[g.gene] += 1
                dip.setdefault(g.gene, Counter())[" or ".join(g.diplotypes)] += 1
                phe.setdefault(g.gene, Counter())[g.phenotype or "not determined"] += 1
    rows = []
    for kind, table in (("diplotype", dip), ("phenotype", phe)):
        for gene, counts in sorted(table.items()):
            for value, count in counts.most_common():
                rows.append(
                    FrequencyRow(
                        gene=gene,
                        kind=kind,
                        value=value,
                        count=count,
                        samples_called=called[gene],
                        samples_total=total,
                        frequency=round(count / called[gene], 6),
                    )
                )
    return CohortResult(samples=total, files=batch.done["vcf"], rows=rows, quarantined=batch.quarantined)


def write_to_lake(result: CohortResult, store: Path) -> CohortResult:
    """Write the frequency rows as Parquet under ``<store>/lake/pgx_cohort/`` and (re)create the DuckDB view."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = store / "lake"
    folder = lake / TABLE
    folder.mkdir(parents=True, exist_ok=True)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    table = pa.Table.from_pylist(
        [{**r.model_dump(), "run": run} for r in result.rows],
        schema=pa.schema(
            [
                ("gene", pa.string()),
                ("kind", pa.string()),
                ("value", pa.string()),
                ("count", pa.int64()),
                ("samples_called", pa.int64()),
                ("samples_total", pa.int64()),
                ("frequency", pa.float64()),
                ("run", pa.string()),
            ]
        ),
    )
    for old in folder.glob("*.parquet"):  # the table holds the latest cohort run
        old.unlink()
    out = folder / f"{run}-{stable_id(run, result.samples)}.parquet"
    pq.write_table(table, out)
    con = duckdb.connect(str(lake / "catalog.duckdb"))
    try:
        glob = str(folder / "*.parquet").replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW {TABLE} AS SELECT * FROM read_parquet('{glob}')")
    finally:
        con.close()
    return result.model_copy(update={"parquet": str(out), "view": TABLE})


def plot_phenotypes(result: CohortResult, out: Path) -> Path:
    """A stacked bar chart (PNG) of phenotype frequencies per gene across the cohort."""
    from matplotlib import colormaps

    rows = [r for r in result.rows if r.kind == "phenotype"]
    genes = sorted({r.gene for r in rows})
    left = dict.fromkeys(genes, 0.0)
    values = sorted({r.value for r in rows})
    with figure(out, (10, 0.45 * max(len(genes), 2) + 1.5)) as (_, ax):
        for i, value in enumerate(values):
            widths = [next((r.frequency for r in rows if r.gene == g and r.value == value), 0.0) for g in genes]
            ax.barh(genes, widths, left=[left[g] for g in genes], color=colormaps["tab20"](i % 20), label=value)
            for g, w in zip(genes, widths, strict=True):
                left[g] += w
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"fraction of called samples (cohort of {result.samples})")
        ax.set_title("Pharmacogenomic phenotypes across the cohort")
        ax.invert_yaxis()
        ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return out
