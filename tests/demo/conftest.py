"""A small demo cohort shared by the demo tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.demo import CohortManifest, generate_cohort


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> CohortManifest:
    """Five patients (the three archetypes and two random ones), seed 0, with the training set."""
    return generate_cohort(tmp_path_factory.mktemp("cohort"), patients=5, seed=0, shared_data=shared_data)
