"""HTML / TSV reports, the cohort table in the lake, and the genome commands."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.genomics.cohort import cohort_frequencies, plot_phenotypes, write_to_lake
from carelens.genomics.definitions import DEFINITIONS_FILE, load_definitions
from carelens.genomics.pgx import pgx_report
from carelens.genomics.render import pgx_tsv, render_html

runner = CliRunner()


def test_html_report_shows_calls_evidence_and_drugs(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s2s2.vcf")
    html = render_html(pgx=report)
    assert "CYP2C19" in html and "*2/*2" in html and "Poor Metabolizer" in html
    assert "clopidogrel" in html and "Strong" in html
    assert "chr10:94781859" in html and "<code>A/A</code>" in html  # the position and genotype it rests on
    assert "not assayed" in html
    # genes the VCF does not cover at all are named in one line, not dropped silently
    uncovered = [g.gene for g in report.genes if g.reason and g.reason.startswith("none of the")]
    assert "NAT2" in uncovered
    line = next(x for x in html.splitlines() if "Not assayed at all" in x)
    assert all(gene in line for gene in uncovered)
    assert '<td class="strong">NAT2</td>' not in html and '<td class="strong">CYP2C19</td>' in html


def test_tsv_has_one_row_per_gene(test_vcfs: Path) -> None:
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s1s2.vcf")
    lines = pgx_tsv(report).splitlines()
    assert lines[0].startswith("sample\tgene\tdiplotypes")
    assert len(lines) == 1 + len(report.genes)
    assert any(line.split("\t")[1:3] == ["CYP2C19", "*1/*2"] for line in lines)


def test_cohort_frequencies_in_the_lake(test_vcfs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.vcf"
    bad.write_text("not a vcf\n")
    vcfs = [test_vcfs / "multisample.vcf.bgz", test_vcfs / "haplotype/cyp2c19/s2s2.vcf", bad]
    result = write_to_lake(cohort_frequencies(vcfs), tmp_path / "store")
    assert result.samples == 3 and result.files == 2
    assert [q.source for q in result.quarantined] == [str(bad)] and result.quarantined[0].reason
    con = duckdb.connect(str(tmp_path / "store/lake/catalog.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT value, count, samples_called FROM pgx_cohort WHERE gene = 'CYP2C19' AND kind = 'diplotype'"
    ).fetchall()
    assert sum(r[1] for r in rows) == rows[0][2]
    assert ("*2/*2", 1, rows[0][2]) in rows
    freq = con.execute("SELECT sum(frequency) FROM pgx_cohort WHERE gene='CYP2C19' AND kind='phenotype'").fetchone()
    assert freq is not None and abs(freq[0] - 1.0) < 1e-6
    assert "sample" not in [c[0] for c in con.execute("DESCRIBE pgx_cohort").fetchall()]  # no sample ids in the lake
    con.close()
    from carelens.store import Lake  # the store's SQL entry point sees the table too (carelens sql)

    via_lake = Lake(tmp_path / "store").query("SELECT count(*) AS n FROM pgx_cohort WHERE gene = 'CYP2C19'")
    assert via_lake.column("n").to_pylist() == [
        len(rows) + len([r for r in result.rows if r.gene == "CYP2C19" and r.kind == "phenotype"])
    ]
    png = plot_phenotypes(result, tmp_path / "cohort.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["pgx", "findings", "report", "cohort", "refresh-definitions"])
def test_help(command: str) -> None:
    result = runner.invoke(app, ["genome", command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_pgx_command_json_contract(test_vcfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["genome", "pgx", str(test_vcfs / "haplotype/cyp2c19/s1s2.vcf"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["sample"] == "PharmCAT" and isinstance(doc["drugs"], list)
    g = next(g for g in doc["genes"] if g["gene"] == "CYP2C19")
    assert {"gene", "diplotypes", "phenotype", "not_assayed", "reason", "positions"} <= set(g)
    assert g["diplotypes"] == ["*1/*2"] and g["reason"] is None


def test_pgx_command_html_and_bad_input(test_vcfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    vcf = str(test_vcfs / "multisample.vcf.bgz")
    ok = runner.invoke(app, ["genome", "report", vcf, "--sample", "Sample_1", "--out", str(out)])
    assert ok.exit_code == 0 and "<table>" in out.read_text()
    missing = runner.invoke(app, ["genome", "pgx", vcf, "--sample", "nobody"])
    assert missing.exit_code != 0


@pytest.mark.parametrize("fmt", ["tsv", "html"])
def test_findings_and_pgx_formats(fmt: str, test_vcfs: Path, shared_data: Path, tmp_path: Path) -> None:
    vcf = str(test_vcfs / "haplotype/cyp2c19/s2s2.vcf")
    clinvar = str(shared_data / "genomics/clinvar/clinvar_alleles_example_750_rows.single.b38.vcf")
    pgx_out, findings_out = tmp_path / f"p.{fmt}", tmp_path / f"f.{fmt}"
    assert runner.invoke(app, ["genome", "pgx", vcf, "--format", fmt, "--out", str(pgx_out)]).exit_code == 0
    args = ["genome", "findings", vcf, "--clinvar", clinvar, "--format", fmt, "--out", str(findings_out)]
    assert runner.invoke(app, args).exit_code == 0
    assert "*2/*2" in pgx_out.read_text()
    text = findings_out.read_text()
    assert ("sample\tgene" in text) if fmt == "tsv" else ("Secondary findings" in text and "No pathogenic" in text)


def test_refresh_definitions_command_records_source_and_version(
    pharmcat: Path, test_vcfs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "defs.json.gz"
    result = runner.invoke(app, ["genome", "refresh-definitions", "--from", str(pharmcat), "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["source"].startswith("CPIC") and meta["definition_versions"] and meta["generated"]
    assert meta["genes"] == 20 and meta["out"] == str(out) and out.exists()
    report = pgx_report(test_vcfs / "haplotype/cyp2c19/s2s2.vcf", definitions=load_definitions(out))
    assert report.definitions["definition_versions"] == meta["definition_versions"]
    assert report.provenance is not None and report.provenance.model_version == "+".join(meta["definition_versions"])
    bad = runner.invoke(app, ["genome", "refresh-definitions", "--from", str(tmp_path / "absent"), "--out", str(out)])
    assert bad.exit_code != 0


def test_refresh_definitions_never_overwrites_the_shipped_copy(pharmcat: Path) -> None:
    shipped = DEFINITIONS_FILE.read_bytes()
    result = runner.invoke(app, ["genome", "refresh-definitions", "--from", str(pharmcat)])
    assert result.exit_code == 2 and "--out" in result.output
    assert DEFINITIONS_FILE.read_bytes() == shipped
