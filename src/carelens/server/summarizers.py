"""The summarisers a workspace over a folder of FHIR bundles may use (``CARELENS_SUMMARIZER``),
by name: a registry, never a module path taken from the environment.

Built in: ``record`` (:func:`carelens.record.summarize`). Another installed package adds its own
under the ``carelens.summarizers`` entry-point group (``name = "module:function"``, the function
taking the bundle file and the patient id); a program embedding the server calls
:func:`register`. An unknown name is refused when the settings are read, in one line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from carelens.core.errors import InputError

Summarizer = Callable[[Any, str | None], Any]
GROUP = "carelens.summarizers"
BUILTIN = {"record": "carelens.record:summarize"}
_registered: dict[str, Summarizer] = {}


def register(name: str, summarizer: Summarizer) -> None:
    """Make ``summarizer`` available as ``name`` in this process."""
    _registered[name] = summarizer


def _installed() -> dict[str, str]:
    return {**BUILTIN, **{ep.name: ep.value for ep in entry_points(group=GROUP)}}


def names() -> list[str]:
    """Every summariser name known here."""
    return sorted({*_installed(), *_registered})


def check(name: str) -> str:
    """``name`` when it names a summariser, else a one-line ``InputError``."""
    if name not in _registered and name not in _installed():
        raise InputError(f"CARELENS_SUMMARIZER: no summariser named {name!r} (known: {', '.join(names())})")
    return name


def load(name: str) -> Summarizer:
    """The summariser called ``name`` (imported on first use); ``LookupError`` when unknown,
    ``ImportError`` when its package is broken."""
    if name in _registered:
        return _registered[name]
    target = _installed().get(name)
    if target is None:
        raise LookupError(name)
    module, _, attr = target.partition(":")
    summarizer: Summarizer = getattr(importlib.import_module(module), attr)
    return summarizer
