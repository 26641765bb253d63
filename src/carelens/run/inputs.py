"""Which patients the lake holds and what each one's inputs are (content hashes only).

One SQL pass over the lake groups every input by the patient it belongs to: the patient's FHIR
resources (``resources.patient_id``), notes, DICOM instances and VCF samples (linked to the
patient through a Patient identifier such as the MRN, or the Patient id itself). A patient's
input hash covers those content hashes and the versions of the models that read them, so a
changed resource or a new model recomputes exactly the patients it touches. The same pass joins
the run's state (each patient's last input hash and status) and writes the plan, in batch order,
to a Parquet file that the run reads back a row group at a time: no process holds every patient
of the lake, only DuckDB within its memory cap while it plans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from carelens.store import Lake

PLAN_ROWS = 2048  # the plan file's row group: the patients read back at a time


def _digest(expr: str) -> str:
    """SQL: an order-independent digest of a group's values of ``expr``: their count and the sums
    of the two 64-bit halves of their MD5s. A changed, added or removed value changes it (short of
    a 2^-64 coincidence). No string of the group is built and no set of its values is kept: the
    plan of 10,000 patients (1.9 M resources) peaks at ~270 MB, where joining the sorted distinct
    values peaked at ~1.5 GB. A resource that arrives again, identical, from another file counts
    twice: its patient is recomputed once, with the same outputs."""
    lo, hi = f"md5_number_lower({expr})", f"md5_number_upper({expr})"
    return f"count(*) || ':' || sum({lo}) || ':' || sum({hi})"


# Per patient: the input hash (sha256 of the id, a digest of the content hashes of each kind of
# input and the model versions, joined by \x1f: ``stable_id``'s), and where the inputs are (the
# resources' part files, the DICOM instances' paths, the VCF samples' files), so that a worker
# reads a batch's inputs without a query over the whole lake; ``rank``: the patient's place among
# the due ones by id (NULL when not due: the same input hash in the state, and not a failure to
# retry). Rows in batch order: a batch's patients share part files. {resources}: the resources
# table with the part file of each row; {state}: the run's current state; parameters: the model
# versions (``model_key``), whether failed patients are due again.
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
), planned AS (
    SELECT pat.patient_id,
           sha256(concat_ws(chr(31), pat.patient_id, coalesce(res.h, ''), coalesce(nts.h, ''), coalesce(dcm.h, ''),
                            coalesce(vcf.h, ''), ?)) AS input_hash,
           coalesce(res.files, []) AS files, coalesce(dcm.found, []) AS images, coalesce(vcf.found, []) AS vcfs
    FROM pat LEFT JOIN res USING (patient_id) LEFT JOIN nts USING (patient_id)
    LEFT JOIN dcm USING (patient_id) LEFT JOIN vcf USING (patient_id)
), marked AS (
    SELECT p.*, (s.input_hash IS DISTINCT FROM p.input_hash OR (? AND coalesce(s.status = 'failed', false))) AS due
    FROM planned p LEFT JOIN ({state}) s USING (patient_id)
)
SELECT patient_id, input_hash, files, images, vcfs,
       CASE WHEN due THEN row_number() OVER (PARTITION BY due ORDER BY patient_id) END AS rank
FROM marked ORDER BY files[1] NULLS FIRST, patient_id
""".format(
    resources="{resources}",
    state="{state}",
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
    """The lake's patients (``patients``), how many are due (``due``), and where the plan file is
    (None: the lake has no resources)."""

    path: Path | None = None
    patients: int = 0
    due: int = 0

    def batches(self, size: int, limit: int | None = None) -> Iterator[list[PatientInput]]:
        """The due patients (only the first ``limit`` of them by id), ``size`` at a time in batch
        order, read from the plan file a row group at a time."""
        import pyarrow.parquet as pq

        if self.path is None:
            return
        batch: list[PatientInput] = []
        for rows in pq.ParquetFile(self.path).iter_batches(PLAN_ROWS):
            columns = [rows.column(i).to_pylist() for i in range(6)]
            for pid, digest, parts, images, vcfs, rank in zip(*columns, strict=True):
                if rank is None or (limit is not None and rank > limit):
                    continue
                batch.append(PatientInput(pid, digest, tuple(parts), tuple((a, b) for a, b in images),
                                          tuple((a, b) for a, b in vcfs)))  # fmt: skip
                if len(batch) == size:
                    yield batch
                    batch = []
        if batch:
            yield batch


def model_key(versions: dict[str, str]) -> str:
    """The model versions as one stable string (part of every input hash)."""
    return ";".join(f"{k}={versions[k]}" for k in sorted(versions))


def plan(lake: Lake, versions: dict[str, str], state: str, path: Path, retry_failed: bool = False) -> Plan:
    """Plan the lake's patients into the Parquet file ``path`` (see the module doc). ``state``: a
    SELECT of the run's current state (patient_id, input_hash, status)."""
    files = lake.part_files("resources")
    if not files:
        return Plan()
    listing = ", ".join("'" + _quote(f) + "'" for f in files)
    sql = _PLAN_SQL.format(resources=f"read_parquet([{listing}], filename = true)", state=state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    lake.query(f"COPY ({sql}) TO '{_quote(tmp)}' (FORMAT parquet, ROW_GROUP_SIZE {PLAN_ROWS})",
               [model_key(versions), retry_failed])  # fmt: skip
    tmp.replace(path)
    counts = lake.query(f"SELECT count(*), count(rank) FROM read_parquet('{_quote(path)}')")
    return Plan(path, counts.column(0)[0].as_py(), counts.column(1)[0].as_py())


def _quote(path: Path) -> str:
    return str(path.absolute()).replace("'", "''")
