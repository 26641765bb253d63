"""The context cues applied after the CRF (``carelens.privacy.cues``)."""

import re

from carelens.privacy.crf import crf_tokens
from carelens.privacy.cues import cue_spans

VOCAB = frozenset(
    {"aware", "pain", "vent", "settings", "called", "will", "for", "consult", "resp", "transfer", "today"}
)


def found(text: str) -> set[tuple[str, str]]:
    return {(text[s.start : s.end], s.type) for s in cue_spans(text, crf_tokens(text), VOCAB)}


def test_names_after_titles_before_credentials_and_after_relatives() -> None:
    assert ("zabrowski", "NAME") in found("will consult resp and dr zabrowski for changes")
    assert ("W. QUINTERRA", "NAME") in found("AS PER W. QUINTERRA AWARE.")
    assert ("DAN A. FORMAN-LYONS", "NAME") in found("DAN A. FORMAN-LYONS, RRT")
    assert ("suzette", "NAME") in found("social: dtr suzette called")


def test_places_after_cues() -> None:
    assert ("Zandor Rehab", "LOCATION") in found("transfer to Zandor Rehab today")
    assert ("Quixmain", "LOCATION") in found("plan: transfer Quixmain 2 today")


def test_dates_and_what_is_not_a_date() -> None:
    assert ("7/81", "DATE") in found("PMH: CAD W AMI 7/81-ECHO")
    assert ("9/2/92", "DATE") in found("LITHIUM TOXICITY-9/2/92.")
    assert ("10/3", "DATE") in found("extubated 10/3 at 9:30")
    assert ("MARCH", "DATE") in found("IN THIS CASE MARCH OF 1993")
    assert not {t for t in found("on bipap 10/5 with pain 3/10 and 1/2 amp") if t[1] == "DATE"}


def test_known_words_are_not_taken() -> None:
    assert not found("pain aware, vent settings called today")


def test_ratios_are_not_dates() -> None:
    from carelens.privacy.cues import not_dates
    from carelens.privacy.tokens import PhiSpan

    text = "PSV 10/5 and 3/10 pain, 1/2 amp, seen 10/18"
    spans = [PhiSpan(m.start(), m.end(), "DATE", "model") for m in re.finditer(r"\d+/\d+", text)]
    assert [text[s.start : s.end] for s in not_dates(text, spans)] == ["10/18"]
