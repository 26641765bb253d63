"""The hub's rules for a trustworthy run: one node per site name, a failed site fails the run, a
model no better than chance is registered only as failed, no two runs share a name and version."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from flwr.common import Context, EvaluateIns, Message, MessageType, RecordDict, ndarrays_to_parameters
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.compat.common.recorddict_compat import evaluateins_to_recorddict, recorddict_to_evaluateres

from carelens.models import Registry
from carelens.network.local import get_weights, new_model
from carelens.network.screen import ScreenedGrid
from carelens.network.server_app import _register, failures_of, no_better_than_chance, roll_call
from carelens.network.strategy import Journal

from .conftest import write_site


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1


class SitesGrid:
    """A Grid whose nodes are the real carelens ClientApp, one context (site) per node id."""

    def __init__(self, contexts: dict[int, Context]) -> None:
        self.contexts = contexts
        self.replies: dict[str, Message] = {}

    def get_node_ids(self) -> list[int]:
        return sorted(self.contexts)

    def push_messages(self, messages: list[Message]) -> list[str]:
        from carelens.network.client_app import app

        for msg in messages:  # a copy, as on the wire: the app empties the arrays it reads
            msg.metadata.__dict__["_message_id"] = str(uuid4())  # as Flower's grids do
            wire = message_from_proto(message_to_proto(msg))
            self.replies[msg.metadata.message_id] = app(wire, self.contexts[msg.metadata.dst_node_id])
        return [m.metadata.message_id for m in messages]

    def pull_messages(self, ids: set[str]) -> list[Message]:
        return [self.replies.pop(i) for i in list(self.replies) if i in ids]  # in the order sent


def _roll_call() -> RecordDict:
    ins = EvaluateIns(ndarrays_to_parameters([np.zeros(1, np.float32)]), {"roll-call": True})
    return evaluateins_to_recorddict(ins, True)


def _context(node: int, site: str, data: Path) -> Context:
    return Context(run_id=1, node_id=node, node_config={"site": site, "data": str(data)}, state=RecordDict(),
                   run_config={})  # fmt: skip


def test_a_second_node_with_a_taken_site_name_is_left_out(tmp_path: Path) -> None:
    data = write_site(tmp_path / "north.npz")
    grid = SitesGrid({3: _context(3, "north", data), 5: _context(5, "south", data), 9: _context(9, "north", data)})
    journal = Journal()
    screened = ScreenedGrid(grid, journal)
    assert roll_call(screened, timeout=5) == [3, 5]
    assert screened.node_sites == {3: "north", 5: "south"}
    assert screened.refused == {9: "site name north is already used by another node"}
    [event] = [e for e in journal.events if e["event"] == "update rejected"]
    assert event["node"] == "node 9"
    # later messages never reach the refused node, and a reply from it would be refused too
    msg = Message(content=_roll_call(), dst_node_id=9, message_type=MessageType.EVALUATE, group_id="x")
    [reply] = screened.send_and_receive([msg], timeout=5)
    assert reply.has_error() and "already used" in reply.error.reason


def test_roll_call_reads_no_data(tmp_path: Path) -> None:
    from carelens.network.client_app import app

    msg = Message(content=_roll_call(), dst_node_id=4, message_type=MessageType.EVALUATE, group_id="roll-call")
    reply = app(msg, _context(4, "east", tmp_path / "missing.npz"))  # no data file at all
    assert not reply.has_error()
    res = recorddict_to_evaluateres(reply.content)
    assert res.num_examples == 0 and dict(res.metrics) == {"site": "east"}


def _site(name: str, sens: float, spec: float, auc: tuple[float, float, float]) -> dict[str, Any]:
    metrics = {
        "sensitivity": {"value": sens, "ci_low": None, "ci_high": None},
        "specificity": {"value": spec, "ci_low": None, "ci_high": None},
        "auc": {"value": auc[0], "ci_low": auc[1], "ci_high": auc[2]},
    }
    return {"site": name, "n": 40, "metrics": metrics}


def test_a_failed_site_fails_the_run() -> None:
    journal = Journal()
    journal.event(2, "site error", node="south", reason="site south: site task failed (ValueError)")
    journal.event(2, "site skipped", node="north")  # not a failure
    journal.event(3, "site error", node="east")  # a failure without a reason (a dropped site)
    evaluation = {"sites": [_site("north", 0.8, 0.8, (0.9, 0.8, 0.95)), {"site": "east", "refused": "no reply"}]}
    assert failures_of(journal, evaluation) == [
        "round 2: south: site error (site south: site task failed (ValueError))",
        "round 3: east: site error",
        "validation: east: no reply",
    ]
    assert failures_of(Journal(), {"sites": [_site("north", 0.8, 0.8, (0.9, 0.8, 0.95))]}) == []


def test_a_model_no_better_than_chance_at_any_site() -> None:
    good = _site("north", 0.8, 0.7, (0.85, 0.75, 0.92))
    degenerate = _site("south", 1.0, 0.0, (0.81, 0.7, 0.9))  # says "pneumonia" to everyone
    weak = _site("east", 0.7, 0.5, (0.6, 0.45, 0.75))
    assert no_better_than_chance({"sites": [good]}) == []
    found = no_better_than_chance({"sites": [good, degenerate, weak]})
    assert [line.split(":")[0] for line in found] == ["south", "east"]
    assert "specificity 0.00" in found[0] and "0.45" in found[1]


def _register_run(store: Path, status: dict[str, Any], version: str = "") -> tuple[str, str]:
    model = new_model()
    evaluation = {"split": "test", "sites": [], "pooled": {}}
    cfg = {"store": str(store), "rounds": 1, "name": "fed", "version": version}
    privacy: dict[str, Any] = {"secure_aggregation": "off"}
    return _register(cfg, model, get_weights(model), Journal(), evaluation, privacy, ScreenedGrid(None, Journal()),
                     1, status)  # fmt: skip


def test_runs_get_their_own_versions_and_a_failing_status(tmp_path: Path) -> None:
    first = _register_run(tmp_path, {"status": "ok", "failures": []})
    second = _register_run(tmp_path, {"status": "failed", "failures": ["south: no better than chance"]})
    assert (first[1], second[1]) == ("1", "2") and first[0] != second[0]
    listed = {row["version"]: row["status"] for row in Registry(tmp_path).list()}
    assert listed == {"1": "ok", "2": "failed"}
    assert Registry(tmp_path).export(second[0])["package"]["failures"] == ["south: no better than chance"]
    with pytest.raises(RuntimeError, match="already registered"):
        _register_run(tmp_path, {"status": "ok", "failures": []}, version="2")
