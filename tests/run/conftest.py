"""Run fixtures: an ingested lake (the demo cohort: FHIR, notes, DICOM, VCF), built once and
copied for each test that changes it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from carelens.demo.cohort import generate_cohort
from carelens.ingest import ingest
from carelens.privacy import write_secret


@dataclass
class Cohort:
    root: Path  # the generated files
    store: Path  # a store whose lake holds them
    clinvar: Path | None
    secret: Path


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Cohort:
    """The demo cohort ingested once; its VCFs come from the shared PharmCAT data (skips without it)."""
    root = tmp_path_factory.mktemp("cohort")
    m = generate_cohort(root / "files", patients=3, seed=7, shared_data=shared_data)
    store = root / "store"
    vcfs = [root / "files" / p.vcf for p in m.patients if p.vcf]
    result = ingest([root / "files" / "fhir", root / "files" / "dicom", *vcfs], store)
    assert not result.quarantined
    secret = root / "site.key"
    write_secret(secret)
    return Cohort(root / "files", store, root / "files" / m.clinvar if m.clinvar else None, secret)


@pytest.fixture
def cohort(ingested: Cohort, tmp_path: Path) -> Cohort:
    """A private copy of the ingested store (the generated files are shared, read-only)."""
    store = tmp_path / "store"
    shutil.copytree(ingested.store, store)
    return Cohort(ingested.root, store, ingested.clinvar, ingested.secret)
