"""carelens.models: the model registry (immutable, content-addressed entries), model cards with
the 31 ONC HTI-1 source attributes, and validation records appended over time."""

from carelens.models.card import render_html
from carelens.models.hti1 import HTI1_ATTRIBUTES, HTI1_KEYS, Attribute, hti1_attributes
from carelens.models.registry import (
    NOT_VALIDATED,
    Metric,
    ModelEntry,
    Registry,
    code_version,
    normalise_metric,
    site_status,
)

__all__ = [
    "HTI1_ATTRIBUTES",
    "HTI1_KEYS",
    "NOT_VALIDATED",
    "Attribute",
    "Metric",
    "ModelEntry",
    "Registry",
    "code_version",
    "hti1_attributes",
    "normalise_metric",
    "render_html",
    "site_status",
]
