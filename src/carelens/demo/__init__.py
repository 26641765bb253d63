"""carelens.demo: a deterministic synthetic cohort that exercises every modality, and the
``carelens demo`` pipeline that runs every stage on it.

See :mod:`carelens.demo.cohort` for the layout of the generated files and the facts planted.
"""

from carelens.demo.cohort import generate_cohort
from carelens.demo.manifest import CohortManifest, PlantedPatient
from carelens.demo.story import REFERENCE_DATE

__all__ = ["REFERENCE_DATE", "CohortManifest", "PlantedPatient", "generate_cohort"]
