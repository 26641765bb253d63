"""The real de-identification corpus (PhysioNet ``deid`` gold notes): loading, the by-patient
split, and the token-level scorer its README describes.

Scoring (token level, ``\\w+`` tokens): a gold token counts as found when a detected span
overlaps it; a detected token is a true positive when it overlaps a gold span. ``DateYear``
(a year alone, which Safe Harbor keeps) is not counted against recall.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

WORD = re.compile(r"\w+")
NOT_COUNTED = frozenset({"DateYear", "NotPHI"})
# corpus type -> the detector's coarse class (physionet-dev's types, then Presidio's)
CLASS_OF = {"HCPName": "NAME", "RelativeProxyName": "NAME", "PTName": "NAME", "PTNameInitial": "NAME",
            "Location": "LOCATION", "Date": "DATE", "Phone": "PHONE", "Age": "AGE", "Other": "ID",
            "PERSON": "NAME", "STREET_ADDRESS": "LOCATION", "GPE": "LOCATION", "ZIP_CODE": "LOCATION",
            "ORGANIZATION": "LOCATION", "DATE_TIME": "DATE", "PHONE_NUMBER": "PHONE", "AGE": "AGE",
            "EMAIL_ADDRESS": "ID", "DOMAIN_NAME": "ID", "IP_ADDRESS": "ID", "CREDIT_CARD": "ID", "IBAN_CODE": "ID",
            "US_SSN": "ID", "US_DRIVER_LICENSE": "ID",
            "NAME": "NAME", "HOSPITAL": "LOCATION", "CITY": "LOCATION", "STATE": "LOCATION", "ADDRESS": "LOCATION",
            "ZIP": "LOCATION", "LOCATION": "LOCATION", "DATE": "DATE", "PHONE": "PHONE", "FAX": "PHONE"}  # fmt: skip


@dataclass(frozen=True)
class Note:
    """One gold note: ``spans`` are ``(start, end, type)`` character offsets into ``text``."""

    id: str
    patient: str
    text: str
    spans: tuple[tuple[int, int, str], ...]
    synthetic: bool = False


def load_corpus(folder: Path) -> list[Note]:
    """The notes of a physionet-dev style folder (``notes/pPPP_nNNN.txt`` and ``gold.json``)."""
    gold = orjson.loads((folder / "gold.json").read_bytes())
    notes = []
    for path in sorted((folder / "notes").glob("*.txt")):
        spans = tuple((g["start"], g["end"], g["type"]) for g in gold.get(path.stem, []))
        notes.append(Note(path.stem, path.stem.split("_")[0], path.read_text(encoding="utf-8"), spans))
    return notes


def load_presidio(path: Path, countries: frozenset[str] = frozenset()) -> list[Note]:
    """Presidio's synthetic sentences as notes (one "patient" per template). Types that are not
    Safe Harbor identifiers become ``NotPHI`` (titles, nationalities, ages up to 89, a year alone,
    countries), which neither counts against recall nor as a false positive."""
    rows = orjson.loads(path.read_bytes())
    notes = []
    for i, row in enumerate(rows):
        spans = []
        for s in row["spans"]:
            kind = _presidio_kind(s["entity_type"], s["entity_value"].strip(), countries)
            spans.append((s["start_position"], s["end_position"], kind))
        notes.append(Note(f"presidio_{i:05d}", f"t{row.get('template_id', i)}", row["full_text"], tuple(spans), True))
    return notes


def _presidio_kind(kind: str, value: str, countries: frozenset[str]) -> str:
    not_phi = (
        kind in ("TITLE", "NRP")
        or (kind == "AGE" and not (value.isdecimal() and int(value) > 89))
        or (kind == "DATE_TIME" and re.fullmatch(r"\d{4}s?", value) is not None)
        or (kind == "GPE" and value.lower() in countries)
    )
    return "NotPHI" if not_phi else kind


def patient_fold(patient: str, folds: int, salt: str = "carelens-deid-split") -> int:
    """A fixed fold of a patient (a hash of its id: stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{patient}".encode()).digest()[:4], "big") % folds


def split_by_patient(notes: Iterable[Note], held_out_share: float = 0.3) -> tuple[list[Note], list[Note]]:
    """(fit, held out): about ``held_out_share`` of the patients, all their notes, are held out."""
    cut = round(held_out_share * 100)
    fit: list[Note] = []
    held: list[Note] = []
    for note in notes:
        (held if patient_fold(note.patient, 100) < cut else fit).append(note)
    return fit, held


@dataclass
class Score:
    """Token-level counts: per gold type (found/gold) and overall precision."""

    found: Counter[str] = field(default_factory=Counter)
    gold: Counter[str] = field(default_factory=Counter)
    tp: int = 0
    fp: int = 0

    def add(self, text: str, gold: Iterable[tuple[int, int, str]], detected: Iterable[tuple[int, int]]) -> None:
        """Score one note."""
        gold = sorted(gold)
        detected = sorted(detected)
        for m in WORD.finditer(text):
            a, b = m.span()
            kinds = [k for s, e, k in gold if s < b and a < e]
            hit = any(s < b and a < e for s, e in detected)
            counted = [k for k in kinds if k not in NOT_COUNTED]
            if counted:
                self.gold[counted[0]] += 1
                self.found[counted[0]] += hit
            if hit:
                if kinds:
                    self.tp += 1
                else:
                    self.fp += 1

    @property
    def recall(self) -> float:
        return sum(self.found.values()) / max(sum(self.gold.values()), 1)

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    def f(self, beta: float = 2.0) -> float:
        p, r = self.precision, self.recall
        return (1 + beta**2) * p * r / max(beta**2 * p + r, 1e-9)

    def per_type(self) -> dict[str, tuple[float, int]]:
        """Gold type -> (recall, gold tokens)."""
        return {k: (self.found[k] / n, n) for k, n in sorted(self.gold.items())}

    def as_dict(self) -> dict[str, object]:
        per_type = {k: {"recall": round(r, 4), "tokens": n} for k, (r, n) in self.per_type().items()}
        return {"recall": round(self.recall, 4), "precision": round(self.precision, 4), "f2": round(self.f(2), 4),
                "per_type": per_type}  # fmt: skip


def score_notes(notes: Iterable[Note], detect: Callable[[str], Iterable[tuple[int, int]]]) -> Score:
    """The corpus score of ``detect(text) -> [(start, end)]`` over ``notes``."""
    score = Score()
    for note in notes:
        score.add(note.text, note.spans, detect(note.text))
    return score


def by_class(score: Score) -> dict[str, tuple[float, int]]:
    """Recall per coarse class (names together, ...)."""
    found: Counter[str] = Counter()
    gold: Counter[str] = Counter()
    for k, n in score.gold.items():
        gold[CLASS_OF.get(k, k)] += n
        found[CLASS_OF.get(k, k)] += score.found[k]
    return {k: (found[k] / n, n) for k, n in sorted(gold.items())}


def per_type_total(scores: Iterable[Score]) -> Score:
    """Sum of several scores (the folds of a cross-validation)."""
    total = Score()
    for s in scores:
        total.found.update(s.found)
        total.gold.update(s.gold)
        total.tp += s.tp
        total.fp += s.fp
    return total
