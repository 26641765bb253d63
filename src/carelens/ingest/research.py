"""Ingest into the research zone: the leak audit runs first and a batch that leaks is refused.

``ingest_research(paths, source)`` searches every file under ``paths`` for the identifiers
known from ``source`` (the identified data they were de-identified from, see
:func:`carelens.privacy.audit`). On any leak nothing is ingested and :class:`BatchRefused`
names how many leaks of which kinds (never the values); otherwise the batch is ingested into
the research lake ``<store>/research/lake``, apart from the identified lake. Each DICOM
instance also passes the burned-in text gate (:func:`carelens.privacy.burned_in.gate_dicom`):
an instance whose pixels hold text that is not provably an allowed annotation is quarantined
with a one-line reason (never the text) and the rest of the batch goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from carelens.core.config import research_store
from carelens.core.errors import InputError, UsageError
from carelens.ingest.pipeline import IngestResult, ingest

if TYPE_CHECKING:
    from carelens.privacy.audit import AuditReport
    from carelens.privacy.keys import KeyService


class BatchRefused(InputError):
    """The leak audit found identifiers of the source in the batch; nothing was ingested."""

    exit_code = 4

    def __init__(self, report: AuditReport) -> None:
        self.leaks = len(report.leaks)
        kinds = Counter(leak.value_kind for leak in report.leaks)
        listing = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        super().__init__(
            f"batch refused: the leak audit found {self.leaks} identifiers of the source in it ({listing});"
            " nothing was ingested (`carelens deid audit PATH --source SOURCE` lists where)"
        )


def ingest_research(
    paths: Sequence[Path],
    source: Sequence[Path],
    store: Path | None = None,
    processes: int | None = None,
    audit_also: Sequence[Path] = (),
    keys: KeyService | None = None,
) -> tuple[IngestResult, AuditReport]:
    """Audit ``paths`` against ``source``, then ingest them into the research lake (all or
    nothing); ``processes`` as for :func:`carelens.ingest.ingest`. ``audit_also``: research-zone
    files that are audited with the batch but not ingested (copies of what the batch already holds).
    ``keys``: the site key the batch was made with (default: the environment's), which tells the audit
    whose output each file is."""
    from carelens.privacy.audit import audit
    from carelens.privacy.burned_in import gate_dicom

    for path in [*paths, *source, *audit_also]:
        if not path.exists():
            raise InputError(f"{path} does not exist")
    report = audit([*paths, *audit_also], list(source), keys, pixels=False)  # pixels: the gate, per instance, below
    if not report.identifiers:
        raise UsageError("--source holds no patient identifiers to audit against (give the identified FHIR/DICOM/VCF)")
    if report.leaks:
        raise BatchRefused(report)
    return ingest(paths, research_store(store), processes, pixel_gate=gate_dicom), report
