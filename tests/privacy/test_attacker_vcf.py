"""VCF, an attacker's sweep: one planted canary per place (sample columns, ##SAMPLE, ##PEDIGREE,
##META, contig and FILTER ids, symbolic and breakend alleles, INFO and FORMAT values, bgzipped
and BCF files, file names). De-identified, none survives; planted into a de-identified file, the
audit finds each and the research ingest refuses the batch."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from carelens.core.errors import InputError
from carelens.ingest.research import BatchRefused, ingest_research
from carelens.privacy.audit import audit
from carelens.privacy.fhir import known_identifiers
from carelens.privacy.keys import KeyService
from carelens.privacy.known import Known
from carelens.privacy.vcf import deid_vcf
from tests.privacy.conftest import CANARY as C
from tests.privacy.conftest import write_canary_source

SAMPLE = C["mrn"]
FAMILY, GIVEN = C["family"], C["given"]
HEAD = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=248956422>",
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##INFO=<ID=GENE,Number=1,Type=String,Description="Gene">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">']  # fmt: skip
RECORD = "chr1\t100\trs1\tA\tG\t50\tPASS\tDP=10;GENE=BRCA1\tGT:AD\t0/1:5,5"
# place -> (header lines, records)
PLANTS: dict[str, tuple[list[str], list[str]]] = {
    "##SAMPLE": ([f'##SAMPLE=<ID={SAMPLE},Individual={GIVEN}_{FAMILY},Description="{FAMILY}">'], []),
    "##PEDIGREE": ([f"##PEDIGREE=<Child={SAMPLE},Mother={FAMILY}_mother,Father={GIVEN}>"], []),
    "##META": ([f"##META=<ID=Family,Type=String,Number=.,Values=[{FAMILY}]>"], []),
    "contig id": ([f"##contig=<ID={FAMILY},length=1000>"], [f"{FAMILY}\t5\t.\tA\tG\t9\tPASS\tDP=3\tGT:AD\t0/1:1,2"]),
    "FILTER id": (
        [f'##FILTER=<ID={FAMILY},Description="x">'],
        [f"chr1\t7\t.\tA\tG\t9\t{FAMILY}\tDP=3\tGT:AD\t0/1:1,2"],
    ),
    "symbolic ALT allele": ([], [f"chr1\t8\t.\tA\t<{FAMILY}>\t9\tPASS\tDP=3\tGT:AD\t0/1:1,2"]),
    "breakend ALT mate contig": ([], [f"chr1\t9\t.\tA\tA[{FAMILY}:100[\t9\tPASS\tDP=3\tGT:AD\t0/1:1,2"]),
    "INFO value": ([], [f"chr1\t10\t.\tA\tG\t9\tPASS\tDP=3;GENE={GIVEN}_{FAMILY}\tGT:AD\t0/1:1,2"]),
    "INFO value percent-encoded": ([], [f"chr1\t13\t.\tA\tG\t9\tPASS\tDP=3;GENE=Z%65bulon%5F{FAMILY}\tGT:AD\t0/1:1,2"]),
    "FORMAT value": ([], [f"chr1\t11\t.\tA\tG\t9\tPASS\tDP=3\tGT:AD\t0/1:{SAMPLE}"]),
    "ID column": ([], [f"chr1\t12\t{FAMILY};{SAMPLE}\tA\tG\t9\tPASS\tDP=3\tGT:AD\t0/1:1,2"]),
}


def _vcf(header: list[str], records: list[str], sample: str = SAMPLE) -> str:
    chrom = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + sample
    return "\n".join([*HEAD, *header, chrom, RECORD, *records]) + "\n"


def _bcf(text: str) -> bytes:
    """A BCF 2.2 (BGZF-compressed) holding ``text`` as its header, as bcftools writes it."""
    header = text.split("\n#CHROM")[0] + "\n#CHROM" + text.split("\n#CHROM")[1].split("\n")[0] + "\n\0"
    return gzip.compress(b"BCF\x02\x02" + struct.pack("<I", len(header)) + header.encode())


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, Known]:
    """The identified FHIR of the patient (the names, MRN) and a VCF of the patient's sample."""
    patient = {"resourceType": "Patient", "id": "pat-canary-1", "name": [{"family": FAMILY, "given": [GIVEN]}],
               "identifier": [{"system": "http://hospital.example.org/mrn", "value": C["mrn"]}]}  # fmt: skip
    src = write_canary_source(tmp_path, patient)
    (src / "sample.vcf").write_text(_vcf([], []))
    known = Known(values={v for k in known_identifiers([src]).values() for v in k.values})
    return src, known


@pytest.mark.parametrize("place", sorted(PLANTS))
@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_deidentified_vcf_holds_no_canary(place: str, suffix: str, source: tuple[Path, Known], tmp_path: Path,
                                          keys: KeyService) -> None:  # fmt: skip
    src, known = source
    text = _vcf(*PLANTS[place])
    path = tmp_path / f"in{suffix}"
    path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    out = tmp_path / "batch" / "out.vcf"
    deid_vcf(path, out, keys, lambda _s: "pat-canary-1", known)
    cleaned = out.read_text().lower()
    for canary in (FAMILY.lower(), GIVEN.lower(), SAMPLE.lower()):
        assert canary not in cleaned, (place, canary)
    assert "rs1\ta\tg" in cleaned  # the plain record stays
    assert audit(out.parent, src, keys).clean


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_the_audit_finds_each_place_and_ingest_refuses(place: str, source: tuple[Path, Known], tmp_path: Path,
                                                       keys: KeyService) -> None:  # fmt: skip
    src, _known = source
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "out.vcf").write_text(_vcf(*PLANTS[place], sample=keys.pseudonym("pat-canary-1")))
    report = audit(batch, src, keys)
    assert report.leaks, place
    assert all(FAMILY.lower() not in x.location.lower() for x in report.leaks)
    with pytest.raises(BatchRefused):
        ingest_research([batch], [src], tmp_path / "store")


def test_sample_column_bcf_and_file_name_are_found(source: tuple[Path, Known], tmp_path: Path,
                                                   keys: KeyService) -> None:  # fmt: skip
    src, _known = source
    for name, data in {"a.vcf": _vcf([], []).encode(), "b.bcf": _bcf(_vcf([], [])),
                       f"{FAMILY}.vcf": _vcf([], [], keys.pseudonym("pat-canary-1")).encode()}.items():  # fmt: skip
        batch = tmp_path / name.replace(".", "_")
        batch.mkdir()
        (batch / name).write_bytes(data)
        assert audit(batch, src, keys).leaks, name


def test_a_bcf_is_refused_not_half_cleaned(source: tuple[Path, Known], tmp_path: Path, keys: KeyService) -> None:
    path = tmp_path / "in.bcf"
    path.write_bytes(_bcf(_vcf(*PLANTS["##SAMPLE"])))
    with pytest.raises(InputError):
        deid_vcf(path, tmp_path / "out.vcf", keys)
    assert not (tmp_path / "out.vcf").exists()


def test_a_refusal_never_names_the_file(tmp_path: Path, keys: KeyService) -> None:
    """File names name patients: the one-line reason says what is wrong and where, not which file."""
    path = tmp_path / f"{GIVEN}_{FAMILY}.vcf"
    path.write_text(_vcf([], ["chr1\tNaN\t.\tA\tG"]))
    with pytest.raises(InputError) as err:
        deid_vcf(path, tmp_path / "out.vcf", keys)
    assert "malformed record" in str(err.value) and FAMILY not in str(err.value)
