"""What may leave a site, enforced in code at the site.

Two Flower mods wrap the site's ``ClientApp``:

* ``payload_guard`` (inside SecAgg+): the training result may hold only weight arrays of exactly
  the shapes the hub sent (finite floats), the example count, and metrics whose keys are on a
  fixed list of aggregate measures (numbers) plus the site's own name;
* ``outbound_guard`` (outermost): every message that leaves is checked again at the protocol
  level (the result records above, or Flower's SecAgg+ records: public keys, encrypted shares,
  masked integer vectors of the expected shapes); exceptions become an error reply whose reason
  names the error type only. A refused message is replaced by an error reply and logged. Each
  outgoing message's size is logged, and with ``capture`` its serialised bytes are kept, so a
  site (or a test) can audit everything that left.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from carelens.core.errors import CarelensError
from carelens.network.sitedata import SUBGROUP_COLUMNS

log = logging.getLogger("carelens.network.guard")

_MEASURES = "auc|ece|sensitivity|specificity|accuracy"
_VOCAB = "|".join(re.escape(v) for values in SUBGROUP_COLUMNS.values() for v in values)
_GROUPS = "|".join(SUBGROUP_COLUMNS)
METRIC_KEY = re.compile(
    rf"^(loss|n|n_pos|patients|train_seconds|epochs|n_(train|val|test)(_pos)?|({_MEASURES})(_ci_low|_ci_high)?"
    rf"|sg\.({_GROUPS})\.({_VOCAB})\.(n|suppressed|{_MEASURES}))$"
)
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
RESULT_RECORDS = {
    "fitres.metrics",
    "fitres.num_examples",
    "fitres.parameters",
    "fitres.status",
    "evaluateres.loss",
    "evaluateres.num_examples",
    "evaluateres.metrics",
    "evaluateres.status",
}
SECAGG_RECORD = "secaggplus_configs"
SECAGG_KEYS = {"pk1": bytes, "pk2": bytes, "dsts": int, "ctxts": bytes, "masked_params": bytes, "nids": int}
SECAGG_KEYS["shares"] = bytes
STATUS_MESSAGES = {"", "Success"}


class GuardRefusal(CarelensError):
    """An outgoing message broke the site's release rules (reason names the rule, not the data)."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def _incoming_shapes(msg: Any) -> list[tuple[int, ...]] | None:
    for name in ("fitins.parameters", "evaluateins.parameters"):
        if name in msg.content.array_records:
            return [tuple(a.numpy().shape) for a in msg.content.array_records[name].values()]
    return None


def check_result(content: Any, site: str, shapes: list[tuple[int, ...]] | None, masked: bool = False) -> None:
    """Raise ``GuardRefusal`` unless ``content`` (a RecordDict) is a permitted result."""
    names = set(content.array_records) | set(content.metric_records) | set(content.config_records)
    extra = names - RESULT_RECORDS - ({SECAGG_RECORD} if masked else set())
    if extra:
        raise GuardRefusal(f"record(s) not allowed to leave the site: {', '.join(sorted(extra))[:80]}")
    for name, record in content.array_records.items():
        arrays = list(record.values())
        if masked:
            if arrays:
                raise GuardRefusal(f"{name}: plain weights must not leave under secure aggregation")
            continue
        if shapes is None:
            raise GuardRefusal(f"{name}: weights sent without weights received")
        got = [tuple(a.numpy().shape) for a in arrays]
        if got != shapes:
            raise GuardRefusal(f"{name}: {len(got)} arrays whose shapes differ from the {len(shapes)} received")
        for a in arrays:
            arr = a.numpy()
            if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
                raise GuardRefusal(f"{name}: weights must be finite floating-point numbers")
    for name, record in content.metric_records.items():
        for key, value in record.items():
            if key not in ("num_examples", "loss") or not _number(value):
                raise GuardRefusal(f"{name}: only a numeric num_examples/loss may leave")
    for name, record in content.config_records.items():
        if name == SECAGG_RECORD:
            _check_secagg(record, shapes)
        elif name.endswith(".status"):
            if set(record) - {"code", "message"} or record.get("message", "") not in STATUS_MESSAGES:
                raise GuardRefusal(f"{name}: status may carry only a code")
        else:
            _check_metrics(name, record, site)


def _check_metrics(name: str, record: Any, site: str) -> None:
    for key, value in record.items():
        if key == "site":
            if value != site:
                raise GuardRefusal(f"{name}: 'site' may only name this site")
            continue
        if not METRIC_KEY.match(key):
            raise GuardRefusal(f"{name}: metric key not on the release list ({len(key)} characters)")
        if not _number(value):
            raise GuardRefusal(f"{name}: metric {key} is not a finite number")


def _check_secagg(record: Any, shapes: list[tuple[int, ...]] | None) -> None:
    for key, value in record.items():
        kind = SECAGG_KEYS.get(key)
        items = value if isinstance(value, list) else [value]
        if kind is None or not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
            raise GuardRefusal(f"secure aggregation record: field {key[:20]!r} not allowed")
    if "masked_params" in record:
        from flwr.common import bytes_to_ndarray

        vectors = [bytes_to_ndarray(b) for b in record["masked_params"]]
        # SecAgg+ prepends one scalar-like factor array to the masked weights
        got = [tuple(v.shape) for v in vectors[1:]]
        if shapes is None or got != shapes or any(not np.issubdtype(v.dtype, np.integer) for v in vectors):
            raise GuardRefusal("masked weights do not have the shapes of the weights received")


def safe_reason(err: BaseException) -> str:
    """A reason that can leave the site: carelens' own one-line reasons (written PHI-free), or
    just the error type for anything else (its message could quote data)."""
    if isinstance(err, CarelensError):
        return err.reason[:200]
    return f"site task failed ({type(err).__name__})"


class OutboundLog:
    """Sizes (and with ``capture``, the serialised bytes) of every message that left the site."""

    def __init__(self, folder: Path | None, capture: Path | None) -> None:
        self.folder, self.capture = folder, capture
        self.count = 0

    def record(self, site: str, msg: Any, refused: str | None) -> None:
        from flwr.common.serde import recorddict_to_proto

        payload = b"" if msg.has_error() else recorddict_to_proto(msg.content).SerializeToString()
        error = msg.error.reason if msg.has_error() else None
        entry = {
            "time": time.time(),
            "site": site,
            "type": msg.metadata.message_type,
            "bytes": len(payload) + len(error or ""),
            "refused": refused,
            "error": error,
        }
        self.count += 1
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / "outbound.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
        if self.capture is not None:
            self.capture.mkdir(parents=True, exist_ok=True)
            stamp = f"{time.time_ns()}-{msg.metadata.message_type}"
            (self.capture / f"{stamp}.bin").write_bytes(payload + (error or "").encode())


def payload_guard(site_of: Callable[[Any], str]) -> Callable[..., Any]:
    """The inner mod: checks plain results before SecAgg+ masks them."""

    def mod(msg: Any, ctxt: Any, call_next: Callable[..., Any]) -> Any:
        shapes = _incoming_shapes(msg)  # before the app runs: Flower empties the incoming arrays
        reply = call_next(msg, ctxt)
        if reply.has_error() or not (set(reply.content.array_records) | set(reply.content.config_records)):
            return reply
        check_result(reply.content, site_of(ctxt), shapes)
        return reply

    return mod


def outbound_guard(site_of: Callable[[Any], str], log_of: Callable[[Any], OutboundLog]) -> Callable[..., Any]:
    """The outermost mod: nothing leaves the site without passing through here."""

    def mod(msg: Any, ctxt: Any, call_next: Callable[..., Any]) -> Any:
        from flwr.common import Error, Message

        site = site_of(ctxt)
        refused = None
        try:
            shapes = _incoming_shapes(msg)  # before the app runs: Flower empties the incoming arrays
            reply = call_next(msg, ctxt)
            if not reply.has_error():
                masked = SECAGG_RECORD in reply.content.config_records
                check_result(reply.content, site, shapes, masked=masked)
        except GuardRefusal as err:
            refused = err.reason
            log.warning("site %s: outbound message refused: %s", site, refused)
            reason = f"site {site}: refused by the site's outbound guard: {refused}"
            reply = Message(Error(code=0, reason=reason), reply_to=msg)
        except Exception as err:
            reason = f"site {site}: {safe_reason(err)}"
            log.warning("%s", reason)
            reply = Message(Error(code=0, reason=reason), reply_to=msg)
        log_of(ctxt).record(site, reply, refused)
        return reply

    return mod
