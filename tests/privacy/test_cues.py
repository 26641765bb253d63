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


def test_names_the_cues_missed_before() -> None:
    # two clinicians after "drs", an initial after a courtesy title, a family named before "family"
    assert {("OKONKWO", "NAME"), ("VANTERPOOL", "NAME")} <= found("SEEN BY DRS OKONKWO AND VANTERPOOL THIS AM")
    assert ("K", "NAME") in found("Mr. K. remains on pressors")
    assert ("BRZEZINSKI", "NAME") in found("KEEP BRZEZINSKI FAMILY AWARE OF PLAN")
    # an initial before an apostrophe surname, a hyphenated surname that is also a word before a credential
    assert ("t. o'halloran", "NAME") in found("consent witnessed by (t. o'halloran) at bedside")
    assert ("Gresh-Baker", "NAME") in found("Gresh-Baker MD placed the line")


def test_places_the_cues_missed_before() -> None:
    assert ("Glen Burnie", "LOCATION") in found("wife lives in Glen Burnie with her sister")
    assert ("Greater Frostburg Med Ctr", "LOCATION") in found("medflight from Greater Frostburg Med Ctr today")
    assert ("St Agnes's", "LOCATION") in found("will return to St Agnes's after weaning")
    assert ("ZANDERLY", "LOCATION") in found("PLAN: ZANDERLY 3 IN AM")


def test_a_blood_gas_is_not_a_phone_number() -> None:
    from carelens.privacy.detect import detect_phi

    text = "ABG on these settings 7.38-33-169-24. Call wife at 410-555-0199"
    assert [text[s.start : s.end] for s in detect_phi(text, model=False) if s.type == "PHONE"] == ["410-555-0199"]


def test_a_place_found_with_confidence_is_that_place_everywhere_in_the_note() -> None:
    from carelens.privacy.detect import _propagate_places
    from carelens.privacy.tokens import PhiSpan, tokenize

    text = "Pt transferred to KMH 2 days ago. Plan: back to KMH for cath; Kmh aware. Lives in Dunmore; dunmore ok."
    tokens = tokenize(text)

    def spread(source: str, kind: str = "LOCATION", vocabulary: frozenset[str] = frozenset()) -> list[str]:
        seeds = [PhiSpan(18, 21, kind, source), PhiSpan(text.index("Dunmore"), text.index("Dunmore") + 7, kind, source)]
        return [text[s.start : s.end] for s in _propagate_places(text, tokens, seeds, vocabulary, "mixed")]

    # every other occurrence, not in lower case in mixed-case text ("dunmore ok" could be a word)
    assert spread("cue") == ["KMH", "Kmh"]
    assert spread("model!") == ["KMH", "Kmh"]
    assert spread("model") == []  # a place the CRF was unsure of spreads nowhere
    assert spread("cue", kind="NAME") == []
    assert spread("cue", vocabulary=frozenset({"kmh"})) == []  # a word seen often outside PHI


def test_common_clinical_and_english_words_of_a_place_do_not_spread() -> None:
    from carelens.privacy.detect import _propagate_places
    from carelens.privacy.tokens import PhiSpan, tokenize

    text = "TO GOOD SAMARITAN HOSPITAL REHAB UNIT. HOSPITAL COURSE: GOOD. REHAB SCREEN TODAY, NORTH WING."
    seed = PhiSpan(3, text.index(" REHAB UNIT"), "LOCATION", "cue")
    spread = _propagate_places(text, tokenize(text), [seed], frozenset(), "upper")
    assert not [text[s.start : s.end] for s in spread if text[s.start : s.end] in ("HOSPITAL", "GOOD", "REHAB")]
