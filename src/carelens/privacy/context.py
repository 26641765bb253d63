"""What is known about the patient a text belongs to: their key-derived pair and identifiers.

Built from the patient's own FHIR ``Patient`` resource (``PatientContext.from_fhir``), it
lets the text de-identifier search that patient's notes explicitly for their names, MRN,
SSN, phone numbers, birth date and address, tolerant of case, formatting and small
misspellings, and makes surrogates and date shifts the patient's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from carelens.privacy.keys import KeyService


@dataclass
class PatientContext:
    """The patient a text belongs to (``patient_id`` keys surrogates and the date shift)."""

    patient_id: str
    keys: KeyService
    names: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    birth_date: date | None = None
    addresses: list[str] = field(default_factory=list)
    cities: list[str] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)
    avoid: frozenset[str] = frozenset()  # real name words of every known patient: never used as surrogates

    @property
    def date_shift(self) -> int:
        return self.keys.date_shift(self.patient_id)

    @property
    def pseudonym(self) -> str:
        return self.keys.pseudonym(self.patient_id)

    @classmethod
    def from_fhir(cls, patient: dict[str, Any], keys: KeyService) -> PatientContext:
        """The context of a FHIR ``Patient`` resource (R4 or R5 JSON)."""
        ctx = cls(patient_id=str(patient.get("id") or ""), keys=keys)
        for name in patient.get("name") or []:
            parts = [*(name.get("given") or []), name.get("family") or "", *(name.get("prefix") or [])]
            ctx.names += [p for p in parts if isinstance(p, str) and p.strip()]
            if name.get("text"):
                ctx.names.append(str(name["text"]))
        for contact in patient.get("contact") or []:
            cname = contact.get("name") or {}
            ctx.names += [p for p in [*(cname.get("given") or []), cname.get("family") or ""] if p]
            for telecom in contact.get("telecom") or []:
                if telecom.get("value"):
                    ctx.phones.append(str(telecom["value"]))
        for ident in patient.get("identifier") or []:
            if ident.get("value"):
                ctx.identifiers.append(str(ident["value"]))
        for telecom in patient.get("telecom") or []:
            if telecom.get("value"):
                ctx.phones.append(str(telecom["value"]))
        if isinstance(patient.get("birthDate"), str):
            try:
                ctx.birth_date = date.fromisoformat(patient["birthDate"][:10])
            except ValueError:
                ctx.birth_date = None
        for addr in patient.get("address") or []:
            ctx.addresses += [str(line) for line in addr.get("line") or [] if line]
            if addr.get("city"):
                ctx.cities.append(str(addr["city"]))
            if addr.get("postalCode"):
                ctx.zips.append(str(addr["postalCode"]))
        return ctx

    def name_parts(self) -> set[str]:
        """Lower-cased name words (Synthea's trailing digits removed), two letters or more."""
        parts: set[str] = set()
        for name in self.names:
            for word in re.findall(r"[^\W\d_]+", name):
                if len(word) >= 2:
                    parts.add(word.lower())
        return parts
