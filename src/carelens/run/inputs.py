"""Which patients the lake holds and what each one's inputs are (content hashes only).

One SQL pass over the lake groups every input by the patient it belongs to: the patient's FHIR
resources (``resources.patient_id``), notes, DICOM instances and VCF samples (linked to the
patient through a Patient identifier such as the MRN, or the Patient id itself). A patient's
input hash covers those content hashes and the versions of the models that read them, so a
changed resource or a new model recomputes exactly the patients it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carelens.core.ids import stable_id
from carelens.store import Lake


def _digest(expr: str) -> str:
    """SQL: an order-independent digest of a group's values of ``expr``: their count and the sums
    of the two 64-bit halves of their MD5s. A changed, added or removed value changes it (short of
    a 2^-64 coincidence). No string of the group is built and no set of its values is kept: the
    plan of 10,000 patients (1.9 M resources) peaks at ~270 MB, where joining the sorted distinct
    values peaked at ~1.5 GB. A resource that arrives again, identical, from another file counts
    twice: its patient is recomputed once, with the same outputs."""
    lo, hi = f"md5_number_lower({expr})", f"md5_number_upper({expr})"
    return f"count(*) || ':' || sum({lo}) || ':' || sum({hi})"


# Per patient: a digest of the content hashes of each kind of input, and where the inputs are (the
# resources' part files, the DICOM instances' paths, the VCF samples' files), so that a worker
# reads a batch's inputs without a query over the whole lake. {resources}: the resources table
# with the part file of each row.
_PLAN_SQL = """
WITH links AS (
    SELECT value AS key, min(patient_id) AS patient_id FROM patient_identifiers GROUP BY value
    UNION ALL SELECT id, id FROM resources WHERE resource_type = 'Patient'
), pat AS (
    SELECT DISTINCT id AS patient_id FROM resources WHERE resource_type = 'Patient'
), res AS (
    SELECT patient_id, {res_digest} AS h,
           list(DISTINCT filename ORDER BY filename) AS files
    FROM {resources} WHERE patient_id IS NOT NULL GROUP BY patient_id
), nts AS (
    SELECT patient_id, {notes_digest} AS h
    FROM notes WHERE patient_id IS NOT NULL GROUP BY patient_id
), dcm AS (
    SELECT l.patient_id, {dicom_digest} AS h,
           list(DISTINCT [d.sop_uid, d.path] ORDER BY [d.sop_uid, d.path]) AS found
    FROM dicom_instances d JOIN (SELECT DISTINCT key, patient_id FROM links) l ON l.key = d.patient_id
    GROUP BY l.patient_id
), vcf AS (
    SELECT l.patient_id, {vcf_digest} AS h,
           list(DISTINCT [v.sample, v.source] ORDER BY [v.sample, v.source]) AS found
    FROM (SELECT DISTINCT sample, source FROM variants WHERE sample IS NOT NULL) v
    JOIN (SELECT path, any_value(source_hash) AS source_hash FROM sources GROUP BY path) s ON s.path = v.source
    JOIN (SELECT DISTINCT key, patient_id FROM links) l ON l.key = v.sample
    GROUP BY l.patient_id
)
SELECT pat.patient_id, coalesce(res.h, ''), coalesce(nts.h, ''), coalesce(dcm.h, ''), coalesce(vcf.h, ''),
       coalesce(res.files, []), coalesce(dcm.found, []), coalesce(vcf.found, [])
FROM pat LEFT JOIN res USING (patient_id) LEFT JOIN nts USING (patient_id)
LEFT JOIN dcm USING (patient_id) LEFT JOIN vcf USING (patient_id)
ORDER BY pat.patient_id
""".format(
    resources="{resources}",
    res_digest=_digest("resource_type || '/' || id || ':' || content_hash"),
    notes_digest=_digest("content_hash"),
    dicom_digest=_digest("d.sop_uid || ':' || d.content_hash"),
    vcf_digest=_digest("v.sample || ':' || s.source_hash"),
)


@dataclass(frozen=True)
class PatientInput:
    """One patient's inputs: the hash over their content hashes and the model versions, and where
    they are (resource part files; (SOP instance UID, path) of each DICOM instance; (sample, VCF
    file) of each genome)."""

    patient_id: str
    input_hash: str
    files: tuple[str, ...] = ()
    images: tuple[tuple[str, str], ...] = ()
    vcfs: tuple[tuple[str, str], ...] = ()


@dataclass
class Plan:
    """Every patient of the lake with their input hash."""

    patients: list[PatientInput] = field(default_factory=list)


def model_key(versions: dict[str, str]) -> str:
    """The model versions as one stable string (part of every input hash)."""
    return ";".join(f"{k}={versions[k]}" for k in sorted(versions))


def plan(lake: Lake, versions: dict[str, str]) -> Plan:
    """The lake's patients and their input hashes (patients sorted by id)."""
    out = Plan()
    files = lake.part_files("resources")
    if not files:
        return out
    models = model_key(versions)
    listing = ", ".join("'" + str(f.absolute()).replace("'", "''") + "'" for f in files)
    table = lake.query(_PLAN_SQL.format(resources=f"read_parquet([{listing}], filename = true)"))
    columns = [table.column(i).to_pylist() for i in range(8)]
    for pid, res, notes, dicom, vcf, parts, images, vcfs in zip(*columns, strict=True):
        digest = stable_id(pid, res, notes, dicom, vcf, models, length=64)
        out.patients.append(PatientInput(pid, digest, tuple(parts), tuple((a, b) for a, b in images),
                                         tuple((a, b) for a, b in vcfs)))  # fmt: skip
    return out
