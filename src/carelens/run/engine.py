"""``carelens run``: plan the patients whose inputs changed, process them in batches on one process
or on Ray, commit each batch's outputs, and report."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from carelens.core.errors import UsageError
from carelens.core.settings import load_settings
from carelens.run.inputs import PatientInput, plan
from carelens.run.outputs import OutputStore
from carelens.run.worker import PatientResult, RunConfig, Worker, model_versions
from carelens.store import Lake

ENGINES = ("local", "ray")
IN_FLIGHT = 2  # batches queued on each Ray actor
COMPACT_AFTER = 64  # committed batches before a run merges them


@dataclass
class RunReport:
    """What a run did (the ``carelens run --format json`` object)."""

    patients: int = 0
    processed: int = 0
    unchanged: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    outputs_digest: str = ""
    engine: str = "local"
    quarantined: int = 0  # patients whose current outputs have a failed step (this run or before)
    remaining: int = 0  # due patients left for a later run (``limit``)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def say(message: str) -> None:
    print(f"run: {message}", file=sys.stderr, flush=True)


def run(
    store: Path,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    clinvar: Path | None = None,
    secret_file: Path | None = None,
    batch_size: int = 8,
    retry_failed: bool = False,
    compact: bool = False,
    limit: int | None = None,
) -> RunReport:
    """Process every patient of the store's lake whose inputs or models changed since their last
    outputs; see the package doc. ``secret_file``: the site key for the research copy (default
    ``CARELENS_SECRET_FILE``; without one the research copy is not made). ``retry_failed``: also
    process the patients whose last outputs have a failed step (after fixing what failed).
    ``compact``: merge the committed batches into one part per table afterwards (done anyway
    once there are more than :data:`COMPACT_AFTER`); the outputs and their digest do not change.
    ``limit``: process at most this many of the due patients (the rest stay due: ``remaining``)."""
    from carelens.run.models import registered_image_model

    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: use local or ray")
    if limit is not None and limit < 0:
        raise UsageError("the limit must be 0 or more")
    if clinvar is not None and not clinvar.is_file():
        raise UsageError("--clinvar: no such file")
    secret = secret_file or load_settings().secret_file
    if secret is not None and not secret.is_file():
        raise UsageError("the site secret file does not exist")
    store = Path(store)
    lake = Lake(store)
    if lake.is_empty():
        raise UsageError("the lake is empty: run carelens ingest first")
    config = RunConfig(store=store, clinvar=clinvar, secret_file=secret, image_model=registered_image_model(store))
    outputs = OutputStore(store)
    report = RunReport(engine=engine)
    closing: threading.Thread | None = None
    plan_file = outputs.root / "_plan.parquet"
    with outputs.writer() as writer, ThreadPoolExecutor(1) as planner:
        state = outputs.current_sql("state", "patient_id, input_hash, status")
        planned = planner.submit(plan, lake, model_versions(config), state, plan_file, retry_failed)
        pool = _RayPool(config, ray_address, workers) if engine == "ray" else None  # starts while the lake is planned
        try:
            the_plan = planned.result()
            todo = the_plan.due if limit is None else min(limit, the_plan.due)
            report.patients, report.unchanged = the_plan.patients, the_plan.patients - the_plan.due
            report.remaining = the_plan.due - todo
            say(f"{the_plan.patients} patients, {todo} to process, engine {engine}")
            batches = the_plan.batches(batch_size, limit)  # read as the workers take them
            for batch in pool.map(batches) if pool else _local(config, batches):
                writer.commit(*_tables(batch))
                report.processed += len(batch)
                report.failed += [{"patient": r.patient_id, "reason": "; ".join(r.failures)}
                                  for r in batch if r.failures]  # fmt: skip
                say(f"{report.processed}/{todo} patients done")
        finally:
            plan_file.unlink(missing_ok=True)
            if pool:
                closing = pool.close()
        if compact or len(outputs.manifests()) > COMPACT_AFTER:
            say(f"compacted {outputs.compact()} batches")
    report.quarantined = outputs.quarantined()
    report.failed.sort(key=lambda f: f["patient"])
    report.outputs_digest = outputs.digest()
    if closing:
        closing.join()
    return report


def _local(config: RunConfig, batches: Iterable[list[PatientInput]]) -> Iterator[list[PatientResult]]:
    worker = None  # loaded with the first batch: none when nothing is due
    for batch in batches:
        worker = worker or Worker(config)
        yield worker.process(batch)


class _RayPool:
    """Ray actors (each loads the models once), started as soon as the run knows its config: they
    load their models while the driver plans. :data:`IN_FLIGHT` batches are queued on each so that
    none waits while the driver commits; results come back as they finish."""

    def __init__(self, config: RunConfig, address: str | None, workers: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("--engine ray needs Ray: pip install 'carelens[ray]'") from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            start_ray(ray, address, workers)
        count = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(Worker)
        self.actors: list[Any] = [actor.remote(config) for _ in range(count)]

    def map(self, batches: Iterable[list[PatientInput]]) -> Iterator[list[PatientResult]]:
        """The batches' results; a batch is taken from ``batches`` only when an actor has room for it."""
        queue = iter(batches)
        pending: dict[Any, Any] = {}
        for a in self.actors:
            for batch in islice(queue, IN_FLIGHT):
                pending[a.process.remote(batch)] = a
        while pending:
            (done,), _ = self.ray.wait(list(pending), num_returns=1)
            a = pending.pop(done)
            for batch in islice(queue, 1):
                pending[a.process.remote(batch)] = a
            yield self.ray.get(done)

    def close(self) -> threading.Thread | None:
        """Kill the actors, then stop an embedded Ray in a thread: Ray's shut-down mostly waits for
        its processes to exit, so the run compacts and digests meanwhile and joins it at the end."""
        for a in self.actors:
            self.ray.kill(a)
        if not self.started_here:
            return None
        closing = threading.Thread(target=self.ray.shutdown)
        closing.start()
        return closing


def start_ray(ray: Any, address: str | None, workers: int | None) -> None:
    """Join the cluster at ``address`` (its workers get this process's source path), or start an embedded
    Ray on this machine whose workers inherit this process's environment and priority: Ray lowers its
    workers' by 15 nice levels by default, so that on a machine with other work they would wait for it
    (a run beside a test suite took its first batch 5x later than one process)."""
    if address:
        env = {"env_vars": {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}}
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, _system_config={"worker_niceness": 0})  # fmt: skip


def _tables(batch: list[PatientResult]) -> tuple[dict[str, list[tuple[Any, ...]]], list[dict[str, Any]]]:
    """The batch's rows per table and its manifest entries."""
    rows: dict[str, list[tuple[Any, ...]]] = {"outputs": [], "research": [], "patient_index": []}
    entries = []
    for r in batch:
        rows["outputs"] += r.rows
        rows["research"] += r.research
        rows["patient_index"] += [r.index] if r.index else []
        status = "failed" if r.failures else "done"
        reason = "; ".join(r.failures) or None
        entries.append({"patient": r.patient_id, "input_hash": r.input_hash, "status": status, "reason": reason})
    return rows, entries


def report_json(report: RunReport) -> bytes:
    return orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2)


def iter_ids(items: Iterable[PatientInput]) -> list[str]:
    return [p.patient_id for p in items]
