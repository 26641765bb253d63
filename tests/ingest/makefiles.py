"""Small input files for ingest tests, written into a test's tmp_path (canary PHI inside)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

CANARY = "Quiviran Zebediah-Canary"


def patient(pid: str, name: str = CANARY) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"text": name}], "birthDate": "1970-01-01"}


def observation(oid: str, subject: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": subject},
    }


def doc_ref(did: str, subject: str, text: str, content_type: str = "text/plain; charset=utf-8") -> dict:
    data = base64.b64encode(text.encode()).decode()
    return {
        "resourceType": "DocumentReference",
        "id": did,
        "subject": {"reference": subject},
        "date": "2020-01-01",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
        "content": [{"attachment": {"contentType": content_type, "data": data}}],
    }


def bundle(*resources: dict, kind: str = "transaction") -> dict:
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def write_ndjson(path: Path, *objs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


VCF_HEADER = """##fileformat=VCFv4.2
##reference=GRCh38
##contig=<ID=chr10,length=133797422>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
"""
VCF_LINES = [
    "chr10\t94781859\trs4244285\tG\tA\t50\tPASS\t.\tGT\t0/1\t1|1",
    "chr10\t94761900\trs12248560\tC\tT\t.\tPASS\t.\tGT\t0/0\t0|1",
    "chr10\t94842866\trs3758581\tA\tG\t.\tPASS\t.\tGT\t1/1\t./.",
]


def write_vcf(path: Path, lines: list[str] = VCF_LINES, header: str = VCF_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n".join(lines) + "\n")
    return path
