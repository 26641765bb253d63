"""Surrogates never reuse a known patient's name word, even when a large cohort covers the pool."""

from __future__ import annotations

from carelens.privacy.keys import KeyService
from carelens.privacy.surrogates import Surrogates, _pools


def test_a_cohort_covering_the_whole_surrogate_pool_never_gets_its_own_words(keys: KeyService) -> None:
    covered = frozenset(w.lower() for kind in ("first", "last") for name in _pools()[kind] for w in name.split())
    sur = Surrogates(keys, "patient-1", -30, avoid=covered)
    for original in ("Maria Garcia", "SMITH, JOHN", "Dr. Wong", "Lake Hendricks"):
        out = sur.replace("NAME", original) + " " + sur.replace("CITY", original)
        words = {w.lower().strip(".,") for w in out.split()}
        assert not words & covered, out
        assert out.strip()


def test_the_same_span_keeps_its_surrogate_when_the_pool_is_covered(keys: KeyService) -> None:
    covered = frozenset(name.lower() for name in _pools()["last"])
    first = Surrogates(keys, "patient-1", -30, avoid=covered).replace("NAME", "Garcia")
    again = Surrogates(keys, "patient-1", -30, avoid=covered).replace("NAME", "Garcia")
    assert first == again
