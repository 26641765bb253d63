"""The model registry: immutable, content-addressed entries under ``<store>/models/<id>/``.

An entry is written once (``entry.json`` + ``weights.pt``, read-only) and never changed; what is
learnt later (a federated validation, a local re-check) is appended as a numbered record under
``records/``, each holding the hash of the one before, so the history cannot be rewritten quietly.
The id is the hash of the weights and the metadata, so registering the same model twice gives
the same entry.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from carelens import __version__
from carelens.core.config import load_settings
from carelens.core.errors import InputError, UsageError
from carelens.models.hti1 import hti1_attributes

WEIGHTS = "weights.pt"
ENTRY = "entry.json"
RECORDS = "records"
PLOTS = ("roc.png", "reliability.png")  # an imaging package's validation plots, shown on the card page


class Metric(BaseModel):
    """One performance measure with its 95% confidence interval (when known)."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None


class ModelEntry(BaseModel):
    """What the registry knows about one trained model (immutable once written)."""

    id: str
    name: str
    version: str
    arch: str
    task: str = "binary"
    labels: list[str] = Field(default_factory=list)
    created_at: str
    code_version: dict[str, str | None]
    lineage: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    subgroups: list[dict[str, Any]] = Field(default_factory=list)
    training: dict[str, Any] = Field(default_factory=dict)
    card: dict[str, Any] = Field(default_factory=dict)
    package: dict[str, Any] = Field(default_factory=dict)


def code_version() -> dict[str, str | None]:
    """The carelens version and, when the source is a git checkout, its commit."""
    commit = None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0:
            commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"carelens": __version__, "git_commit": commit}


def normalise_metric(value: Any) -> Metric | None:
    """A metric from the shapes packages use: a number, ``{"value", "ci": [lo, hi]}``,
    ``{"value", "ci_low", "ci_high"}`` or ``[value, lo, hi]``; None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Metric(value=float(value))
    if isinstance(value, list | tuple) and len(value) == 3 and all(isinstance(v, int | float) for v in value):
        return Metric(value=float(value[0]), ci_low=float(value[1]), ci_high=float(value[2]))
    if isinstance(value, dict):
        point = value.get("value", value.get("estimate", value.get("mean")))
        if not isinstance(point, int | float) or isinstance(point, bool):
            return None
        ci = value.get("ci") or value.get("ci95")
        low = value.get("ci_low", value.get("lower", ci[0] if isinstance(ci, list | tuple) and len(ci) == 2 else None))
        high = value.get(
            "ci_high", value.get("upper", ci[1] if isinstance(ci, list | tuple) and len(ci) == 2 else None)
        )
        n = value.get("n")
        return Metric(
            value=float(point),
            ci_low=float(low) if isinstance(low, int | float) else None,
            ci_high=float(high) if isinstance(high, int | float) else None,
            n=int(n) if isinstance(n, int) else None,
        )
    return None


def flatten_metrics(raw: dict[str, Any]) -> dict[str, Metric]:
    """Metrics keyed by name; a split block like imaging's ``{"validation": {"auc": .., "n": ..,
    "ci": {"auc": [lo, hi]}}}`` is flattened (first split unprefixed, later ones ``split.name``)."""
    out: dict[str, Metric] = {}
    for name, value in raw.items():
        metric = normalise_metric(value)
        if metric is not None:
            out[str(name)] = metric
            continue
        if not isinstance(value, dict):
            continue
        cis: dict[str, Any] = value["ci"] if isinstance(value.get("ci"), dict) else {}
        n = value.get("n") if isinstance(value.get("n"), int) else None
        prefix = "" if not out else f"{name}."
        for key, point in value.items():
            if key in ("n", "ci") or isinstance(point, bool) or not isinstance(point, int | float):
                continue
            raw_ci = cis.get(key)
            pair: tuple[Any, Any] = (
                (raw_ci[0], raw_ci[1]) if isinstance(raw_ci, list | tuple) and len(raw_ci) == 2 else (None, None)
            )
            out[f"{prefix}{key}"] = Metric(
                value=float(point),
                ci_low=float(pair[0]) if isinstance(pair[0], int | float) else None,
                ci_high=float(pair[1]) if isinstance(pair[1], int | float) else None,
                n=n,
            )
    return out


def _lineage_of(training: dict[str, Any]) -> dict[str, Any]:
    """Lineage from an imaging package's ``training`` block (one local site), or nothing."""
    if not training.get("counts"):
        return {}
    site = {"site": "local", "data": training.get("data"), "counts": training.get("counts")}
    if training.get("class_counts"):
        site["label_counts"] = training["class_counts"]
    return {"sites": [site]}


def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """The model registry of one store (``Registry()`` uses the configured store)."""

    def __init__(self, store: str | Path | None = None) -> None:
        self.store = Path(store) if store is not None else load_settings().store
        self.root = self.store / "models"

    # writing -------------------------------------------------------------------------------
    def register(self, model_dir: str | Path) -> ModelEntry:
        """Register an imaging model package (``model.json`` + ``weights.pt``); idempotent."""
        folder = Path(model_dir)
        meta_path, weights_path = folder / "model.json", folder / WEIGHTS
        if not meta_path.is_file() or not weights_path.is_file():
            raise InputError(f"{folder.name}: not a model package (needs model.json and {WEIGHTS})")
        try:
            meta = orjson.loads(meta_path.read_bytes())
        except orjson.JSONDecodeError:
            raise InputError(f"{folder.name}/model.json: not valid JSON") from None
        if not isinstance(meta, dict):
            raise InputError(f"{folder.name}/model.json: expected a JSON object")
        plots = {name: (folder / name).read_bytes() for name in PLOTS if (folder / name).is_file()}
        return self.register_weights(weights_path.read_bytes(), meta, plots)

    def register_weights(
        self, weights: bytes, meta: dict[str, Any], plots: dict[str, bytes] | None = None
    ) -> ModelEntry:
        """Register weights (``torch.save`` bytes) with their metadata; returns the (existing) entry.

        ``meta`` keys used: name, version, arch, task, labels, metrics, subgroups, lineage,
        training, card, trained_at; the rest is kept under ``package``.
        """
        known = {"id", "name", "version", "arch", "task", "labels", "label_names", "metrics", "subgroups"}
        known |= {"lineage", "training_data", "training", "card", "trained_at", "created_at", "code_version"}
        metrics = flatten_metrics(meta.get("metrics") or {})
        body: dict[str, Any] = {
            "name": str(meta.get("name") or meta.get("id") or "model"),
            "version": str(meta.get("version") or "1"),
            "arch": str(meta.get("arch") or "unknown"),
            "task": str(meta.get("task") or "binary"),
            "labels": [str(x) for x in (meta.get("labels") or meta.get("label_names") or [])],
            "created_at": str(meta.get("trained_at") or meta.get("created_at") or _now()),
            "code_version": meta.get("code_version") or code_version(),
            "lineage": meta.get("lineage") or meta.get("training_data") or _lineage_of(meta.get("training") or {}),
            "metrics": {k: m.model_dump() for k, m in metrics.items()},
            "subgroups": list(meta.get("subgroups") or []),
            "training": meta.get("training") or {},
            "card": meta.get("card") or {},
            "package": {k: v for k, v in meta.items() if k not in known},
        }
        digest = hashlib.sha256()
        digest.update(hashlib.sha256(weights).digest())
        digest.update(_canonical({k: v for k, v in body.items() if k != "created_at"}))
        model_id = digest.hexdigest()[:16]
        entry = ModelEntry(id=model_id, **body)
        target = self.root / model_id
        if (target / ENTRY).is_file():
            return self.entry(model_id)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        try:
            (tmp / WEIGHTS).write_bytes(weights)
            (tmp / ENTRY).write_bytes(orjson.dumps(entry.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
            (tmp / RECORDS).mkdir()
            for name, png in (plots or {}).items():
                (tmp / name).write_bytes(png)
            for name in (WEIGHTS, ENTRY):
                os.chmod(tmp / name, 0o444)
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / ENTRY).is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.entry(model_id)

    def append_record(self, ref: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
        """Append a versioned record (``kind``: validation, note, ...) to an entry; returns it."""
        model_id = self.resolve(ref)
        folder = self.root / model_id / RECORDS
        folder.mkdir(exist_ok=True)
        for _attempt in range(100):
            existing = self.records(model_id)
            seq = len(existing) + 1
            prev = existing[-1]["sha256"] if existing else None
            record = {"seq": seq, "kind": kind, "created_at": _now(), "prev_sha256": prev, "content": content}
            record["sha256"] = hashlib.sha256(_canonical(record)).hexdigest()
            path = folder / f"{seq:04d}-{kind}.json"
            try:
                with open(path, "xb") as fh:
                    fh.write(orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
            except FileExistsError:
                continue
            os.chmod(path, 0o444)
            return record
        raise InputError("could not append a record: too many concurrent writers")

    # reading -------------------------------------------------------------------------------
    def next_version(self, name: str) -> str:
        """The version a new entry named ``name`` gets: one past its highest numeric version."""
        versions = [e.version for e in map(self.entry, self.ids()) if e.name == name]
        return str(max((int(v) for v in versions if v.isdecimal()), default=0) + 1)

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / ENTRY).is_file())

    def resolve(self, ref: str) -> str:
        """An entry id from an id, a unique id prefix, or a model name (its newest entry)."""
        ids = self.ids()
        if ref in ids:
            return ref
        by_prefix = [i for i in ids if i.startswith(ref)] if len(ref) >= 4 else []
        if len(by_prefix) == 1:
            return by_prefix[0]
        if len(by_prefix) > 1:
            raise UsageError(f"model id prefix {ref!r} is ambiguous ({len(by_prefix)} entries): give more characters")
        named = [e for e in (self.entry(i) for i in ids) if e.name == ref]
        if named:
            return max(named, key=lambda e: e.created_at).id
        raise UsageError(f"no model {ref!r} in the registry ({len(ids)} entries): see 'carelens models list'")

    def entry(self, ref: str) -> ModelEntry:
        model_id = ref if (self.root / ref / ENTRY).is_file() else self.resolve(ref)
        return ModelEntry.model_validate(orjson.loads((self.root / model_id / ENTRY).read_bytes()))

    def weights_path(self, ref: str) -> Path:
        return self.root / self.resolve(ref) / WEIGHTS

    def records(self, ref: str) -> list[dict[str, Any]]:
        folder = self.root / ref / RECORDS
        if not folder.is_dir():
            return []
        return [orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))]

    def verify(self, ref: str) -> list[str]:
        """Problems found re-checking an entry: weights or records changed after writing."""
        model_id = self.resolve(ref)
        entry = self.entry(model_id)
        problems = []
        body = entry.model_dump(mode="json")
        body.pop("id")
        body.pop("created_at")
        digest = hashlib.sha256()
        digest.update(hashlib.sha256((self.root / model_id / WEIGHTS).read_bytes()).digest())
        digest.update(_canonical(body))
        if digest.hexdigest()[:16] != model_id:
            problems.append("entry or weights do not match the entry id")
        prev = None
        for record in self.records(model_id):
            claimed = record.get("sha256")
            check = {k: v for k, v in record.items() if k != "sha256"}
            if hashlib.sha256(_canonical(check)).hexdigest() != claimed or record.get("prev_sha256") != prev:
                problems.append(f"record {record.get('seq')} was changed after it was written")
            prev = claimed
        return problems

    def site_status(self, ref: str, site: str | None) -> dict[str, Any]:
        """Whether the model is validated at ``site`` (see :func:`site_status`)."""
        return site_status(self.records(self.resolve(ref)), site)

    def summary(self, ref: str) -> dict[str, Any]:
        """One line of ``models list``."""
        entry = self.entry(ref)
        return {
            "id": entry.id,
            "name": entry.name,
            "version": entry.version,
            "arch": entry.arch,
            "created_at": entry.created_at,
            "source": entry.training.get("mode", "local"),
            "sites": [s.get("site") for s in entry.lineage.get("sites", []) if isinstance(s, dict)],
            "metrics": {k: round(m.value, 4) for k, m in entry.metrics.items()},
            "records": len(self.records(entry.id)),
            "status": str(entry.package.get("status", "ok")),
        }

    def list(self) -> list[dict[str, Any]]:
        return sorted((self.summary(i) for i in self.ids()), key=lambda s: s["created_at"], reverse=True)

    def export(self, ref: str, monitoring: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The full entry as plain data: metadata, records, and the 31 HTI-1 attributes. ``monitoring``: live
        per-site feedback summaries (``carelens.models.monitoring``; default: the newest monitoring records)."""
        from carelens.models.monitoring import monitoring_attributes, newest_per_site

        entry = self.entry(ref)
        records = self.records(entry.id)
        derived = derived_attributes(entry, records)
        derived.update(monitoring_attributes(newest_per_site(records) if monitoring is None else list(monitoring)))
        hti1, missing = hti1_attributes(entry.card, derived)
        data = entry.model_dump(mode="json")
        data["records"] = records
        data["hti1"] = hti1
        data["missing"] = missing
        data["weights_sha256"] = hashlib.sha256(self.weights_path(entry.id).read_bytes()).hexdigest()
        folder = self.root / entry.id
        data["plots"] = {
            name.removesuffix(".png"): base64.b64encode((folder / name).read_bytes()).decode()
            for name in PLOTS
            if (folder / name).is_file()
        }
        return data


NOT_VALIDATED = "not validated at this site"


def site_status(records: list[dict[str, Any]], site: str | None) -> dict[str, Any]:
    """``{"site", "validated", "mark", "reason", "record"}``: a model is validated at ``site`` when the
    newest validation record naming that site says it passed (``image adapt``, ``image validate``, a
    federated validation); until then its reads carry ``mark`` "not validated at this site"."""
    if not site:
        reason = "this workspace names no site (set CARELENS_SITE), so no local validation can apply"
        return {"site": None, "validated": False, "mark": NOT_VALIDATED, "record": None, "reason": reason}
    for record in reversed(records):
        if record.get("kind") != "validation":
            continue
        for entry in record.get("content", {}).get("sites", []):
            if entry.get("site") != site or "refused" in entry:
                continue
            passed = entry.get("passed") is True
            failed = "; ".join(entry.get("failed") or []) or "no verdict recorded"
            return {
                "site": site,
                "validated": passed,
                "mark": None if passed else NOT_VALIDATED,
                "record": record.get("seq"),
                "reason": f"local validation passed (record {record.get('seq')}, {record.get('created_at')})"
                if passed
                else f"the newest local validation here did not pass: {failed}",
            }
    reason = f"no local validation at {site} yet (carelens image adapt or image validate)"
    return {"site": site, "validated": False, "mark": NOT_VALIDATED, "record": None, "reason": reason}


def _metric_text(metrics: dict[str, Any]) -> str:
    parts = []
    for name, m in metrics.items():
        if not isinstance(m, dict) or not isinstance(m.get("value"), int | float):
            continue
        text = f"{name} {m['value']:.3f}"
        if m.get("ci_low") is not None and m.get("ci_high") is not None:
            text += f" (95% CI {m['ci_low']:.3f}-{m['ci_high']:.3f})"
        parts.append(text)
    return "; ".join(parts)


def _subgroup_text(rows: list[dict[str, Any]]) -> str:
    parts = []
    for row in rows:
        label = f"{row['site']}: " if row.get("site") else ""
        label += f"{row.get('group')}={row.get('value')}"
        if row.get("suppressed"):
            parts.append(f"{label}: suppressed (small cell)")
        elif isinstance(row.get("auc"), int | float):
            parts.append(f"{label}: AUC {row['auc']:.3f} (n={row.get('n')})")
    return "; ".join(parts)


def _fairness_text(site: dict[str, Any]) -> str:
    if site.get("subgroups"):
        return _subgroup_text(site["subgroups"])
    return "not measured: the site's data carry no subgroup columns"


def derived_attributes(entry: ModelEntry, records: list[dict[str, Any]]) -> dict[str, Any]:
    """HTI-1 attribute values that are facts held in the entry (measured, not claimed)."""
    derived: dict[str, Any] = {}
    if entry.labels:
        derived["output_type"] = f"{entry.task} classification"
        derived["output_value"] = f"probability of each class ({', '.join(entry.labels)}) for one image"
    if entry.metrics:
        derived["internal_validity"] = _metric_text({k: v.model_dump() for k, v in entry.metrics.items()})
    derived["internal_fairness"] = (
        _subgroup_text(entry.subgroups)
        if entry.subgroups
        else "not measured: the training site's evaluation data carry no subgroup columns (sex, age, ...)"
    )
    if entry.lineage.get("cohort_definition"):
        derived["inclusion_exclusion_criteria"] = entry.lineage["cohort_definition"]
    lineage_sites = [s for s in entry.lineage.get("sites", []) if isinstance(s, dict) and s.get("counts")]
    if lineage_sites:
        derived["training_data_relevance"] = (
            "Trained on "
            + "; ".join(
                f"{s.get('site')}: {', '.join(f'{k} {v}' for k, v in s['counts'].items())} images"
                for s in lineage_sites
            )
            + ". Relevant to sites whose images are like these; elsewhere only after a local validation has passed."
        )
    trained_sites = {s.get("site") for s in entry.lineage.get("sites", []) if isinstance(s, dict)}
    validations = [r["content"] for r in records if r.get("kind") == "validation"]
    if validations:
        latest = validations[-1]
        sites = latest.get("sites", [])
        external = [s for s in sites if s.get("site") not in trained_sites and not s.get("refused")]
        local = [s for s in sites if not s.get("refused")]
        if external:
            derived["external_validity"] = "; ".join(
                f"{s['site']}: {_metric_text(s.get('metrics', {}))}" for s in external
            )
            derived["external_fairness"] = "; ".join(f"{s['site']}: {_fairness_text(s)}" for s in external)
            derived["external_demographic_representativeness"] = "; ".join(
                f"{s['site']}: {s.get('demographics') or 'no demographic columns in the site data'}" for s in external
            )
            derived["external_validation_data_source"] = (
                f"own data of partner sites not used in training: {', '.join(s['site'] for s in external)}"
            )
            derived["external_validation_party"] = ", ".join(s["site"] for s in external)
            derived["external_validation_process"] = latest.get("process")
        failed = [s for s in sites if s.get("passed") is False]
        if failed:
            derived["known_risks_and_limitations"] = (
                "Did not pass its validation at "
                + "; ".join(f"{s['site']} ({'; '.join(s.get('failed') or [])})" for s in failed)
                + ": its reads there are marked 'not validated at this site'."
            )
        if local:
            derived["local_validity"] = "; ".join(f"{s['site']}: {_metric_text(s.get('metrics', {}))}" for s in local)
            derived["local_fairness"] = "; ".join(f"{s['site']}: {_fairness_text(s)}" for s in local)
    return derived
