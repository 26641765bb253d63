"""FHIR and VCF de-identification with canaries in every free-text field; the leak audit."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core.errors import UsageError
from carelens.privacy.audit import audit
from carelens.privacy.fhir import deid_fhir_path
from carelens.privacy.keys import KeyService
from carelens.privacy.vcf import deid_vcf
from tests.privacy.conftest import CANARY, write_canary_source

C = CANARY


def test_fhir_deid_removes_every_canary_and_keeps_references(tmp_path: Path, keys: KeyService, canary_patient: dict):
    src = write_canary_source(tmp_path, canary_patient)
    out = tmp_path / "out"
    result = deid_fhir_path(src, out, keys)
    assert result.done["resources"] == 5 and not result.quarantined
    report = audit(out, src)
    assert report.identifiers["name"] >= 2 and report.identifiers["mrn"] >= 1
    assert report.clean, report.leaks
    pseudonym = keys.pseudonym("pat-canary-1")
    assert [p.name for p in out.iterdir()] == [f"{pseudonym}.json"]  # the output is named by the pseudonym
    bundle = json.loads((out / f"{pseudonym}.json").read_text())
    by_type = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    assert by_type["Patient"]["id"] == pseudonym
    assert all(by_type[t]["subject"]["reference"] == f"Patient/{pseudonym}" for t in ("Encounter", "Condition"))
    assert by_type["Patient"]["birthDate"] == "1951" or len(by_type["Patient"]["birthDate"]) == 4
    assert "name" not in by_type["Patient"] and "telecom" not in by_type["Patient"]
    shifted = by_type["Observation"]["effectiveDateTime"]
    assert shifted != "2019-07-23" and len(shifted) == 10
    text = base64.b64decode(by_type["DocumentReference"]["content"][0]["attachment"]["data"]).decode()
    assert "Quixley".upper() not in text.upper() and text.strip()


def test_audit_finds_canaries_without_deid(tmp_path: Path, keys: KeyService, canary_patient: dict) -> None:
    src = write_canary_source(tmp_path, canary_patient)
    passthrough = tmp_path / "passthrough"
    deid_fhir_path(src, passthrough, keys, passthrough=True)
    report = audit(passthrough, src)
    kinds = {leak.value_kind for leak in report.leaks}
    assert {"name", "mrn", "ssn", "phone", "address", "birth_date"} <= kinds
    assert all(C["family"] not in leak.location for leak in report.leaks)
    assert all(leak.location.startswith("bundle.json:") for leak in report.leaks)


def test_fhir_bad_input_quarantined(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "bad"
    src.mkdir()
    (src / "broken.json").write_text("{not json")
    (src / "notresource.json").write_text(json.dumps({"hello": "world"}))
    (src / "rows.ndjson").write_text('{"resourceType": "Observation", "id": "o1", "status": "final"}\n[1, 2]\n')
    result = deid_fhir_path(src, tmp_path / "out", keys)
    assert result.done["resources"] == 1
    reasons = sorted(q.reason for q in result.quarantined)
    assert reasons == ["not a FHIR resource (no resourceType)", "not a FHIR resource (no resourceType)",
                       "not valid JSON"]  # fmt: skip
    assert not (tmp_path / "out" / "broken.json").exists()


def test_cli_fhir_needs_secret_and_audit_exit_codes(tmp_path: Path, canary_patient: dict, monkeypatch) -> None:
    src = write_canary_source(tmp_path, canary_patient)
    runner = CliRunner()
    monkeypatch.delenv("CARELENS_SECRET_FILE", raising=False)
    monkeypatch.delenv("CARELENS_SECRET", raising=False)
    res = runner.invoke(app, ["deid", "fhir", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "CARELENS_SECRET_FILE" in str(res.exception)
    monkeypatch.setenv("CARELENS_SECRET", "ab" * 32)
    assert runner.invoke(app, ["deid", "fhir", str(src), "--out", str(tmp_path / "o")]).exit_code == 0
    clean = runner.invoke(app, ["deid", "audit", str(tmp_path / "o"), "--source", str(src)])
    assert clean.exit_code == 0 and json.loads(clean.stdout)["leaks"] == []
    leaky = runner.invoke(app, ["deid", "audit", str(src), "--source", str(src), "--format", "json"])
    assert leaky.exit_code == 4 and json.loads(leaky.stdout)["leaks"]
    assert C["mrn"] not in leaky.stdout and C["family"] not in leaky.stdout
    notes = tmp_path / "notes"  # a source with no identifier to look for gives no verdict (it said "clean")
    notes.mkdir()
    (notes / f"{C['family']}.txt").write_text(f"Seen by Dr. {C['family']}.\n")
    nothing = runner.invoke(app, ["deid", "audit", str(tmp_path / "o"), "--source", str(notes)])
    assert isinstance(nothing.exception, UsageError) and nothing.exception.exit_code == 2 and nothing.stdout == ""
    assert "no patient identifiers" in str(nothing.exception) and C["family"] not in str(nothing.exception)


VCF = """##fileformat=VCFv4.2
##fileDate=20190723
##source=/home/jsmith/pipelines/gatk-4.2/HaplotypeCaller
##reference=file:///data/patients/Quixley/GRCh38.fa
##commandline="gatk HaplotypeCaller -I /data/Quixley_Zebulon.bam"
##SAMPLE=<ID=MRN88421907,Name=Zebulon Quixley>
##contig=<ID=chr1,length=248956422>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tMRN88421907
chr1\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1
"""


def test_vcf_deid_pseudonymises_samples_and_cleans_header(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "in.vcf.gz"
    src.write_bytes(gzip.compress(VCF.encode()))
    out = tmp_path / "out.vcf.gz"
    counts = deid_vcf(src, out, keys, lambda s: "pat-canary-1")
    text = gzip.decompress(out.read_bytes()).decode()
    assert counts == {"records": 1, "samples": 1, "header_lines_removed": 5, "records_dropped": 0}
    assert keys.pseudonym("pat-canary-1") in text
    for secret in ("Quixley", "MRN88421907", "jsmith", "20190723", "Zebulon"):
        assert secret not in text
    assert "##contig=<ID=chr1,length=248956422>" in text and "##reference" not in text and "chr1\t100" in text
    leaks = audit(out, src).leaks
    assert leaks == []
    assert audit(src, src).leaks  # the source leaks its own sample id


def test_vcf_rejects_non_vcf(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "x.vcf"
    src.write_text("hello\n")
    import pytest

    from carelens.core.errors import InputError

    with pytest.raises(InputError, match="not a VCF"):
        deid_vcf(src, tmp_path / "o.vcf", keys)
    assert not (tmp_path / "o.vcf").exists()


def test_cli_vcf_links_mrn_sample_to_patient_pseudonym(tmp_path: Path, canary_patient: dict, secret_env: Path):
    src = write_canary_source(tmp_path, canary_patient)
    vcf = tmp_path / "in.vcf"
    vcf.write_text(VCF)
    out = tmp_path / "out.vcf"
    res = CliRunner().invoke(app, ["deid", "vcf", str(vcf), "--out", str(out), "--fhir", str(src)])
    assert res.exit_code == 0, res.output
    header = next(line for line in out.read_text().splitlines() if line.startswith("#CHROM"))
    assert header.split("\t")[9] == KeyService.from_env().pseudonym("pat-canary-1")


def test_birth_year_of_people_over_89_is_folded(tmp_path: Path, keys: KeyService, canary_patient: dict) -> None:
    from datetime import date

    canary_patient["birthDate"] = "1920-03-04"
    src = write_canary_source(tmp_path, canary_patient)
    deid_fhir_path(src, tmp_path / "out", keys)
    bundle = json.loads((tmp_path / "out" / f"{keys.pseudonym('pat-canary-1')}.json").read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["birthDate"] == str(date.today().year - 90)


def test_cli_text_uses_patient_context_from_fhir(tmp_path: Path, canary_patient: dict, secret_env: Path) -> None:
    src = write_canary_source(tmp_path, canary_patient)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "doc-1.txt").write_text("zebulon seen today; quixly (sic) tolerated diet.\n")  # lower case, misspelt
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["deid", "text", str(notes), "--out", str(out), "--fhir", str(src)])
    assert res.exit_code == 0, res.output
    text = (out / "doc-1.txt").read_text().lower()
    assert "zebulon" not in text and "quixly" not in text
    spans = json.loads((out / "doc-1.phi.json").read_text())
    assert {s["type"] for s in spans} == {"NAME"}


def test_audit_tells_a_name_that_is_a_word_from_the_word(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    language = {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)"}],
                "text": "English (United States)"}  # fmt: skip
    names = [("Day", "Robin"), ("May", "Kayla"), ("English", "Ann")]
    people = [{"resourceType": "Patient", "id": f"p{i}", "name": [{"family": family, "given": [given]}],
               "communication": [{"language": language}]} for i, (family, given) in enumerate(names)]  # fmt: skip
    (src / "patients.ndjson").write_text("\n".join(json.dumps(p) for p in people) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "words.txt").write_text("Improved by hospital day 4. Next labs May 15, seen 13-May-2024.\n")
    (out / "names.txt").write_text("Seen with Dr. Day.\nMAY, KAYLA\n")
    (out / "lower.txt").write_text("pt seen by day team\n")  # no letter case to tell a name from a word
    (out / "coded.json").write_text(json.dumps({"language": language, "note": "Seen by Dr. English."}))
    locations = sorted(leak.location for leak in audit(out, src).leaks)
    # one leak per kind and place: "MAY, KAYLA" on line 2 is one
    assert locations == ["coded.json:note", "lower.txt:line 1", "names.txt:line 1", "names.txt:line 2"]


@pytest.mark.parametrize(
    "birth", ["\u00b2\u2070\u2070\u2070", "Zebulon", "1950/03/14", "\u0661\u0669\u0665\u0660-03-14", "1950-13-45"]
)
def test_a_birth_date_that_is_no_fhir_date_leaves_nothing(
    birth: str, tmp_path: Path, keys: KeyService, canary_patient: dict
) -> None:
    """Allow-list: what stands in a date's place is a date, or it does not leave (before, its first four
    characters did: "²⁰⁰⁰", "Zebu")."""
    canary_patient["birthDate"] = birth
    src = write_canary_source(tmp_path, canary_patient)
    deid_fhir_path(src, tmp_path / "out", keys)
    bundle = json.loads((tmp_path / "out" / f"{keys.pseudonym('pat-canary-1')}.json").read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert "birthDate" not in patient
