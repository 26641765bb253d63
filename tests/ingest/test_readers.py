"""The readers on their own: FHIR bundle kinds and references, notes, DICOM, VCF."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

import carelens.ingest.pipeline as pipeline
from carelens.core import BatchResult, InputError
from carelens.ingest import decode_note, ingest, read_dicom_header, read_fhir, read_text_note, read_vcf
from carelens.ingest.vcf import sample_count
from carelens.store import Lake
from tests.ingest.makefiles import (
    VCF_HEADER,
    VCF_LINES,
    bundle,
    doc_ref,
    observation,
    patient,
    write_json,
    write_ndjson,
    write_vcf,
)


@pytest.mark.parametrize("kind", ["transaction", "collection", "searchset"])
def test_bundle_kinds_and_reference_normalising(kind: str, tmp_path: Path) -> None:
    doc = bundle(patient("p1"), observation("o1", "urn:uuid:p1"), kind=kind)
    doc["entry"][0]["fullUrl"] = "https://fhir.example.org/Patient/p1"
    doc["entry"][1]["resource"]["subject"]["reference"] = "https://fhir.example.org/Patient/p1"
    del doc["entry"][1]["resource"]["id"]  # POST entries may carry the id only in fullUrl
    path = write_json(tmp_path / "b.json", doc)
    batch = BatchResult()
    items = list(read_fhir([path], batch))
    assert batch.quarantined == []
    assert [(i.key, i.where, i.patient_id) for i in items] == [
        ("Patient/p1", "entry 0", "p1"),
        ("Observation/o1", "entry 1", "p1"),
    ]
    assert items[1].resource["subject"] == {"reference": "Patient/p1"}


def test_single_resource_and_ndjson_folder(tmp_path: Path) -> None:
    write_json(tmp_path / "one" / "patient.json", patient("p1"))
    write_ndjson(
        tmp_path / "one" / "Observation.ndjson", observation("o1", "Patient/p1"), observation("o2", "urn:uuid:x")
    )
    batch = BatchResult()
    items = list(read_fhir([tmp_path / "one"], batch))
    assert [(i.key, i.where) for i in items] == [("Observation/o1", "line 1"), ("Patient/p1", "resource")]
    assert [(q.where, q.reason) for q in batch.quarantined] == [
        ("line 2", "urn: reference outside a bundle cannot be resolved")
    ]


def test_forward_reference_across_files_resolves(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "a_obs.ndjson", observation("o1", "Patient/p1"))
    write_ndjson(tmp_path / "b_pat.ndjson", patient("p1"))
    result = ingest([tmp_path / "a_obs.ndjson", tmp_path / "b_pat.ndjson"], tmp_path / "store")
    assert result.quarantined == [] and result.ingested()["Observation"] == 1
    later = write_ndjson(tmp_path / "c_obs.ndjson", observation("o2", "Patient/p1"), observation("o3", "Patient/gone"))
    result = ingest([later], tmp_path / "store")  # p1 is already in the lake
    assert result.ingested()["Observation"] == 1
    assert [(q.where, q.reason) for q in result.quarantined] == [
        ("line 2", "reference to a resource missing from the batch (Patient)")
    ]


def test_unknown_named_file_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.4 not for carelens")
    result = ingest([path], tmp_path / "store")
    assert [(q.where, q.reason) for q in result.quarantined] == [("file", "not a FHIR, note, DICOM or VCF file")]


def test_decode_note_charsets_and_errors() -> None:
    text = "Patient denies chest pain. Café."
    assert decode_note(doc_ref("d1", "Patient/p1", text)).text == text
    latin = doc_ref("d2", "Patient/p1", "x", content_type="text/plain; charset=ISO-8859-1")
    latin["content"][0]["attachment"]["data"] = base64.b64encode(text.encode("latin-1")).decode()
    note = decode_note(latin)
    assert (note.text, note.patient_id, note.type, note.date) == (text, "p1", "Progress note", "2020-01-01")
    bad = doc_ref("d3", "Patient/p1", "x")
    bad["content"][0]["attachment"]["data"] = "not base64!!"
    cases = {
        "not valid base64": bad,
        "not text (content type application/pdf)": doc_ref("d4", "Patient/p1", "x", content_type="application/pdf"),
        "no attachment": {"resourceType": "DocumentReference", "id": "d5", "content": []},
        "by URL": {
            "resourceType": "DocumentReference",
            "id": "d6",
            "content": [{"attachment": {"contentType": "text/plain", "url": "http://x/y"}}],
        },
        "not a DocumentReference": patient("p1"),
    }
    for reason, resource in cases.items():
        with pytest.raises(InputError, match=re.escape(reason)):
            decode_note(resource)
    utf8_as_ascii = doc_ref("d7", "Patient/p1", text, content_type="text/plain; charset=us-ascii")
    with pytest.raises(InputError, match="not valid ascii"):
        decode_note(utf8_as_ascii)


def test_text_note_and_sidecar(tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text("PT C/O SOB. DENIES CP.")
    assert read_text_note(tmp_path / "n.txt").patient_id is None
    write_json(tmp_path / "n.meta.json", {"patient_id": "p9", "note_id": "n-1"})
    note = read_text_note(tmp_path / "n.txt")
    assert (note.note_id, note.patient_id, note.text) == ("n-1", "p9", "PT C/O SOB. DENIES CP.")


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"])
def test_dicom_header_and_truncation(name: str) -> None:
    data = Path(get_testdata_file(name)).read_bytes()
    header = read_dicom_header(data)
    assert header["sop_uid"] and header["study_uid"] and header["rows"] and header["modality"]
    with pytest.raises(InputError, match="truncated"):
        read_dicom_header(data[: len(data) - 100])
    with pytest.raises(InputError, match="not a DICOM file"):
        read_dicom_header(b"hello")


def test_dicom_shared_files(shared_data: Path, tmp_path: Path) -> None:
    files = [shared_data / "imaging" / "chest-cr-rsna.dcm", *sorted((shared_data / "deid" / "dicom").glob("*.dcm"))]
    result = ingest(files, tmp_path / "store")
    assert result.ingested()["dicom"] == len(files) == 4 and result.quarantined == []


def test_vcf_plain_gzip_and_sites_only(tmp_path: Path) -> None:
    text = VCF_HEADER + "\n".join(VCF_LINES) + "\n"
    plain = read_vcf(tmp_path / "a.vcf", text.encode(), "a")
    packed = read_vcf(tmp_path / "a.vcf.gz", gzip.compress(text.encode()), "a")
    assert plain.rows == packed.rows and plain.records == 3 and len(plain.rows) == 6
    assert plain.rows[1][:10] == ("S2", "chr10", 94781859, "rs4244285", "G", "A", 50.0, "PASS", "1|1", True)
    assert plain.rows[5][8:10] == ("./.", False)
    sites = "\n".join(line.rsplit("\t", 3)[0] for line in text.strip().split("\n")[-4:])
    header = "\n".join(text.split("\n")[:4])
    only = read_vcf(tmp_path / "s.vcf", (header + "\n" + sites + "\n").encode(), "s")
    assert only.records == 3 and [r[0] for r in only.rows] == [None, None, None]


def test_vcf_file_level_problems(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a VCF"):
        read_vcf(tmp_path / "x.vcf", b"chr1\t1\t.\tA\tC\n", "x")
    with pytest.raises(InputError, match="no #CHROM"):
        read_vcf(tmp_path / "x.vcf", b"##fileformat=VCFv4.2\n", "x")
    with pytest.raises(InputError, match="gzip"):
        read_vcf(tmp_path / "x.vcf.gz", gzip.compress(VCF_HEADER.encode())[:20], "x")
    hg19 = VCF_HEADER.replace("##reference=GRCh38\n", "##reference=file:///refs/hg19.fa\n")
    with pytest.raises(InputError, match="non-GRCh38"):
        read_vcf(tmp_path / "x.vcf", hg19.encode(), "x")


def test_shared_vcfs(shared_data: Path) -> None:
    background = shared_data / "genomics" / "background" / "PG_NA12878_hg38-chr21.vcf.gz"
    result = read_vcf(background, background.read_bytes(), "bg")
    assert result.records == 65_370 and result.bad_lines == []


def test_unreadable_file_is_quarantined_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = write_json(tmp_path / "in" / "a.json", patient("p1"))
    write_json(tmp_path / "in" / "b.json", patient("p2"))
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "b.json":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = ingest([good.parent], tmp_path / "store")
    assert result.ingested()["Patient"] == 1
    assert [(Path(q.source).name, q.where, q.reason) for q in result.quarantined] == [
        ("b.json", "file", "cannot read the file (PermissionError)")
    ]


def test_folder_that_cannot_be_listed_is_quarantined_not_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_json(tmp_path / "in" / "a.json", patient("p1"))
    locked = write_json(tmp_path / "in" / "locked" / "b.json", patient("p2")).parent
    real = os.scandir

    def scandir(path: Any) -> Any:
        if isinstance(path, str) and Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = ingest([good.parent], tmp_path / "store")
    assert result.ingested()["Patient"] == 1
    assert [(Path(q.source), q.where, q.reason) for q in result.quarantined] == [
        (locked, "folder", "cannot list the folder: its files were not read")
    ]


def test_ndjson_under_json_name(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "export.json", patient("p1"), observation("o1", "Patient/p1"))
    batch = BatchResult()
    assert [(i.key, i.where) for i in read_fhir([path], batch)] == [
        ("Patient/p1", "line 1"),
        ("Observation/o1", "line 2"),
    ]
    pretty = write_json(tmp_path / "pretty.json", patient("p2"))
    pretty.write_text(pretty.read_text()[:-1] + "\n}\n}")  # a stray brace: malformed, not NDJSON
    assert list(read_fhir([pretty], batch)) == [] and batch.quarantined[0].reason.startswith("malformed JSON")


def test_read_ahead_keeps_order_and_returns_errors(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from carelens.ingest.pipeline import _read_ahead

    paths = [tmp_path / f"{name}.txt" for name in "abc"]
    for path in paths[::2]:
        path.write_bytes(path.stem.encode() * 3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        read = list(_read_ahead(pool, [(path, index == 1) for index, path in enumerate(paths)]))
    assert [(path, named) for path, named, _ in read] == [(paths[0], False), (paths[1], True), (paths[2], False)]
    loaded = [item for _, _, item in read]
    assert loaded[0] == (b"aaa", hashlib.sha256(b"note\0aaa").hexdigest(), "note")  # kind and bytes
    assert isinstance(loaded[1], FileNotFoundError)
    assert loaded[2] == (b"ccc", hashlib.sha256(b"note\0ccc").hexdigest(), "note")


def test_a_resource_without_id_or_fullurl_gets_a_stable_key_not_dropped(tmp_path: Path) -> None:
    """Counts in = done + quarantined: a transaction entry may leave the id to the server."""
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Keyless"}]}},
        {"fullUrl": "urn:uuid:o-1", "resource": {"resourceType": "Observation", "status": "final"}},
        {"fullUrl": "http://x.org/fhir/Condition/9", "resource": {"resourceType": "Condition"}}]}  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    (tmp_path / "Observation.ndjson").write_text('{"resourceType": "Observation", "status": "final"}\n')
    keys = []
    for _run in range(2):
        batch = BatchResult()
        items = list(read_fhir([tmp_path], batch))
        assert not batch.quarantined and len(items) == 4
        keys.append([item.key for item in items])
    assert keys[0] == keys[1]  # the same key in every run
    assert sum(k.split("/")[1].startswith("syn-") for k in keys[0]) == 3 and "Observation/o-1" in keys[0]


SITES_HEADER = VCF_HEADER.replace('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n', "").replace(
    "\tFORMAT\tS1\tS2", ""
)
SITES_LINES = [line.rsplit("\t", 3)[0] for line in VCF_LINES]  # a reference's sites: no FORMAT, no sample


def test_sample_count_reads_the_header_only(tmp_path: Path) -> None:
    genome = write_vcf(tmp_path / "g.vcf")
    assert sample_count(genome) == 2 == sample_count(genome, gzip.compress(genome.read_bytes()))
    sites = write_vcf(tmp_path / "ref.vcf", SITES_LINES, SITES_HEADER)
    assert sample_count(sites) == 0 == sample_count(sites, gzip.compress(sites.read_bytes()))
    assert sample_count(tmp_path / "x.vcf", b"hello\n") is None
    assert sample_count(tmp_path / "y.vcf.gz", gzip.compress(sites.read_bytes())[:30]) is None


@pytest.mark.parametrize("streamed", [False, True])
def test_sites_only_vcf_in_a_folder_is_skipped_but_ingested_when_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    """A folder of genomes may keep a reference beside them (the demo's ClinVar extract): found in
    a folder, a VCF with no sample is skipped as not patient data; named, it is ingested."""
    if streamed:
        monkeypatch.setattr(pipeline, "STREAM_VCF_BYTES", 10)
    folder = tmp_path / "genomics"
    write_vcf(folder / "p1.vcf")
    (folder / "p2.vcf.gz").write_bytes(gzip.compress(write_vcf(tmp_path / "p2.vcf").read_bytes()))
    reference = write_vcf(folder / "clinvar.vcf", SITES_LINES, SITES_HEADER)
    (folder / "broken.vcf").write_text("not a VCF\n")
    walked = ingest([folder], tmp_path / "walked", processes=1)
    assert [Path(s.source).name for s in walked.skipped] == ["clinvar.vcf"]
    assert walked.done["variants"] == 6 and [(Path(q.source).name, q.where) for q in walked.quarantined] == [
        ("broken.vcf", "file")
    ]
    samples = Lake(tmp_path / "walked").read_table("variants", ["sample"]).column("sample").to_pylist()
    assert sorted(samples) == ["S1"] * 6 + ["S2"] * 6
    named = ingest([reference], tmp_path / "named", processes=1)
    assert named.done["variants"] == 3 and named.skipped == []
    assert Lake(tmp_path / "named").read_table("variants", ["sample"]).column("sample").to_pylist() == [None] * 3


CRAFTED_VCF_LINES = {  # line -> the reason it is refused (each field htslib parses is allow-listed)
    "chr10\t12\u00b3\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t0/1": "POS",  # a superscript: str.isdigit() says digit
    "chr10\t\u0661\u0662\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t0/1": "POS",  # Arabic-Indic digits
    "chr10\t99999999999999999999\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t0/1": "POS",
    "\t123\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t0/1": "CHROM",
    "chr\u00e9\t123\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t0/1": "CHROM",
    "chr10\t123\t.\tG\tA\tnan\tPASS\t.\tGT\t0/1\t0/1": "QUAL",
    "chr10\t123\t.\tG\tA\t\u0661\tPASS\t.\tGT\t0/1\t0/1": "QUAL",
    "chr10\t123\t.\tG\tA\t.\tPASS\t.\tGT\t\u0661/1\t0/1": "genotype",
    "chr10\t123\t.\tG\tA\t.\tPASS\t.\tGT\t99999999999/1\t0/1": "genotype",
    "chr10\t123\t.\tG\tA\t.\tPASS\t.\tGT\t0/2\t0/1": "genotype",  # allele 2 of a line with one ALT
}


def test_crafted_vcf_lines_are_refused_one_by_one_before_htslib_reads_them(tmp_path: Path) -> None:
    """Lines cyvcf2 0.34 would crash the process on (a POS htslib cannot read) or fail the file with: each is a
    bad line with its reason, and the other lines are read."""
    lines = [VCF_LINES[0], *CRAFTED_VCF_LINES, VCF_LINES[1], "chr10\t0\t.\tG\tA\t-1.5e2\tPASS\t.\tGT\t0|1\t1/1"]
    text = VCF_HEADER + "\n".join(lines) + "\n"
    for name, data in (("a.vcf", text.encode()), ("a.vcf.gz", gzip.compress(text.encode()))):
        result = read_vcf(tmp_path / name, data, "a")
        first = VCF_HEADER.count("\n") + 2  # file line numbers: the header, then the first good line
        assert [n for n, _ in result.bad_lines] == list(range(first, first + len(CRAFTED_VCF_LINES)))
        for (_, reason), field in zip(result.bad_lines, CRAFTED_VCF_LINES.values(), strict=True):
            assert reason.startswith(f"malformed line ({field}"), reason
        assert result.records == 3 and [r[2] for r in result.rows[::2]] == [94781859, 94761900, 0]


@pytest.mark.parametrize("uid", ["1.2.3\x00../../x", "1.2.840.ABC", "1." + "2" * 70, "1..2", " "])
def test_dicom_whose_instance_uid_is_no_uid_is_refused(uid: str) -> None:
    """The instance UIDs key the lake and go into the reads' SR and ImagingStudy: digits and dots, at most 64."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with warnings.catch_warnings():  # pydicom warns about the value it is told to write
        warnings.simplefilter("ignore")
        ds.SOPInstanceUID = uid
        buffer = io.BytesIO()
        ds.save_as(buffer)
    with pytest.raises(InputError, match=r"^DICOM SOPInstanceUID is not a UID|lacks SOPInstanceUID"):
        read_dicom_header(buffer.getvalue())


def test_dicom_uid_with_leading_zero_components_is_kept() -> None:
    """Old devices write components such as ``.0604`` (not PS3.5's form, but a unique key all the same)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = "1.2.840.113619.2.55.3.0604.1"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    assert read_dicom_header(buffer.getvalue())["sop_uid"] == "1.2.840.113619.2.55.3.0604.1"
