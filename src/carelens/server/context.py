"""Per-app state shared by the routes: settings, database, clinical data, templates."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import jinja2
import orjson
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from carelens.record.ask import Answer, search
from carelens.server.auditor import GroupAuditor
from carelens.server.auth import Principal, Problem
from carelens.server.data import BundleData, ClinicalData, PatientRow, SummaryUnavailable
from carelens.server.items import ReviewItem, finding_items, image_items, pgx_items, summary_items, summary_model
from carelens.server.lake_data import LakeData
from carelens.server.page_cache import PageCache
from carelens.server.pgx_attention import medication_pgx_items
from carelens.server.registry import model_name, site_status
from carelens.server.settings import ServerSettings
from carelens.store.appdb import audit, auditkeys, begin_write, get_engine
from carelens.store.permissions import store_warning

TEMPLATES = Path(__file__).with_name("templates")
log = logging.getLogger("carelens.server")


def default_data(settings: ServerSettings) -> ClinicalData:
    """The clinical data of a store: its lake and ``carelens run``'s outputs; a store without a lake
    but with a folder of FHIR bundles (``<store>/fhir``, outputs under ``<store>/outputs``) is read
    from that folder."""
    if not (settings.store / "lake").is_dir() and (settings.store / "fhir").is_dir():
        return BundleData(settings.store / "fhir", settings.store / "outputs", settings.summarizer)
    return LakeData(settings.store)


def templates() -> Jinja2Templates:
    """The page templates, compiled once at start-up (no per-render file checks: restart to change them)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=jinja2.select_autoescape(), auto_reload=False
    )
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    return Jinja2Templates(env=env)


class PatientView:
    """Everything a patient page shows, computed once per request."""

    def __init__(self, data: ClinicalData, patient: PatientRow, cache: dict[tuple[str, str], Any]) -> None:
        self.patient = patient
        self.input_hash = data.input_hash(patient.id)
        self.summary: dict[str, Any] | None = None
        self.summary_error: str | None = None
        try:
            self.summary = data.summary(patient.id)
        except SummaryUnavailable as err:
            self.summary_error = str(err)
        self.images = data.images(patient.id)
        missing = getattr(data, "missing", None)  # the run's failed steps (lake data only)
        self.missing: list[dict[str, str]] = missing(patient.id) if missing is not None else []
        self.pgx = data.pgx(patient.id)
        self.findings = data.findings(patient.id)
        key = (patient.id, self.input_hash)
        if self.summary is not None and key not in cache:
            cache[key] = summary_items(self.summary)
        self.items: list[ReviewItem] = [
            *(cache.get(key, []) if self.summary else []),
            *image_items(self.images),
            *medication_pgx_items(self.pgx, self.summary),
            *pgx_items(self.pgx),
            *finding_items(self.findings),
        ]

    @property
    def model_version(self) -> str:
        models = sorted({f"{i.model_id}@{i.model_version}" for i in self.items})
        if self.summary and not models:
            models = ["{}@{}".format(*summary_model(self.summary))]
        return ",".join(models)

    def item(self, key: str) -> ReviewItem:
        for item in self.items:
            if item.key == key:
                return item
        raise Problem(400, "this item is not on the patient's current page (it may have changed); reload")


class Context:
    """Settings, database and data of one app instance."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        auditkeys.bind_store(settings.db_url, settings.store)
        self.engine = get_engine(settings.db_url)
        keys = audit.keys_for(self.engine)
        assert keys is not None
        self.form_key = keys.derive("web-forms")
        warning = store_warning(settings.store)
        if warning:
            log.warning("%s", warning)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.data: ClinicalData = settings.data if settings.data is not None else default_data(settings)
        self.templates = templates()
        self.local_db = self.engine.dialect.name == "sqlite"  # reads and audit batches run on the event loop
        self._write_lock = threading.Lock() if self.local_db else None
        self._qmark = self.engine.dialect.paramstyle == "qmark"
        self._items: dict[tuple[str, str], list[ReviewItem]] = {}
        self._summary_bytes: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.pages = PageCache()
        self.auditor = GroupAuditor(self.writing, inline=self.local_db, keys=keys)  # found once: it reads the settings

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in a write transaction (``BEGIN IMMEDIATE`` on SQLite, so that other server
        processes wait their turn instead of failing). On SQLite the writers of this process also
        take turns here, rather than spinning on the database lock."""
        with self._write_lock or nullcontext(), self.Session() as s, s.begin():
            begin_write(s)
            yield s

    def patient(self, pid: str) -> PatientRow:
        """The patient or 404 (the message never repeats the id)."""
        row = self.data.patient(pid)
        if row is None:
            raise Problem(404, "no patient with this id")
        return row

    def view(self, pid: str) -> PatientView:
        """The patient page's content; items are labelled with their model card's name."""
        view = PatientView(self.data, self.patient(pid), self._items)
        for item in view.items:
            if not item.model_label:
                item.model_label = model_name(self.settings.store, item.model_id) or ""
            if item.kind == "image":  # a read from a model without a passed local validation here is marked
                status = site_status(self.settings.store, item.model_id, self.settings.site)
                item.detail = {**item.detail, "site_validation": status, "site_mark": status["mark"]}
        return view

    def ask(self, pid: str, question: str, top: int = 5) -> Answer:
        """Ask the patient's whole record a question: cited passages, or "nothing relevant found"
        (``carelens.record.ask``; the encoder loads on the first question of the process)."""
        self.patient(pid)
        return search(self.data.record(pid), question, top)

    async def summary_json_async(self, pid: str) -> tuple[bytes, str, str]:
        """``summary_json`` from async code: from memory once computed, else in a worker thread."""
        self.patient(pid)
        input_hash = self.data.input_hash(pid)
        cached = self._summary_bytes.get((pid, input_hash))
        if cached is None:
            return await run_in_threadpool(self.summary_json, pid)
        return cached[0], cached[1], input_hash

    def summary_json(self, pid: str) -> tuple[bytes, str, str]:
        """The summary as JSON bytes, its model and input hash (serialised once per input hash)."""
        self.patient(pid)
        input_hash = self.data.input_hash(pid)
        cached = self._summary_bytes.get((pid, input_hash))
        if cached is None:
            summary = self.data.summary(pid)
            cached = (orjson.dumps(summary), "{}@{}".format(*summary_model(summary)))
            self._summary_bytes[(pid, input_hash)] = cached
        return cached[0], cached[1], input_hash

    def fetch_one_now(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The first row of a plain SQL read (``?`` placeholders), on a pooled DB-API connection."""
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute(sql if self._qmark else sql.replace("?", "%s"), params)
            row = cur.fetchone()
            cur.close()
        finally:
            conn.close()
        return tuple(row) if row is not None else None

    async def fetch_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """``fetch_one_now`` from async code: inline on SQLite (a local read of microseconds),
        in a worker thread for a database across the network."""
        if self.local_db:
            return self.fetch_one_now(sql, params)
        return await run_in_threadpool(self.fetch_one_now, sql, params)

    def record(
        self,
        who: Principal,
        action: str,
        patient_id: str | None = None,
        model_version: str | None = None,
        input_hash: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one audit row now (sync routes); returns the committed row."""
        return self.auditor.record((who.username, action, patient_id, model_version, input_hash, detail))

    async def arecord(
        self,
        who: Principal,
        action: str,
        patient_id: str | None = None,
        model_version: str | None = None,
        input_hash: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``record`` for async routes, group-committed with the rows of concurrent requests."""
        return await self.auditor.arecord((who.username, action, patient_id, model_version, input_hash, detail))
