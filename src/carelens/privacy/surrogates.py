"""Realistic surrogates for detected PHI, consistent within a patient.

Every choice is keyed by the key service on (patient, type, normalised original), so the same
name always gets the same surrogate in one patient's notes, across runs and sites sharing the
secret. Surrogates keep the original's shape: case, digit layout, date format.
"""

from __future__ import annotations

import re
from functools import lru_cache

from carelens.privacy.context import PatientContext
from carelens.privacy.dates import DATE_RE, shift_date
from carelens.privacy.fold import fold
from carelens.privacy.keys import KeyService
from carelens.privacy.lexicon import lexicon

STREET_SUFFIXES = ["Street", "Avenue", "Road", "Lane", "Drive", "Court", "Way", "Place"]
HOSPITAL_KINDS = ["Memorial Hospital", "General Hospital", "Medical Center", "Community Hospital", "Clinic"]


@lru_cache(maxsize=1)
def _pools() -> dict[str, list[str]]:
    from faker.providers.address.en_US import Provider as Address
    from faker.providers.person.en_US import Provider as Person

    first = sorted({*Person.first_names_male, *Person.first_names_female})
    last = sorted(set(Person.last_names))
    states = sorted(Address.states_abbr)
    cities = sorted({f"{a} {b}" for a in ("Lake", "Port", "North", "South", "East", "West", "New") for b in last[:60]}
                    | {f"{b}{c}" for b in last[60:160] for c in ("ville", "ton", "burg", " Falls")})  # fmt: skip
    streets = sorted({*last[200:400]})
    return {"first": first, "last": last, "state": states, "city": cities, "street": streets}


@lru_cache(maxsize=2)
def _wider_pool(kind: str) -> list[tuple[str, str]]:
    """Census first names or the 20,000 commonest census surnames, capitalised (public domain),
    each with its lower case (one word each: it is known when that word is)."""
    ranks = lexicon().census_first if kind == "first" else lexicon().census_last
    return [
        (w, w.lower()) for w in sorted(w.capitalize() for w, rank in ranks.items() if rank <= 20_000 and w.isalpha())
    ]


@lru_cache(maxsize=8)  # a patient's texts share their known names: a large cohort's send most picks here
def _outside(kind: str, avoid: frozenset[str]) -> list[str]:
    """The wider pool of ``kind`` without the names in ``avoid``."""
    return [word for word, low in _wider_pool(kind) if low not in avoid]


class Surrogates:
    """Makes the replacement of each span for one patient (or one document without a patient)."""

    def __init__(self, keys: KeyService, owner: str, shift_days: int, avoid: frozenset[str] = frozenset()) -> None:
        self.keys = keys
        self.owner = owner
        self.shift_days = shift_days
        self.first_parts: set[str] = set()
        self.avoid = avoid

    @classmethod
    def for_context(cls, ctx: PatientContext) -> Surrogates:
        sur = cls(ctx.keys, ctx.patient_id, ctx.date_shift, ctx.avoid | ctx.name_parts())
        for name in ctx.names:
            words = name.split()
            if words:
                sur.first_parts.add(re.sub(r"\d+$", "", words[0]).lower())
        return sur

    def _pick(self, kind: str, value: str, pool: list[str]) -> str:
        """A keyed choice from ``pool`` that is never a real name word of a known patient.

        When the known names cover the first keyed choices (a large cohort's names cover most of a
        small pool), the choice is made among the census names outside them; never a known word.
        """
        for attempt in range(20):
            choice = self.keys.choose(f"surrogate:{kind}:{self.owner}:{attempt}", value.lower(), pool)
            if not self._known(choice):
                return choice
        wider = _outside("first" if kind == "first" else "last", frozenset(self.avoid))
        if not wider:
            raise ValueError("no surrogate is left outside the known names")
        return self.keys.choose(f"surrogate:{kind}:{self.owner}:wider", value.lower(), wider)

    def _known(self, choice: str) -> bool:
        return bool(self.avoid) and bool(set(choice.lower().split()) & self.avoid)

    def replace(self, kind: str, original: str) -> str:
        """The surrogate of ``original`` (a span of type ``kind``), read as the detectors read it (``fold``:
        "Quix\u200bley" is Quixley's surrogate, "３/１４" a date shifted and written in ASCII)."""
        original = fold(original)[0]
        if kind == "DATE":
            m = DATE_RE.fullmatch(original)
            return shift_date(m, self.shift_days) if m else self._digits(kind, original)
        if kind == "AGE":
            return "90+"
        if kind == "NAME":
            return self._name(original)
        if kind == "EMAIL":
            return f"user{self.keys.hash_hex('email:' + self.owner, original.lower(), 8)}@example.org"
        if kind == "URL":
            return f"https://example.org/{self.keys.hash_hex('url:' + self.owner, original.lower(), 10)}"
        if kind == "IP":
            n = self.keys.number("ip:" + self.owner, original)
            return f"192.0.2.{n % 254 + 1}" if "." in original else f"2001:db8::{n % 65535:x}"
        if kind == "SSN":
            out = self._digits(kind, original)
            return "9" + out[1:] if out[:1].isdigit() else out
        if kind == "CITY":
            return _case_like(self._pick("city", original, _pools()["city"]), original)
        if kind == "STATE":
            state = self._pick("state", original, _pools()["state"])
            return state if len(original) <= 3 else _case_like(_STATE_NAMES.get(state, state), original)
        if kind == "ADDRESS":
            return self._address(original)
        if kind in ("HOSPITAL", "ORGANIZATION"):
            last = self._pick("org", original, _pools()["last"])
            kind_name = self._pick("org-kind", original, HOSPITAL_KINDS)
            return _case_like(f"{last} {kind_name}", original)
        if kind == "LOCATION":
            return _case_like(self._pick("city", original, _pools()["city"]), original)
        return self._digits(kind, original)

    def _name(self, original: str) -> str:
        words = re.split(r"(\W+)", original)
        out = []
        for i, w in enumerate(words):
            if not w or not w[0].isalnum():
                out.append(w)
                continue
            base = re.sub(r"\d+$", "", w)
            if len(base) == 1:
                out.append(_case_like(self._pick("initial", base, list("ABCDEFGHJKLMNPRSTW")), base))
                continue
            low = base.lower()
            lex = lexicon()
            several = len([x for x in words if x.strip(" ,.")]) > 1 and "," not in original
            first_like = low in self.first_parts or (i == 0 and several)
            first_like = first_like or (
                low in lex.first_names and low not in lex.last_names and not (several and i > 0)
            )
            pool = _pools()["first"] if first_like else _pools()["last"]
            out.append(_case_like(self._pick("first" if first_like else "last", base, pool), base))
        return "".join(out)

    def _address(self, original: str) -> str:
        number = str(self.keys.number("addr-num:" + self.owner, original.lower()) % 9899 + 100)
        street = self._pick("street", original, _pools()["street"])
        suffix = self._pick("street-suffix", original, STREET_SUFFIXES)
        return _case_like(f"{number} {street} {suffix}", original)

    def _digits(self, kind: str, original: str) -> str:
        """Same layout, keyed digits and letters."""
        seed = self.keys.digest(f"digits:{kind}:{self.owner}", original.lower())
        out = []
        for i, c in enumerate(original):
            b = seed[i % len(seed)] ^ (i * 31 % 256)
            if c.isdigit():
                out.append(str(b % 10))
            elif c.isalpha() and c.isascii():
                letter = chr(ord("A") + b % 26)
                out.append(letter if c.isupper() else letter.lower())
            else:
                out.append(c)
        return "".join(out)


_STATE_NAMES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho",
    "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire",
    "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota",
    "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island",
    "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
}  # fmt: skip


def _case_like(value: str, like: str) -> str:
    letters = [c for c in like if c.isalpha()]
    if letters and all(c.isupper() for c in letters) and len(letters) > 1:
        return value.upper()
    if letters and all(c.islower() for c in letters):
        return value.lower()
    return value
