"""Write carelens/privacy/data/lexicon/faker_*.tsv: the first names, surnames and cities of every Faker
locale (Latin script only) and the English locales' countries, lower-cased, one a line (Faker, MIT). A
snapshot rather than a read at start-up: the CRF's dictionary features stay those it was trained with
whatever Faker version is installed, and a process starts ~0.7 CPU-s sooner.

    .venv/bin/python scripts/make_deid_faker_words.py
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import faker.providers.address as address_pkg
import faker.providers.person as person_pkg

from carelens.privacy.lexicon import FAKER_FILES

OUT = Path(__file__).resolve().parents[1] / "src/carelens/privacy/data/lexicon"
_LATIN = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿĀ-ž'\- ]+$")


def _provider(module_name: str) -> type | None:
    try:
        return importlib.import_module(module_name).Provider
    except (ImportError, AttributeError):
        return None


def _words(provider: type, attributes: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for attribute in attributes:
        values = provider.__dict__.get(attribute)
        if isinstance(values, dict):
            values = list(values)
        if isinstance(values, list | tuple):
            out |= {v.strip().lower() for v in values if isinstance(v, str) and _LATIN.match(v)}
    return out


def main() -> None:
    found: dict[str, set[str]] = {kind: set() for kind in FAKER_FILES}
    for module in pkgutil.iter_modules(person_pkg.__path__):
        provider = _provider(f"faker.providers.person.{module.name}")
        if provider is not None:
            found["first_names"] |= _words(provider, ("first_names", "first_names_male", "first_names_female"))
            found["last_names"] |= _words(provider, ("last_names",))
    for module in pkgutil.iter_modules(address_pkg.__path__):
        provider = _provider(f"faker.providers.address.{module.name}")
        if provider is not None:
            found["cities"] |= _words(provider, ("cities", "city_names"))
            if module.name.startswith("en"):
                found["countries"] |= _words(provider, ("countries",))
    for kind, name in FAKER_FILES.items():
        (OUT / name).write_text("".join(f"{w}\n" for w in sorted(found[kind])), encoding="utf-8")
        print(f"wrote {len(found[kind])} words to {OUT / name}")


if __name__ == "__main__":
    main()
