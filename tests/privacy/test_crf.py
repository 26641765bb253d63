"""The CRF layer and the real-corpus scorer: scoring as physionet-dev's README says, the split by
patient, a model that keeps corpus names out of its file, and sentences written for these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.core.config import shared_data_dir
from carelens.privacy.corpus import Note, Score, load_corpus, split_by_patient
from carelens.privacy.crf import CHUNK, crf_model, crf_tokens
from carelens.privacy.detect import detect_phi
from carelens.privacy.lexicon import lexicon
from carelens.privacy.training import token_labels, train, vocabulary

CORPUS = (shared_data_dir() or Path("/nonexistent")) / "deid" / "physionet-dev"


def test_scorer_counts_tokens_as_the_corpus_readme_says() -> None:
    text = "Seen by Dr. Ann Lee on 7/22 in 1999, BP ok."
    gold = [(12, 19, "HCPName"), (23, 27, "Date"), (31, 35, "DateYear")]
    score = Score()
    # "Ann" found (partial overlap is enough), "Lee" missed, 7 and 22 found, the year found, "BP" false
    score.add(text, gold, [(12, 14), (23, 27), (31, 35), (37, 39)])
    assert score.gold == {"HCPName": 2, "Date": 2}  # the year alone is not counted against recall
    assert score.found == {"HCPName": 1, "Date": 2}
    assert (score.tp, score.fp) == (4, 1)
    assert score.recall == pytest.approx(3 / 4) and score.precision == pytest.approx(4 / 5)


def test_split_is_by_patient_and_deterministic() -> None:
    notes = [Note(f"p{p:03d}_n{k:03d}", f"p{p:03d}", "x", ()) for p in range(60) for k in range(3)]
    fit, held = split_by_patient(notes)
    assert not {n.patient for n in fit} & {n.patient for n in held}
    assert 0.15 < len(held) / len(notes) < 0.45
    assert split_by_patient(notes) == (fit, held)


CANARY_NAMES = ("Zebulon", "Quixley", "Thornbury")


def _toy_notes() -> list[Note]:
    """Notes written for this test, a canary name in each (never a word of the model)."""
    notes = []
    for k in range(12):
        name = CANARY_NAMES[k % 3]
        text = f"Pt resting, vitals stable. Dr. {name} aware of labs on 3/{k + 1}. Plan: continue lasix and monitor."
        start = text.index(name)
        date = text.index("3/")
        spans = ((start, start + len(name), "HCPName"), (date, date + 2 + len(str(k + 1)), "Date"))
        notes.append(Note(f"p{k:03d}_n001", f"p{k:03d}", text, spans))
    return notes


def test_trained_model_holds_no_corpus_name(tmp_path: Path) -> None:
    notes = _toy_notes()
    assert token_labels(notes[0]).count("NAME") == 1
    vocab = vocabulary(notes, min_count=3)
    assert {"stable", "lasix", "monitor"} <= vocab
    model = train(notes, tmp_path / "m.crfsuite", iterations=20)
    blob = model.path.read_bytes() + model.path.with_suffix(".json").read_bytes()
    for name in CANARY_NAMES:
        assert name.lower() not in vocab
        assert name.lower().encode() not in blob.lower()


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the physionet-dev corpus is not in ../shared/data")
def test_shipped_vocabulary_has_no_name_or_place_of_the_corpus() -> None:
    """No word of a gold name or place of either part of the corpus is a word feature, except
    ordinary English words ("general" of "general hospital", a nickname that is also a word)."""
    model = crf_model()
    assert model is not None
    phi_words = set()
    for note in load_corpus(CORPUS):
        for start, end, kind in note.spans:
            if kind not in ("Date", "DateYear", "Age", "Phone"):
                phi_words |= {t.low for t in crf_tokens(note.text[start:end]) if t.text.isalpha()}
    assert phi_words & model.vocabulary <= lexicon().common_words


def test_shipped_model_is_used_and_small() -> None:
    model = crf_model()
    assert model is not None
    assert model.path.stat().st_size < 5_000_000
    assert 0 < model.threshold < 1


def _found(text: str) -> set[str]:
    return {text[s.start : s.end] for s in detect_phi(text)}


@pytest.mark.parametrize(
    "word",
    ["Foley", "Swan", "Parkinson", "Cooley", "lasix", "Levophed", "Flagyl", "PEEP", "CVP", "mcg", "NPO", "Coumadin"],
)
def test_eponyms_devices_drugs_and_abbreviations_are_not_phi(word: str) -> None:
    text = (f"Neuro: alert. CV: SR, {word} noted on rounds. Resp: LS clear, sats 97%. GI: abd soft. "
            f"Plan: cont {word} per orders, monitor CVP, titrate levophed, lasix 40 mg IV.")  # fmt: skip
    assert not any(word in f for f in _found(text))


def test_a_very_long_note_is_tagged_in_pieces_with_exact_offsets() -> None:
    line = "Dr. Quixley called at 3pm; BP 120/80, HR 88, plan unchanged.\n"
    text = line * (3 * CHUNK // 10)
    spans = detect_phi(text)
    assert all(text[s.start : s.end].strip() == text[s.start : s.end] for s in spans)
    assert sum(text[s.start : s.end] == "Quixley" for s in spans) >= 0.9 * text.count("Quixley")


def test_train_command_without_the_corpus_gives_a_one_line_reason(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from carelens.cli import app
    from carelens.core.errors import InputError

    res = CliRunner().invoke(app, ["deid", "train", "--out", str(tmp_path / "m"), "--data", str(tmp_path)])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)
    reason = str(res.exception)
    assert "physionet-dev" in reason and "\n" not in reason
    assert not (tmp_path / "m").exists()


def test_a_name_span_on_part_of_a_word_covers_the_whole_word() -> None:
    from carelens.privacy.detect import merge_spans
    from carelens.privacy.tokens import PhiSpan

    text = "zebulon123: seen 7/22"
    merged = merge_spans([PhiSpan(7, 10, "NAME", "model"), PhiSpan(17, 18, "DATE", "model")], text)
    assert [(text[s.start : s.end], s.type) for s in merged] == [("zebulon123", "NAME"), ("7", "DATE")]


TEXTS = [
    "Dr. Zebulon Quixley saw pt 3/14; BP 120/80. Son Ed aware, lives in Glen Burnie. Call 410-555-0199.",
    "x",
    "Dr Lee",
    "PT SEEN BY SMITH RN AT GH\n\nDAUGHTER AT BEDSIDE W/ SON, wife to call from MA\r\n  on 7/22.",
    "spoke with wife at home with son at rehab to from in: Jones MD,Doe PA-C(ok)\u00e9t\u00e9 \u00b2 mg/dL",
    "\n\nline one\n\tline two  \n",
]


def test_marginals_from_the_weights_equal_crfsuites_own() -> None:
    """carelens' state scores and forward-backward give CRFsuite's marginals for CRFsuite's own features, on
    texts with line ends, glued tokens, repeated cue words, credentials and one or two tokens, and when the
    score table is cleared between and within texts."""
    import numpy as np

    from carelens.privacy.chain import marginals, read_weights
    from carelens.privacy.crf import Featurizer, TokenScores, features

    model = crf_model()
    assert model is not None
    tagger = model.tagger
    labels = list(tagger.labels())
    weights = read_weights(model.path, tagger.info())
    assert list(weights.labels) == labels
    for max_cached in (200_000, 40):
        scorer = TokenScores(model.vocabulary, weights, max_cached=max_cached)
        for text in TEXTS * 2:  # the second pass reads rows from the table
            tokens = crf_tokens(text)
            hints = [None if i % 3 else "rule:DATE" for i in range(len(tokens))]
            tagger.set(features(text, tokens, hints, Featurizer(model.vocabulary)))
            expected = np.array([[tagger.marginal(label, i) for label in labels] for i in range(len(tokens))])
            got = marginals(scorer.scores(text, tokens, hints), weights.transition)
            assert got.shape == expected.shape
            assert np.abs(got - expected).max() < 1e-9, text


def test_a_token_a_date_rule_covers_needs_less_probability_than_others() -> None:
    from carelens.privacy.crf import CrfModel

    model = CrfModel(Path("unused.crfsuite"), frozenset({"seen"}), threshold=0.03)
    tok = crf_tokens("3/9")[0]
    assert model.keeps(tok, 0.01, hint="rule:DATE")
    assert not model.keeps(tok, 0.01)
    assert not model.keeps(tok, 0.01, hint="dict:NAME")
    assert not model.keeps(tok, model.date_hint_threshold / 2, hint="rule:DATE")
    assert model.keeps(tok, 0.05)
