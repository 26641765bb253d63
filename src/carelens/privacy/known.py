"""Every identifier known for each patient, from every person-like resource and file name, and a
digit-, case- and spacing-tolerant matcher for them.

Sources: Patient (names, identifiers, telecom, address lines, city), Patient.contact and
RelatedPerson (names, telecom, identifiers, address lines), Coverage (subscriberId, identifier),
Device (serialNumber, lotNumber, distinctIdentifier, UDI) and the name of the file a patient's
resources came from ("Anna123_Smith456_<uuid>.json"). A name word matches with trailing digits
("Anna123"), in any case, with spaces, dots or dashes between its letters ("A n n a").
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

PERSON_TYPES = ("Patient", "RelatedPerson")
_LETTERS = re.compile(r"[^\W\d_]+")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_INVISIBLE = re.compile("[\x00\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
SCRUB_MEMO = 20_000  # strings remembered per patient


@dataclass
class Known:
    """The identifiers of one patient: (kind, value) pairs."""

    values: set[tuple[str, str]] = field(default_factory=set)
    birth_date: str = ""
    _regex: re.Pattern[str] | None = None
    _scrubbed: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def add(self, kind: str, value: Any) -> None:
        if isinstance(value, str) and len(re.sub(r"\W", "", value)) >= (2 if unspaced(value) else 3):
            self.values.add((kind, value.strip()))
            self._regex = None
            self._scrubbed.clear()

    def regex(self) -> re.Pattern[str] | None:
        """One case-insensitive pattern matching any of the identifiers (None when there are none)."""
        if self._regex is None:
            parts = sorted({p for kind, value in self.values for p in patterns(kind, value)}, key=len, reverse=True)
            self._regex = re.compile("|".join(parts), re.IGNORECASE) if parts else None
        return self._regex

    def scrub(self, text: str, replacement: str = "[REDACTED]") -> str:
        """``text`` with every match of a known identifier replaced (remembered: the same codes,
        systems and labels come back in every resource)."""
        regex = self.regex()
        if regex is None or not text:
            return text
        key = (text, replacement)
        done = self._scrubbed.get(key)
        if done is None:
            if len(self._scrubbed) > SCRUB_MEMO:
                self._scrubbed.clear()
            decoded = plain(text)
            if decoded != text and regex.search(decoded):  # "Q&#117;ixley", "Q%75ixley": cleaned decoded
                text = decoded
            done = self._scrubbed[key] = regex.sub(replacement, text)
        return done

    def kind_of(self, matched: str) -> str:
        """Which kind of identifier a matched string is (for reports: never the value)."""
        for kind, value in sorted(self.values):
            if any(re.fullmatch(p, matched, re.IGNORECASE) for p in patterns(kind, value)):
                return kind
        return "identifier"


def plain(text: str) -> str:
    """``text`` with HTML/XML character references and URL percent-escapes decoded, invisible
    characters (NUL, zero-width, soft hyphen) removed and compatibility forms folded (NFKC:
    fullwidth letters), as a name can be written ``Q&#117;ixley``, ``Q%75ixley``, ``Quix\u200bley``
    or ``Ｑｕｉｘｌｅｙ``; ``text`` itself when it holds none of these."""
    if "&" in text:
        text = html.unescape(text)
    if "%" in text and _PERCENT.search(text):
        text = unquote(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    elif "\x00" in text:
        text = text.replace("\x00", "")
    return text


def unspaced(word: str) -> bool:
    """Whether ``word`` is in a script written without spaces between words (Chinese, Japanese
    kana and kanji, Korean): such a name is looked for inside a run of letters, from two letters on."""
    return bool(_UNSPACED.search(word))


def name_letters(word: str) -> str:
    """The letters of a name word that count: three or more (two or more in a script without spaces)."""
    letters = "".join(_LETTERS.findall(word))
    return letters if len(letters) >= (2 if unspaced(letters) else 3) else ""


def _word(word: str) -> str:
    """A name word: its letters, each optionally followed by a space, dot or dash, then digits
    (in a script without spaces: the letters anywhere)."""
    letters = _LETTERS.findall(word)
    if not letters:
        return ""
    if unspaced(word):
        return re.escape("".join(letters))
    body = r"[\s._\-]?".join(re.escape(c) for c in "".join(letters))
    return rf"(?<![^\W\d_]){body}\d*(?![^\W\d_])"


def patterns(kind: str, value: str) -> list[str]:
    """Regexes for one identifier: name words one by one (three letters or more), phrases
    (address lines) word by word, codes (MRN, SSN, phone, serial) character by character with
    optional separators."""
    if kind == "name":
        return [_word(w) for w in re.split(r"[\s,^=]+", value) if name_letters(w)]
    if kind in ("address", "city"):
        words = re.findall(r"\w+", value)
        if not words or (len(words) == 1 and len(words[0]) < 4):
            return []
        return [r"(?<!\w)" + r"\W{1,3}".join(re.escape(w) for w in words) + r"(?!\w)"]
    if kind == "email":
        return [re.escape(value), *patterns("code", value.split("@")[0])]
    chars = [c for c in value if c.isalnum()]
    if len(chars) < 4:
        return []
    return [r"(?<![A-Za-z0-9])" + r"[\s\-./()^_]{0,2}".join(re.escape(c) for c in chars) + r"(?![A-Za-z0-9])"]


def _names(resource: dict[str, Any], known: Known) -> None:
    """Every string of every HumanName (its parts, and the values of its primitive extensions such
    as ``_family``), and of every valueHumanName extension of the resource."""
    names = resource.get("name") or []
    names = [*(names if isinstance(names, list) else [names])]
    names += [e.get("valueHumanName") for e in resource.get("extension") or [] if isinstance(e, dict)]
    for name in names:
        if isinstance(name, dict):
            for key, value in name.items():
                if key in ("given", "family", "text", "prefix", "suffix") or key.startswith("_"):
                    for part in _strings(value):
                        known.add("name", part)


def _strings(value: Any) -> Iterable[str]:
    """Every string in a JSON value except URLs (extension urls name a definition, not a person)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "url":
                yield from _strings(item)


def _contact_points(resource: dict[str, Any], known: Known) -> None:
    for tel in resource.get("telecom") or []:
        if isinstance(tel, dict) and isinstance(tel.get("value"), str):
            known.add("email" if "@" in tel["value"] else "phone", tel["value"])


def _addresses(resource: dict[str, Any], known: Known) -> None:
    addresses = resource.get("address") or []
    for addr in addresses if isinstance(addresses, list) else [addresses]:
        if isinstance(addr, dict):
            for line in addr.get("line") or []:
                known.add("address", line)
            known.add("city", addr.get("city"))


def _identifiers(resource: dict[str, Any], known: Known) -> None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            system = str(ident.get("system", "")).lower()
            ssn = "ssn" in system or re.fullmatch(r"\d{3}-\d{2}-\d{4}", ident["value"])
            known.add("ssn" if ssn else "mrn", ident["value"])


def add_resource(resource: dict[str, Any], known: Known) -> None:
    """Add what ``resource`` tells about its patient to ``known``."""
    rtype = resource.get("resourceType")
    if rtype in PERSON_TYPES:
        _names(resource, known)
        _contact_points(resource, known)
        _addresses(resource, known)
        _identifiers(resource, known)
        if rtype == "Patient":
            for contact in resource.get("contact") or []:
                if isinstance(contact, dict):
                    _names({"name": [contact.get("name") or {}]}, known)
                    _contact_points(contact, known)
                    _addresses(contact, known)
            if isinstance(resource.get("birthDate"), str) and len(resource["birthDate"]) >= 10:
                known.birth_date = resource["birthDate"][:10]
    elif rtype == "Coverage":
        known.add("mrn", resource.get("subscriberId"))
        _identifiers(resource, known)
    elif rtype == "Device":
        for key in ("serialNumber", "lotNumber", "distinctIdentifier"):
            known.add("device", resource.get(key))
        for udi in resource.get("udiCarrier") or []:
            if isinstance(udi, dict):
                for key in ("deviceIdentifier", "carrierHRF"):
                    known.add("device", udi.get(key))


def add_file_name(path: Path, known: Known, ignore: frozenset[str] = frozenset()) -> None:
    """Name words and long ids in a file name ("Anna123_Smith456_<uuid>.json"); words in
    ``ignore`` (lower case: resource type names, "bundle") are not names."""
    stem = path.name.split(".")[0]
    for part in re.split(r"[_\s]+", stem):
        if re.fullmatch(r"[0-9a-fA-F\-]{16,}", part):
            known.add("mrn", part)
        elif name_letters(part) and part.lower() not in ignore:
            known.add("name", part)


def collect(items: Iterable[tuple[Path, list[tuple[dict[str, Any], str]]]],
            ignore: frozenset[str] = frozenset()) -> dict[str, Known]:  # fmt: skip
    """Known identifiers by patient id from (file, [(resource, patient id)]) of a source. A file
    holding exactly one patient gives that patient its name and everything in it."""
    out: dict[str, Known] = {}
    for path, resources in items:
        in_file = {pid for _r, pid in resources if pid}
        for resource, pid in resources:
            owner = pid or (next(iter(in_file)) if len(in_file) == 1 else "")
            if owner:
                add_resource(resource, out.setdefault(owner, Known()))
        if len(in_file) == 1:
            add_file_name(path, out.setdefault(next(iter(in_file)), Known()), ignore)
    return out


def add_dicom(ds: Any, known: Known) -> str:
    """Add the patient attributes of a DICOM dataset to ``known``; returns its birth date (ISO) or ''."""
    for kw in ("PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName"):
        for part in re.split(r"[\^ =]+", str(ds.get(kw, "") or "")):
            known.add("name", part)
    # not IssuerOfPatientID: it names the hospital that issued the id, not the patient
    for kw, kind in (("PatientID", "mrn"), ("OtherPatientIDs", "mrn"), ("PatientAddress", "address"),
                     ("PatientTelephoneNumbers", "phone"), ("AccessionNumber", "accession"),
                     ("MedicalRecordLocator", "mrn")):  # fmt: skip
        value = ds.get(kw)
        for item in value if isinstance(value, list) or type(value).__name__ == "MultiValue" else [value]:
            if item:
                known.add(kind, str(item))
    bd = str(ds.get("PatientBirthDate", "") or "")
    return f"{bd[:4]}-{bd[4:6]}-{bd[6:]}" if re.fullmatch(r"\d{8}", bd) else ""
