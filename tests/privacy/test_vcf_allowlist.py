"""VCF by allow-list: one canary per header line kind, column and INFO key; none survives, the audit
finds each with de-identification off; broken files are refused with nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carelens.core.errors import InputError
from carelens.privacy.audit import audit
from carelens.privacy.keys import KeyService
from carelens.privacy.vcf import deid_vcf
from tests.privacy.conftest import CANARY, write_canary_source

SAMPLE = CANARY["mrn"]
LINES = {
    "fileDate": "##fileDate=20190723",
    "source": "##source=/home/quixley/pipeline",
    "commandline": "##commandline=gatk -I /data/Zebulon_Quixley.bam",
    "reference": "##reference=file:///data/Quixley/GRCh38.fa",
    "comment": "# run for Zebulon Quixley MRN88421907",
    "sample": f"##SAMPLE=<ID={SAMPLE},Name=Zebulon Quixley>",
    "info description": '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth; reviewed by Quixley 617-555-0199">',
    "filter description": '##FILTER=<ID=LowQ,Description="Low quality per Zebulon Quixley">',
    "contig assembly": "##contig=<ID=chr1,length=248956422,assembly=/data/Quixley/GRCh38>",
    "unknown info": '##INFO=<ID=NOTE,Number=1,Type=String,Description="free note">',
}
HEADER = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + SAMPLE
RECORDS = {
    "ID column": f"chr1\t100\tQuixley_{SAMPLE}\tA\tG\t50\tPASS\tDP=10\tGT\t0/1",
    "INFO value": "chr1\t200\trs123\tC\tT\t50\tLowQ\tDP=9;NOTE=Zebulon_Quixley;GENE=BRCA1\tGT:DP\t1/1:9",
    "FORMAT value": "chr1\t300\t.\tG\tA\t.\tPASS\tDP=5\tGT:XN\t0/1:Quixley",
}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_canary_is_removed_and_the_rest_kept(tmp_path: Path, keys: KeyService) -> None:
    src = _write(tmp_path / "Zebulon_Quixley.vcf", ["##fileformat=VCFv4.2", *LINES.values(), HEADER, *RECORDS.values()])
    out = tmp_path / "out.vcf"
    counts = deid_vcf(src, out, keys, lambda _s: "pat-1")
    text = out.read_text()
    assert counts["records"] == 3 and counts["samples"] == 1
    for canary in ("quixley", "zebulon", "88421907", "5550199", "20190723", "/data", "/home"):
        assert canary not in text.lower(), canary
    lines = text.splitlines()
    assert lines[0] == "##fileformat=VCFv4.2"
    assert "##contig=<ID=chr1,length=248956422>" in lines
    assert any(x.startswith("##INFO=<ID=DP,Number=1,Type=Integer,Description=") for x in lines)
    assert not any(x.startswith("##INFO=<ID=NOTE") for x in lines)
    records = [x.split("\t") for x in lines if not x.startswith("#")]
    assert [r[2] for r in records] == [".", "rs123", "."]
    assert records[1][7] == "DP=9;GENE=BRCA1" and records[1][6] == "LowQ"
    assert records[2][8:] == ["GT", "0/1"]
    assert next(x for x in lines if x.startswith("#CHROM")).endswith(keys.pseudonym("pat-1"))


@pytest.mark.parametrize("place", sorted(set(LINES) - {"fileDate", "unknown info"}) + sorted(RECORDS))
def test_audit_finds_each_canary_without_deid(place: str, tmp_path: Path, canary_patient: dict) -> None:
    source = write_canary_source(tmp_path, canary_patient)  # the patient's FHIR: names, MRN, phone
    body = [LINES[place]] if place in LINES else []
    rec = [RECORDS[place]] if place in RECORDS else []
    (tmp_path / "out").mkdir()
    leaky = _write(tmp_path / "out" / "x.vcf", ["##fileformat=VCFv4.2", *body, HEADER.replace(SAMPLE, "S1"), *rec])
    assert audit(leaky, source).leaks, place


@pytest.mark.parametrize(
    "lines,reason",
    [
        (["hello"], "not a VCF"),
        (["##fileformat=VCFv4.2", "chr1\t1\t.\tA\tG\t.\t.\t."], "a record before the #CHROM header"),
        (["##fileformat=VCFv4.2", "##INFO=broken", HEADER], "malformed ##INFO line"),
        (["##fileformat=VCFv4.2", "##INFO=<Number=1>", HEADER], "##INFO line without a valid ID"),
        (["##fileformat=VCFv4.2", "#CHROM\tPOS", "x"], "malformed #CHROM header"),
        (["##fileformat=VCFv4.2", HEADER, "chr1\tNaN\t.\tA\tG"], "malformed record"),
        (["##fileformat=VCFv4.2", HEADER, "chr1\t12\u00b3\t.\tA\tG\t.\t.\t.\tGT\t0/1"], "malformed record"),
        (["##fileformat=VCFv4.2", HEADER, "chr1\t\u0661\u0662\t.\tA\tG\t.\t.\t.\tGT\t0/1"], "malformed record"),
        (["##fileformat=VCFv4.2"], "no #CHROM header line"),
    ],
)
def test_broken_files_are_refused_and_nothing_written(lines: list[str], reason: str, tmp_path: Path,
                                                      keys: KeyService) -> None:  # fmt: skip
    src = _write(tmp_path / "b.vcf", lines)
    with pytest.raises(InputError, match=reason):
        deid_vcf(src, tmp_path / "o.vcf", keys)
    assert list(tmp_path.iterdir()) == [src]


def test_header_descriptions_get_type_markers_never_surrogate_names(tmp_path: Path, keys: KeyService) -> None:
    """A description is metadata: what looks like PHI becomes ``[TYPE]``, never a surrogate name that
    could be another patient's (the audit matches every patient's names)."""
    from carelens.privacy.surrogates import _pools

    lines = ["##fileformat=VCFv4.2", LINES["filter description"],
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">', HEADER,
             "chr1\t100\t.\tA\tG\t50\tLowQ\t.\tGT\t0/1"]  # fmt: skip
    out = tmp_path / "out.vcf"
    deid_vcf(_write(tmp_path / "in.vcf", lines), out, keys, lambda _s: "pat-1")
    headers = [x for x in out.read_text().splitlines() if x.startswith("##FILTER") or x.startswith("##FORMAT")]
    filter_line = next(x for x in headers if x.startswith("##FILTER"))
    assert "Quixley" not in filter_line and re.search(r"\[[A-Z]+\]", filter_line), filter_line
    assert 'Description="Genotype"' in next(x for x in headers if x.startswith("##FORMAT"))  # no PHI, kept
    words = {w.strip("\"'<>=,.;[]") for x in headers for w in x.replace("=", " ").split()}
    assert not words & {*_pools()["first"], *_pools()["last"]}
