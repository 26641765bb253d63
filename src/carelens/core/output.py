"""Writing command results: JSON to stdout (or a file), one-line errors to stderr."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel


def to_json(obj: Any, indent: bool = True) -> bytes:
    """Serialise plain data or pydantic models to JSON bytes."""
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(obj, default=_default, option=option | orjson.OPT_NON_STR_KEYS)


def emit_json(obj: Any, out: Path | None = None) -> None:
    """Write ``obj`` as JSON to ``out`` or stdout."""
    data = to_json(obj) + b"\n"
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def colour_allowed() -> bool:
    """Colour on stderr only at a terminal and without ``NO_COLOR`` (https://no-color.org)."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves)."""
    return _ANSI.sub("", text)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")
