"""The clocks a training time budget is measured on (``--budget-clock``)."""

from __future__ import annotations

import time
from collections.abc import Callable

# wall: elapsed seconds (a busy machine fits fewer epochs in them); cpu: this process's CPU seconds, all its threads
# together (the same epochs however busy the machine is; what the benchmark measures).
BUDGET_CLOCKS: dict[str, Callable[[], float]] = {"wall": time.monotonic, "cpu": time.process_time}


def clock_name(clock: Callable[[], float]) -> str:
    """The name of ``clock`` in :data:`BUDGET_CLOCKS`; ``custom`` for any other (a test's fake clock)."""
    return next((name for name, known in BUDGET_CLOCKS.items() if known is clock), "custom")
