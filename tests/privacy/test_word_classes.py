"""Distributional word classes of the CRF (``data/lexicon/word_clusters.tsv``, made by
``scripts/make_deid_clusters.py`` from carelens' own word lists, never from a corpus)."""

from __future__ import annotations

from carelens.privacy.crf import Featurizer, crf_tokens, features
from carelens.privacy.lexicon import listed_words, word_classes


def test_every_classed_word_comes_from_a_word_list_of_carelens() -> None:
    classes = word_classes()
    assert len(classes) > 100_000
    assert set(classes) == listed_words()


def test_classes_are_a_hierarchy_of_three_levels() -> None:
    classes = word_classes()
    leaves = set(classes.values())
    assert 256 < len(leaves) <= 16 * 16 * 4
    for levels in leaves:
        assert len(levels) == 3
        assert levels[1].startswith(levels[0] + ".") and levels[2].startswith(levels[1] + ".")


def test_a_token_carries_its_classes_and_its_neighbours_see_the_coarsest() -> None:
    text = "Spoke with daughter Marguerite about plan"
    tokens = crf_tokens(text)
    rows = features(text, tokens, [None] * len(tokens), Featurizer(frozenset()))
    levels = word_classes()["marguerite"]
    name = rows[3]
    assert {f"c1={levels[0]}", f"c2={levels[1]}", f"c3={levels[2]}"} <= set(name)
    # the finer classes of neighbours made the all-patient CV worse (benchmarks/results/deid_text.md)
    assert f"-1:c1={levels[0]}" in rows[4] and f"1:c1={levels[0]}" in rows[2]
    seen = [f.split(":", 1)[1] for f in rows[2] + rows[4] if ":" in f]
    assert not any(f.startswith(("c2=", "c3=")) for f in seen)
    digits = features("x 7", crf_tokens("x 7"), [None, None], Featurizer(frozenset()))[1]
    assert not any(f.startswith("c1=") for f in digits)
