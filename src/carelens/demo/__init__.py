"""carelens.demo: a deterministic synthetic cohort that exercises every modality, and the
``carelens demo`` pipeline that runs every stage on it.

See :mod:`carelens.demo.cohort` for the layout of the generated files and the facts planted.
The names below are imported on first use: the cohort generator pulls in SciPy and pydicom,
which every other command's start-up would otherwise pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carelens.core.lazy import lazy_exports

if TYPE_CHECKING:
    from carelens.demo.cohort import generate_cohort, write_cohort
    from carelens.demo.manifest import CohortCounts, CohortManifest, PlantedPatient, planted_patients
    from carelens.demo.story import REFERENCE_DATE

__all__ = [
    "REFERENCE_DATE",
    "CohortCounts",
    "CohortManifest",
    "PlantedPatient",
    "generate_cohort",
    "planted_patients",
    "write_cohort",
]

_HOME = {
    "generate_cohort": "carelens.demo.cohort",
    "write_cohort": "carelens.demo.cohort",
    "CohortCounts": "carelens.demo.manifest",
    "planted_patients": "carelens.demo.manifest",
    "CohortManifest": "carelens.demo.manifest",
    "PlantedPatient": "carelens.demo.manifest",
    "REFERENCE_DATE": "carelens.demo.story",
}

__getattr__ = lazy_exports(__name__, _HOME)
