"""Small shared types every capability uses: config, errors, evidence, ids, quarantine, output."""

from carelens.core.config import Settings, load_settings, shared_data_dir
from carelens.core.errors import CarelensError, InputError, UsageError
from carelens.core.evidence import Citation, Evidence, Provenance
from carelens.core.ids import content_hash, stable_id
from carelens.core.quarantine import BatchResult, Quarantined

__all__ = [
    "BatchResult",
    "CarelensError",
    "Citation",
    "Evidence",
    "InputError",
    "Provenance",
    "Quarantined",
    "Settings",
    "UsageError",
    "content_hash",
    "load_settings",
    "shared_data_dir",
    "stable_id",
]
