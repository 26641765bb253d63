"""What the workspace shows, behind one small interface (``ClinicalData``).

``BundleData`` reads a folder of FHIR bundles (one or more patients each) and the AI outputs
saved under ``<store>/outputs``; summaries come from the summariser and are cached by the
input's content hash, so a page view never recomputes an unchanged summary.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from pydantic import BaseModel

from carelens import __version__
from carelens.core.errors import InputError
from carelens.core.fhir import belongs_to, patient_name
from carelens.core.ids import content_hash
from carelens.server.summarizers import Summarizer

if TYPE_CHECKING:
    from carelens.record.model import PatientRecord

Stamp = tuple[int, int, int] | None  # (modification time, size, inode) of a file, None when absent
SMALL_CELL = 5


class PatientRow(BaseModel):
    """One patient in the list (identified: clinical zone only)."""

    id: str
    name: str
    birth_date: str | None = None
    gender: str | None = None
    mrn: str | None = None


class SummaryUnavailable(Exception):
    """The summariser is not installed or failed; the page shows the rest without it."""


class ClinicalData(Protocol):
    """The read side of the clinical zone, as the server uses it."""

    def patients(self) -> list[PatientRow]: ...
    def search(
        self, q: str = "", limit: int = 50, offset: int = 0, after: str | None = None
    ) -> tuple[list[PatientRow], int]: ...
    def patient(self, pid: str) -> PatientRow | None: ...
    def input_hash(self, pid: str) -> str: ...
    def summary(self, pid: str) -> dict[str, Any]: ...
    def resource(self, pid: str, ref: str) -> dict[str, Any] | None: ...
    def record(self, pid: str) -> PatientRecord: ...
    def images(self, pid: str) -> list[dict[str, Any]]: ...
    def pgx(self, pid: str) -> dict[str, Any] | None: ...
    def findings(self, pid: str) -> list[dict[str, Any]]: ...
    def cohort(self) -> dict[str, Any]: ...


def load_summarizer(name: str) -> Summarizer:
    """The summariser registered as ``name`` (see ``summarizers``); ``SummaryUnavailable`` when
    it cannot be loaded."""
    from carelens.server import summarizers

    try:
        return summarizers.load(name)
    except (LookupError, ImportError, AttributeError) as err:
        raise SummaryUnavailable(f"summariser {name} is not available") from err


def as_plain(value: Any) -> dict[str, Any]:
    """A summary as plain JSON data (pydantic models are dumped)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return orjson.loads(orjson.dumps(value))


def age_band(birth_date: str | None, today: date | None = None) -> str:
    """Ten-year age band (``"40-49"``) from a FHIR date, or ``"unknown"``."""
    try:
        born = date.fromisoformat(str(birth_date)[:10])
    except ValueError:
        return "unknown"
    today = today or date.today()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    low = min(age // 10 * 10, 90)
    return "90+" if low == 90 else f"{low}-{low + 9}"


def suppress(counts: Counter[str]) -> dict[str, int | str]:
    """Counts with small cells (1-4) shown as ``"<5"`` so no one can be singled out."""
    return {k: (v if v >= SMALL_CELL else f"<{SMALL_CELL}") for k, v in sorted(counts.items())}


class Outputs:
    """AI outputs saved under ``<store>/outputs``: ``imaging/<patient>.json`` (a list of
    predictions), ``genomics/<patient>.pgx.json`` (the ``genome pgx`` JSON) and
    ``genomics/<patient>.findings.json`` (a list of findings). Paths inside them (images,
    heatmaps) are relative to the JSON file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _read(self, rel: str) -> Any:
        path = self.root / rel
        if not path.is_file():
            return None
        try:
            return orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as err:
            raise InputError(f"saved output {rel} is not valid JSON") from err

    def images(self, pid: str) -> list[dict[str, Any]]:
        data = self._read(f"imaging/{pid}.json") or []
        return data if isinstance(data, list) else data.get("predictions", [])

    def pgx(self, pid: str) -> dict[str, Any] | None:
        data = self._read(f"genomics/{pid}.pgx.json")
        return data if isinstance(data, dict) else None

    def findings(self, pid: str) -> list[dict[str, Any]]:
        data = self._read(f"genomics/{pid}.findings.json") or []
        return data if isinstance(data, list) else data.get("findings", [])

    def stamp(self, pid: str) -> tuple[Stamp, ...]:
        """(modification time, size, inode) of each of the patient's output files (None: absent); it
        changes whenever an output is written."""
        stamps: list[Stamp] = []
        for rel in (f"imaging/{pid}.json", f"genomics/{pid}.pgx.json", f"genomics/{pid}.findings.json"):
            try:
                st = (self.root / rel).stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def file(self, rel: str) -> Path | None:
        """A file named inside an output, only if it lies under the outputs folder."""
        path = (self.root / "imaging" / rel).resolve()
        root = self.root.resolve()
        return path if path.is_file() and root in path.parents else None


class SummaryCache:
    """Summaries keyed by (patient, input hash); one computation per key even under load."""

    def __init__(self, summarize: Callable[[str], Any]) -> None:
        self._summarize = summarize
        self._done: dict[tuple[str, str], dict[str, Any]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, pid: str, input_hash: str) -> dict[str, Any]:
        key = (pid, input_hash)
        if key in self._done:
            return self._done[key]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._done:
                try:
                    self._done[key] = as_plain(self._summarize(pid))
                except SummaryUnavailable:
                    raise
                except Exception as err:  # the summariser's failure must not take the page down
                    raise SummaryUnavailable(f"the summariser failed ({type(err).__name__})") from err
            return self._done[key]


class BundleData:
    """Clinical data from a folder of FHIR bundles plus saved AI outputs."""

    def __init__(self, folder: Path, outputs: Path, summarizer: str = "record") -> None:
        self.folder = folder
        self.outputs = Outputs(outputs)
        self._summarizer = summarizer
        self._patients: dict[str, tuple[Path, dict[str, Any]]] = {}
        self._refs: dict[str, Path] = {}
        self._hashes: dict[Path, str] = {}
        self._cohort: dict[str, Any] | None = None
        for path in sorted(folder.glob("*.json")):
            raw = path.read_bytes()
            try:
                bundle = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # not a bundle; ingest quarantines such files, the workspace skips them
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                continue
            self._hashes[path] = content_hash(raw)
            for entry in bundle.get("entry", []):
                res = entry.get("resource") or {}
                if "resourceType" in res and "id" in res:
                    self._refs[f"{res['resourceType']}/{res['id']}"] = path
                    if res["resourceType"] == "Patient":
                        self._patients[res["id"]] = (path, res)
        self.cache = SummaryCache(self._summarize_one)

    def _summarize_one(self, pid: str) -> Any:
        path, _ = self._patients[pid]
        return load_summarizer(self._summarizer)(path, pid)

    def patients(self) -> list[PatientRow]:
        return sorted((self._row(pid, res) for pid, (_, res) in self._patients.items()), key=lambda r: r.name)

    def search(
        self, q: str = "", limit: int = 50, offset: int = 0, after: str | None = None
    ) -> tuple[list[PatientRow], int]:
        """A page of the patients whose name, id or birth date contains ``q`` (and the number found);
        ``after``: the page that follows the patient with this id."""
        rows = [r for r in self.patients() if _matches(r, q)]
        if after is not None:
            place = next((i for i, r in enumerate(rows) if r.id == after), None)
            if place is None:
                raise InputError("the page cursor names no patient of the list (it changed): start again")
            offset += place + 1
        return rows[offset : offset + limit], len(rows)

    @staticmethod
    def _row(pid: str, res: dict[str, Any]) -> PatientRow:
        return PatientRow(id=pid, name=patient_name(res), birth_date=res.get("birthDate"), gender=res.get("gender"))

    def patient(self, pid: str) -> PatientRow | None:
        found = self._patients.get(pid)
        return self._row(pid, found[1]) if found else None

    def input_hash(self, pid: str) -> str:
        return self._hashes[self._patients[pid][0]]

    def version(self, pid: str) -> tuple[Any, ...]:
        """What the patient page shows from this data: the input hash and the outputs' stamps."""
        return (self.input_hash(pid), self.outputs.stamp(pid))

    def summary(self, pid: str) -> dict[str, Any]:
        return self.cache.get(pid, self.input_hash(pid))

    def resource(self, pid: str, ref: str) -> dict[str, Any] | None:
        path = self._refs.get(ref)
        if path is None or path != self._patients[pid][0]:
            return None  # only resources from this patient's own record
        for entry in _bundle(path).get("entry", []):
            res = entry.get("resource") or {}
            if f"{res.get('resourceType')}/{res.get('id')}" == ref:
                return res if belongs_to(res, pid) else None
        return None

    def record(self, pid: str) -> PatientRecord:
        """The patient's whole record (for asking it questions)."""
        from carelens.record.load import load_record

        return load_record(self._patients[pid][0], pid)

    def images(self, pid: str) -> list[dict[str, Any]]:
        return self.outputs.images(pid)

    def pgx(self, pid: str) -> dict[str, Any] | None:
        return self.outputs.pgx(pid)

    def findings(self, pid: str) -> list[dict[str, Any]]:
        return self.outputs.findings(pid)

    def cohort(self) -> dict[str, Any]:
        """De-identified counts only: patients, sex, age band, commonest conditions (small
        cells suppressed)."""
        if self._cohort is None:
            sexes, ages, conditions = Counter[str](), Counter[str](), Counter[str]()
            for _, res in self._patients.values():
                sexes[res.get("gender") or "unknown"] += 1
                ages[age_band(res.get("birthDate"))] += 1
            for path in self._hashes:
                seen: set[tuple[str, str]] = set()
                for entry in _bundle(path).get("entry", []):
                    res = entry.get("resource") or {}
                    if res.get("resourceType") == "Condition":
                        text = (res.get("code") or {}).get("text") or "(uncoded)"
                        subject = str((res.get("subject") or {}).get("reference"))
                        if (subject, text) not in seen:
                            seen.add((subject, text))
                            conditions[text] += 1
            top = Counter(dict(conditions.most_common(15)))
            self._cohort = {
                "patients": len(self._patients),
                "sex": suppress(sexes),
                "age_band": suppress(ages),
                "conditions": suppress(top),
                "small_cell_threshold": SMALL_CELL,
                "carelens_version": __version__,
            }
        return self._cohort


def _matches(row: PatientRow, q: str) -> bool:
    q = q.strip().lower()
    return not q or q in row.name.lower() or q in row.id.lower() or q in (row.birth_date or "") or q in (row.mrn or "")


@lru_cache(maxsize=4)
def _bundle(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())
