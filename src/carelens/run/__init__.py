"""carelens.run: the clinical pipeline over the lake.

For every patient whose inputs (content hashes) or models changed since their last outputs:
the record summary (JSON and FHIR IPS document), image reads with the registered image model
(prediction, FHIR DiagnosticReport, DICOM SR), PGx and secondary findings for the patient's VCFs,
and the research-zone copy through the privacy boundary (with its leak audit). Outputs go to
lake tables keyed by patient, input hash and model (:mod:`carelens.run.outputs`), batch by
batch, crash-safe; on one process (``engine="local"``) or on Ray (``engine="ray"``).
"""

from carelens.run.engine import ENGINES, RunReport, run
from carelens.run.outputs import OutputStore

__all__ = ["ENGINES", "OutputStore", "RunReport", "run"]
