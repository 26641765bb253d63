"""Propagation across the notes of one batch: a name found with confidence in one note is replaced in
the others; English words found as names are not (sentences written for these tests)."""

from __future__ import annotations

import json
from pathlib import Path

from carelens.privacy.batch import add_batch_names, confident_names
from carelens.privacy.detect import detect_phi, proposals
from carelens.privacy.keys import KeyService
from carelens.privacy.text import deid_text_path
from carelens.privacy.tokens import PhiSpan

TITLED = "Seen with Dr. Quenby today, plan discussed. Dr. Brown aware.\n"
BARE = "Quenby agreed with the plan; stool brown, soft.\n"


def _found(text: str) -> set[str]:
    return {text[s.start : s.end] for s in detect_phi(text)}


def test_a_titled_name_is_confident_and_an_english_word_is_not() -> None:
    names = confident_names(TITLED, proposals(TITLED))
    assert ("quenby",) in names
    assert ("brown",) not in names  # a surname that is an English word stays note-local


def test_unconfident_model_spans_give_no_batch_names() -> None:
    text = "Met Ulvaeus at noon.\n"
    assert confident_names(text, [PhiSpan(4, 11, "NAME", "model")]) == set()
    assert confident_names(text, [PhiSpan(4, 11, "NAME", "model!")]) == {("ulvaeus",)}


def test_batch_names_label_bare_and_lower_case_occurrences_only_where_uncovered() -> None:
    text = "orsolya at bedside; quenby to call. Dr. Quenby again.\n"
    spans = [PhiSpan(40, 46, "NAME", "dict")]  # "Quenby" after the title is covered already
    extra = add_batch_names(text, spans, {("quenby",), ("orsolya",)})
    assert sorted(text[s.start : s.end] for s in extra) == ["orsolya", "quenby"]


def test_multi_word_places_propagate_as_a_whole() -> None:
    text = "Will return to lake ardmore next week; the lake is cold.\n"
    extra = add_batch_names(text, [], {("lake", "ardmore")})
    assert [(text[s.start : s.end], s.type) for s in extra] == [("lake ardmore", "LOCATION")]


def test_deid_text_folder_replaces_a_name_found_in_another_note(tmp_path: Path) -> None:
    assert "Quenby" not in _found(BARE)  # alone, the bare surname is missed
    src, out = tmp_path / "notes", tmp_path / "out"
    src.mkdir()
    (src / "a.txt").write_text(TITLED)
    (src / "b.txt").write_text(BARE)
    result = deid_text_path(src, out, KeyService.ephemeral())
    assert result.done["notes"] == 2
    b_out = (out / "b.txt").read_text()
    assert "Quenby" not in b_out and "stool brown" in b_out
    spans = json.loads((out / "b.phi.json").read_text())
    assert [s["text"] for s in spans] == ["Quenby"]
    assert all(BARE[s["start"] : s["end"]] == s["text"] for s in spans)
    assert "Quenby" not in (out / "a.txt").read_text()


def test_one_note_is_no_batch(tmp_path: Path) -> None:
    src, out = tmp_path / "b.txt", tmp_path / "out"
    src.write_text(BARE)
    deid_text_path(src, out, KeyService.ephemeral())
    assert (out / "b.txt").read_text() == BARE


def test_a_context_cue_alone_makes_a_batch_name_only_of_a_listed_name() -> None:
    text = "Son phoned at noon. Niece Margarethe aware.\n"
    spans = [PhiSpan(4, 10, "NAME", "cue"), PhiSpan(26, 36, "NAME", "cue")]
    assert confident_names(text, spans) == {("margarethe",)}  # "phoned" after "Son" is no name


def test_the_batch_reads_names_hidden_by_invisible_characters_as_the_plain_name(tmp_path: Path) -> None:
    """A soft hyphen in one note made "quen" a batch name and a zero-width space in another hid the rest:
    "Quen\\u200bby" came out as "Hines\\u200bby" ("by" and the invisible character kept)."""
    hidden = "Seen with Dr. Quen\u00adby today.\n"
    assert confident_names(hidden, proposals(hidden)) == {("quenby",)}
    src, out = tmp_path / "notes", tmp_path / "out"
    src.mkdir()
    (src / "a.txt").write_text(hidden)
    (src / "b.txt").write_text("Quen\u200bby agreed with the plan; stool brown, soft.\n")
    deid_text_path(src, out, KeyService.ephemeral())
    written = (out / "b.txt").read_text()
    assert "Quen" not in written and "by agreed" not in written and "\u200b" not in written
    assert [s["text"] for s in json.loads((out / "b.phi.json").read_text())] == ["Quen\u200bby"]
    text = "quenby; QUEN\u200bBY"  # the second occurrence, uncovered, is found whole
    assert [text[s.start : s.end] for s in add_batch_names(text, [PhiSpan(0, 6, "NAME", "")], {("quenby",)})] == [
        "QUEN\u200bBY"
    ]
