"""What may leave a site: the outbound guard, run through the real ClientApp with planted canaries,
and the hub's screen of replies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.common import Context, EvaluateIns, FitIns, Message, MessageType, RecordDict, ndarrays_to_parameters
from flwr.compat.common.recorddict_compat import (
    evaluateins_to_recorddict,
    fitins_to_recorddict,
    recorddict_to_evaluateres,
    recorddict_to_fitres,
)

from carelens.network.guard import GuardRefusal, OutboundLog, check_result, outbound_guard
from carelens.network.local import get_weights, new_model
from carelens.network.screen import ScreenedGrid, screen_reply
from carelens.network.strategy import Journal

from .conftest import CANARY_MRNS, CANARY_NAMES, write_site


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    """Flower stamps messages with the running task's identity; set one as a SuperLink would."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1


def _context(site: str, data: Path, out: Path) -> Context:
    config = {"site": site, "data": str(data), "outbound-log": str(out / "log"), "capture": str(out / "capture")}
    return Context(run_id=1, node_id=7, node_config=config, state=RecordDict(), run_config={})


def _message(kind: str, weights: list[np.ndarray], config: dict[str, Any]) -> Message:
    params = ndarrays_to_parameters(weights)
    if kind == MessageType.TRAIN:
        content = fitins_to_recorddict(FitIns(params, config), True)
    else:
        content = evaluateins_to_recorddict(EvaluateIns(params, config), True)
    return Message(content=content, dst_node_id=7, message_type=kind, group_id="1")


def _captured(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((out / "capture").glob("*.bin")))


def _no_canaries(blob: bytes) -> None:
    for canary in CANARY_NAMES + CANARY_MRNS + ["CANARY"]:
        assert canary.encode() not in blob, "a canary identifier left the site"


@pytest.mark.slow
def test_every_message_leaving_the_site_is_free_of_canaries(tmp_path: Path) -> None:
    from carelens.network.client_app import app

    data = write_site(tmp_path / "north.npz")
    ctx = _context("north", data, tmp_path)
    weights = get_weights(new_model())
    fit_reply = app(_message(MessageType.TRAIN, weights, {"local_epochs": 1, "lr": 1e-3}), ctx)
    assert not fit_reply.has_error(), fit_reply.error.reason if fit_reply.has_error() else ""
    fitres = recorddict_to_fitres(fit_reply.content, keep_input=True)
    assert fitres.num_examples == 60 and fitres.metrics["site"] == "north"
    eval_reply = app(_message(MessageType.EVALUATE, weights, {"split": "test"}), ctx)
    assert not eval_reply.has_error()
    metrics = recorddict_to_evaluateres(eval_reply.content).metrics
    assert "auc" in metrics and any(k.startswith("sg.sex.") for k in metrics)
    assert metrics.get("sg.sex.unknown.suppressed") == 1.0  # the planted free-text cell is small
    blob = _captured(tmp_path)
    assert len(list((tmp_path / "capture").glob("*.bin"))) == 2 and len(blob) > 100_000  # weights did go out
    _no_canaries(blob)
    log = [json.loads(line) for line in (tmp_path / "log" / "outbound.jsonl").read_text().splitlines()]
    assert [e["refused"] for e in log] == [None, None] and all(e["bytes"] > 0 for e in log)


@pytest.mark.slow
def test_bad_site_data_gives_a_phi_free_refusal(tmp_path: Path) -> None:
    from carelens.network.client_app import app

    data = write_site(tmp_path / "bad.npz", train_labels=np.full((60, 1), 7))
    reply = app(_message(MessageType.TRAIN, get_weights(new_model()), {}), _context("south", data, tmp_path))
    assert reply.has_error()
    assert reply.error.reason.startswith("site south: site data failed the schema check")
    _no_canaries(_captured(tmp_path))


def test_exceptions_leave_as_their_type_only(tmp_path: Path) -> None:
    def leaky(msg: Message, ctxt: Context) -> Message:
        raise ValueError(f"cannot parse row for {CANARY_NAMES[0]} {CANARY_MRNS[0]}")

    mod = outbound_guard(lambda c: "east", lambda c: OutboundLog(None, tmp_path / "capture"))
    msg = _message(MessageType.EVALUATE, [np.zeros((2, 2), np.float32)], {})
    reply = mod(msg, _context("east", tmp_path / "x.npz", tmp_path), leaky)
    assert reply.has_error() and reply.error.reason == "site east: site task failed (ValueError)"
    _no_canaries(_captured(tmp_path))


def _fit_content(arrays: list[np.ndarray], metrics: dict[str, Any], status: str = "Success") -> RecordDict:
    from flwr.common import Code, FitRes, Status
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict

    res = FitRes(Status(Code.OK, status), ndarrays_to_parameters(arrays), 10, metrics)
    return fitres_to_recorddict(res, True)


@pytest.mark.parametrize(
    ("arrays", "metrics", "status", "rule"),
    [
        ([np.zeros((3, 3), np.float32)], {"patient_name": 1.0}, "Success", "metric key not on the release list"),
        ([np.zeros((3, 3), np.float32)], {"auc": "0.9 for MRN-1"}, "Success", "not a finite number"),
        ([np.zeros((3, 3), np.float32)], {"site": "someone-else"}, "Success", "may only name this site"),
        ([np.zeros((4, 3), np.float32)], {}, "Success", "shapes differ"),
        ([np.full((3, 3), np.nan, np.float32)], {}, "Success", "finite floating-point"),
        ([np.zeros((3, 3), np.float32)], {}, "row 12 of patient", "status may carry only a code"),
    ],
)
def test_guard_refuses_anything_off_the_release_list(
    arrays: list[np.ndarray], metrics: dict[str, Any], status: str, rule: str
) -> None:
    with pytest.raises(GuardRefusal, match=rule) as info:
        check_result(_fit_content(arrays, metrics, status), "north", [(3, 3)])
    assert "MRN" not in str(info.value) and "patient" not in str(info.value).replace("patients", "")


def test_guard_accepts_the_permitted_result() -> None:
    ok = _fit_content([np.ones((3, 3), np.float32)], {"site": "north", "loss": 0.3, "n_train": 60, "auc": 0.9})
    check_result(ok, "north", [(3, 3)])


def test_hub_screen_rejects_mismatched_and_non_finite_updates() -> None:
    sent = _message(MessageType.TRAIN, [np.zeros((3, 3), np.float32)], {})
    good = Message(_fit_content([np.ones((3, 3), np.float32)], {}), reply_to=sent)
    wrong = Message(_fit_content([np.ones((2, 3), np.float32)], {}), reply_to=sent)
    nan = Message(_fit_content([np.full((3, 3), np.inf, np.float32)], {}), reply_to=sent)
    assert screen_reply(good, [(3, 3)]) is None
    assert "do not match" in (screen_reply(wrong, [(3, 3)]) or "")
    assert "non-finite" in (screen_reply(nan, [(3, 3)]) or "")


def _stand_in(reply_to: str) -> Message:
    """Flower's grid's reply for a site that died while uploading: an error naming the hub as sender."""
    from flwr.common import Error, Metadata

    meta = Metadata(run_id=1, message_id="", src_node_id=1, dst_node_id=1, reply_to_message_id=reply_to,
                    group_id="", created_at=0.0, ttl=0, message_type="system")  # fmt: skip
    return Message(metadata=meta, error=Error(code=3, reason="Reply message objects are unavailable."))


def test_flowers_stand_in_for_an_unfinished_upload_drops_that_site() -> None:
    """A site that dies while uploading its reply: Flower's grid returns an error message that names
    the hub as its sender; the screen re-addresses it to the site, so the workflow drops that site."""
    sent = _message(MessageType.TRAIN, [np.zeros((3, 3), np.float32)], {})

    class DeadSiteGrid:
        def push_messages(self, messages: list[Message]) -> list[str]:
            return [m.metadata.message_id for m in messages]

        def pull_messages(self, ids: set[str]) -> list[Message]:
            return [_stand_in(next(iter(ids)))]

    journal = Journal()
    [reply] = ScreenedGrid(DeadSiteGrid(), journal).send_and_receive([sent], timeout=1)
    assert reply.has_error() and reply.metadata.src_node_id == 7 and reply.metadata.group_id == "1"
    assert journal.events == [
        {"round": "1", "event": "site error", "node": "node 7", "reason": "Reply message objects are unavailable."}
    ]


def test_replies_in_while_a_pull_outlasts_the_timeout_are_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's pull waits on the objects of a site that died mid-upload, past the step's timeout; the
    other site's reply, in by then, is still collected (it was lost, and with it the round)."""
    from types import SimpleNamespace

    from carelens.network import screen

    weights = [np.zeros((3, 3), np.float32)]
    dead = _message(MessageType.TRAIN, weights, {})
    alive = Message(content=fitins_to_recorddict(FitIns(ndarrays_to_parameters(weights), {}), True),
                    dst_node_id=8, message_type=MessageType.TRAIN, group_id="1")  # fmt: skip
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(screen, "time", SimpleNamespace(monotonic=lambda: clock[0], sleep=sleep))

    class SlowPullGrid:
        def push_messages(self, messages: list[Message]) -> list[str]:
            for m in messages:  # as Flower's grid does on push
                m.metadata.__dict__["_message_id"] = m.object_id
            return [m.metadata.message_id for m in messages]

        def pull_messages(self, ids: set[str]) -> list[Message]:
            if dead.metadata.message_id in ids:
                sleep(200)  # Flower gave up on the dead site's objects after the 150 s timeout
                return [_stand_in(dead.metadata.message_id)]
            return [Message(_fit_content([np.ones((3, 3), np.float32)], {}), reply_to=alive)]

    replies = ScreenedGrid(SlowPullGrid(), Journal()).send_and_receive([dead, alive], timeout=150)
    by_node = {r.metadata.src_node_id: r for r in replies}
    assert set(by_node) == {7, 8} and by_node[7].has_error() and not by_node[8].has_error()
