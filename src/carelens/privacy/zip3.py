"""Safe Harbor ZIP codes: the first three digits, ``000`` for the sparsely populated areas.

45 CFR 164.514(b)(2)(i)(B) keeps the initial three digits of a ZIP code only where the area of
all ZIP codes sharing them holds more than 20,000 people; the others (the HHS list, a data
file) become ``000``."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _rule() -> tuple[frozenset[str], str]:
    data = json.loads(resources.files("carelens.privacy").joinpath("data/safe_harbor_zip3.json").read_text())
    return frozenset(data["restricted"]), str(data["replacement"])


def safe_harbor_zip(value: str) -> str:
    """``value`` (a US ZIP or ZIP+4) as its three-digit area padded to five (``02139`` ->
    ``02100``, ``03601`` -> ``00000``); ``""`` for anything shorter than five digits."""
    digits = re.sub(r"\D", "", value)
    if len(digits) < 5:
        return ""
    restricted, replacement = _rule()
    area = replacement if digits[:3] in restricted else digits[:3]
    return area + "00"
