"""Bad input never crashes a batch: each bad item becomes a ``Quarantined`` record."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field


class Quarantined(BaseModel):
    """One item that was not processed, with where it came from and a one-line reason.

    ``reason`` must never quote patient data: say what is wrong, not what the value was.
    """

    source: str
    where: str = ""
    reason: str


class BatchResult(BaseModel):
    """What a batch did: counts per kind of item done, and every item quarantined.

    The invariant ``items in == sum(done) + len(quarantined)`` is the caller's to keep and
    the tests' to check.
    """

    done: Counter[str] = Field(default_factory=Counter)
    quarantined: list[Quarantined] = Field(default_factory=list)

    def quarantine(self, source: str, where: str, reason: str) -> None:
        self.quarantined.append(Quarantined(source=source, where=where, reason=" ".join(reason.split())))

    @property
    def exit_code(self) -> int:
        """0 when everything was done, 3 when some items were quarantined."""
        return 3 if self.quarantined else 0
