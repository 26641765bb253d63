"""A VCF read as a stream (bounded memory) fills the lake exactly as one read whole."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from carelens.ingest import ingest, pipeline, vcf
from carelens.store import Lake
from tests.ingest.makefiles import VCF_HEADER, VCF_LINES, write_vcf


def _tables(store: Path) -> dict[str, list[tuple]]:
    lake = Lake(store)
    variants = lake.read_table("variants").to_pylist()
    quarantine = lake.read_table("quarantine").to_pylist()
    sources = lake.read_table("sources").to_pylist()
    tables = (("variants", variants), ("quarantine", quarantine), ("sources", sources))
    return {name: sorted(repr(sorted(r.items())) for r in rows) for name, rows in tables}


def _inputs(folder: Path, shared: Path | None) -> list[Path]:
    lines = [f"chr10\t{94_000_000 + i}\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t1|1" for i in range(40)]
    lines[17] = "chr10\tABC\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t0/1"  # one bad line among good ones
    files = [write_vcf(folder / "calls.vcf", [*VCF_LINES, *lines])]
    files.append(write_vcf(folder / "hg19.vcf", header=VCF_HEADER.replace("GRCh38", "GRCh37")))
    packed = folder / "packed.vcf.gz"
    packed.write_bytes(gzip.compress((VCF_HEADER + "\n".join(VCF_LINES) + "\n").encode()))
    files.append(packed)
    if shared is not None:
        files.append(shared / "genomics" / "background" / "PG_NA12878_hg38-chr21.vcf.gz")
    return files


def test_streamed_vcfs_fill_the_lake_like_whole_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _inputs(tmp_path / "in", None)
    whole = ingest(files, tmp_path / "whole")
    monkeypatch.setattr(pipeline, "STREAM_VCF_BYTES", 0)  # every VCF streamed
    monkeypatch.setattr(vcf, "STREAM_LINES", 7)  # many blocks (Parquet row groups) per file
    streamed = ingest(files, tmp_path / "streamed")
    assert streamed.ingested() == whole.ingested() and streamed.ingested()["variants"] == 3 + 3 + 39
    assert sorted((q.where, q.reason) for q in streamed.quarantined) == sorted(
        (q.where, q.reason) for q in whole.quarantined
    )
    assert _tables(tmp_path / "streamed") == _tables(tmp_path / "whole")
    assert Lake(tmp_path / "streamed").query("SELECT count(*) AS n FROM variants").column(0)[0].as_py() == 2 * 45
    again = ingest(files, tmp_path / "streamed")  # committed sources are not read again
    assert sum(again.ingested().values()) == 0 and again.unchanged == len(files)


def test_a_large_shared_vcf_streams(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    background = shared_data / "genomics" / "background" / "PG_NA12878_hg38-chr21.vcf.gz"
    monkeypatch.setattr(pipeline, "STREAM_VCF_BYTES", 0)
    result = ingest([background], tmp_path / "store")
    assert result.ingested()["variants"] == 65_370 and result.quarantined == []
    parts = Lake(tmp_path / "store").part_files("variants")
    import pyarrow.parquet as pq

    assert len(parts) == 1 and pq.ParquetFile(parts[0]).num_row_groups == 2  # 50,000-line blocks
