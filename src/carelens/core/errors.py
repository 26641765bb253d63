"""Errors that carry a one-line, PHI-free reason and the exit code the CLI uses for them."""

from __future__ import annotations


class CarelensError(Exception):
    """Base error: ``str(err)`` is a one-line reason safe to print and log (no PHI)."""

    exit_code = 1

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()))

    @property
    def reason(self) -> str:
        return str(self)


class InputError(CarelensError):
    """The input cannot be used (malformed, wrong kind, wrong genome build, ...)."""

    exit_code = 1


class UsageError(CarelensError):
    """The command was called wrongly (missing option, unknown name, ...)."""

    exit_code = 2
