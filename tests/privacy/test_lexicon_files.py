"""The word-list files the lexicon reads (``data/lexicon``): what the readers assume of them holds."""

from __future__ import annotations

from importlib import resources

import pytest

from carelens.privacy.lexicon import CENSUS_FIRST_NAMES_FILE, CENSUS_SURNAMES_FILE, FAKER_FILES, _lines, _ranks


@pytest.mark.parametrize("name", [CENSUS_SURNAMES_FILE, CENSUS_FIRST_NAMES_FILE])
def test_a_census_rank_is_the_line_number_the_reader_takes_it_for(name: str) -> None:
    written = {word: int(rank) for word, rank in (line.split("\t") for line in _lines(name))}
    assert _ranks(name) == written and written["smith" if name == CENSUS_SURNAMES_FILE else "james"] == 1


@pytest.mark.parametrize("name", list(FAKER_FILES.values()))
def test_the_faker_snapshot_holds_bare_lower_case_words(name: str) -> None:
    words = resources.files("carelens.privacy").joinpath("data/lexicon", name).read_text().splitlines()
    assert len(words) > 200 and len(set(words)) == len(words)
    assert all(w == w.strip() and w == w.lower() and "\t" not in w for w in words)
