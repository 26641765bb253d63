"""Surrogate-swap augmentation: copies of gold notes with their names and places replaced by words of
carelens' own lists, consistent within a note, in the original's case, with exact spans; seeded."""

from __future__ import annotations

import random
from pathlib import Path

from carelens.privacy.augment import surrogate_copies, swap_note
from carelens.privacy.corpus import Note
from carelens.privacy.lexicon import is_english, lexicon
from carelens.privacy.training import token_labels, train

TEXT = (
    "Spoke with wife Zelphira QUANDT, updated. Dr. Quandt aware of labs on 7/22. "
    "To be transferred to St. Oswin's GH in Thornvale tomorrow. Call 555-0142. zelphira to visit."
)


def _note() -> Note:
    spans = []
    for word, kind in [("Zelphira", "RelativeProxyName"), ("QUANDT", "RelativeProxyName"), ("Quandt", "HCPName"),
                       ("7/22", "Date"), ("St. Oswin's GH", "Location"), ("Thornvale", "Location"),
                       ("555-0142", "Phone"), ("zelphira", "RelativeProxyName")]:  # fmt: skip
        start = TEXT.index(word)
        spans.append((start, start + len(word), kind))
    return Note("p001_n001", "p001", TEXT, tuple(spans))


def test_names_and_places_are_swapped_with_exact_spans_and_case() -> None:
    note = _note()
    copy = swap_note(note, random.Random(3), "_swap0")
    words = [copy.text[s:e] for s, e, _ in copy.spans]
    originals = [note.text[s:e] for s, e, _ in note.spans]
    assert [k for *_, k in copy.spans] == [k for *_, k in note.spans]
    for old, new in zip(originals, words, strict=True):
        if old in ("7/22", "555-0142"):
            assert new == old  # dates and phones are not swapped
    for canary in ("zelphira", "quandt", "oswin", "thornvale"):
        assert canary not in copy.text.lower()
    relative, surname, clinician, _, hospital, town, _, lower = words
    assert relative.istitle() and surname.isupper() and clinician.istitle() and lower.islower()
    assert surname.lower() == clinician.lower()  # the same word, the same replacement, in its own case
    assert lower == relative.lower()
    assert hospital.startswith("St. ") and hospital.endswith("'s GH")  # short words and hospital words stay
    assert town[0].isupper()
    # everything outside the spans is unchanged
    assert copy.text.replace(relative, "#").startswith("Spoke with wife #")
    assert copy.text.endswith(" to visit.")


def test_copies_are_seeded_and_every_other_copy_is_upper_case() -> None:
    notes = [_note(), Note("p002_n001", "p002", "Stable overnight, no events.", ())]
    first = surrogate_copies(notes, 2, seed=7)
    assert first == surrogate_copies(notes, 2, seed=7)
    assert first != surrogate_copies(notes, 2, seed=8)
    assert [n.id for n in first] == ["p001_n001_swap0", "p001_n001_swap1"]  # no copy without a name or place
    assert first[1].text.isupper() and not first[0].text.isupper()
    assert token_labels(first[1]).count("NAME") == token_labels(notes[0]).count("NAME")


def test_unknown_words_become_invented_names_of_no_list() -> None:
    """A name in no list ("Zelphira") is replaced by a word that is in no list either, so the copies keep
    the real notes' share of names that no dictionary knows."""
    lex = lexicon()
    for seed in range(20):
        copy = swap_note(_note(), random.Random(seed), "_s")
        start, end, _ = copy.spans[0]
        word = copy.text[start:end].lower()
        assert not (lex.is_name(word) or word in lex.census_last or word in lex.census_first or is_english(word))


def test_training_with_swaps_keeps_swapped_names_out_of_the_model(tmp_path: Path) -> None:
    notes = [Note(f"p{k:03d}_n001", f"p{k:03d}", _note().text, _note().spans) for k in range(6)]
    model = train(notes, tmp_path / "m.crfsuite", iterations=10, swaps=2)
    blob = model.path.read_bytes() + model.path.with_suffix(".json").read_bytes()
    for canary in ("zelphira", "quandt", "thornvale"):
        assert canary.encode() not in blob.lower()
    assert "updated" in model.vocabulary


def test_data_card_names_the_honest_estimates_when_every_patient_is_in_the_model() -> None:
    from carelens.privacy.training import data_card

    score = {"recall": 0.9, "precision": 0.8, "f2": 0.88, "per_type": {"HCPName": {"recall": 0.95, "tokens": 20}}}
    sizes = {"notes": 10, "patients": 2, "spans": 5}
    report = {"fit": sizes, "held_out": sizes, "all_patients": True, "swaps": 4, "synthetic_fit": 3,
              "threshold": 0.03, "iterations": 100, "train_cpu_s": 1.0, "held_out_score": score,
              "rotation": {"parts": 4, **score}}  # fmt: skip
    card = data_card(report, 100)
    assert "every patient of physionet-dev" in card and "never saw the patients they score" in card
    assert "fit part only" in card and "Held-out rotation: 4 models" in card
    assert "4 copies" in card
    old = data_card({**report, "all_patients": False, "swaps": 0}, 100)
    assert "(the shipped model)" in old and "every patient" not in old


def test_rotation_parts_hold_whole_patients_and_are_fixed() -> None:
    from carelens.privacy.training import rotation_parts

    held = [Note(f"p{p:03d}_n{k:03d}", f"p{p:03d}", "x", ()) for p in range(40) for k in range(3)]
    parts = rotation_parts(held, 4)
    assert sum(len(g) for g in parts) == len(held) and all(parts)
    patients = [{n.patient for n in g} for g in parts]
    assert all(not (a & b) for i, a in enumerate(patients) for b in patients[i + 1 :])
    assert rotation_parts(held, 4) == parts
