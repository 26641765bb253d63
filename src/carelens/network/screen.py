"""The hub's side of the boundary: every reply is screened before any strategy sees it, and
bytes on the wire are counted per round.

``ScreenedGrid`` wraps Flower's ``Grid``. A training reply whose weights (plain, or SecAgg+'s
masked vectors) do not have the shapes the hub sent, or are not finite, is replaced by an error
reply, so Flower's workflow treats that site as dropped for the round (its SecAgg+ masks are
then removed with the other sites' shares) and nothing from it is averaged in.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from carelens.network.strategy import Journal

SECAGG_RECORD = "secaggplus_configs"
POLL_SECONDS = 0.5  # Flower's own send_and_receive sleeps 3 s between pulls; every protocol step pays it


def _size(msg: Any) -> int:
    from flwr.common.serde import recorddict_to_proto

    if msg.has_error():
        return len(msg.error.reason or "")
    return len(recorddict_to_proto(msg.content).SerializeToString())


def _sent_shapes(msg: Any) -> list[tuple[int, ...]] | None:
    for name in ("fitins.parameters", "evaluateins.parameters"):
        if name in msg.content.array_records:
            return [tuple(a.numpy().shape) for a in msg.content.array_records[name].values()]
    return None


def screen_reply(reply: Any, shapes: list[tuple[int, ...]] | None) -> str | None:
    """Why a reply must not be used (None when it may)."""
    if reply.has_error():
        return None
    content = reply.content
    if "fitres.parameters" in content.array_records:
        arrays = list(content.array_records["fitres.parameters"].values())
        if arrays:
            got = [tuple(a.numpy().shape) for a in arrays]
            if shapes is not None and got != shapes:
                return f"update has {len(got)} arrays whose shapes do not match the {len(shapes)} sent"
            if any(not np.isfinite(a.numpy()).all() for a in arrays):
                return "update holds non-finite values"
    if SECAGG_RECORD in content.config_records and "masked_params" in content.config_records[SECAGG_RECORD]:
        from flwr.common import bytes_to_ndarray

        try:
            vectors = [bytes_to_ndarray(b) for b in content.config_records[SECAGG_RECORD]["masked_params"]]
        except Exception:
            return "masked update cannot be decoded"
        if shapes is not None and [tuple(v.shape) for v in vectors[1:]] != shapes:
            return "masked update does not have the shapes of the model sent"
    return None


class ScreenedGrid:
    """A ``Grid`` that screens replies and counts bytes (everything else is delegated)."""

    def __init__(self, grid: Any, journal: Journal) -> None:
        self._grid = grid
        self.journal = journal
        self.bytes_out: dict[str, int] = defaultdict(int)
        self.bytes_in: dict[str, int] = defaultdict(int)
        self.node_sites: dict[int, str] = {}
        self.refused: dict[int, str] = {}  # nodes left out of the run, with the reason

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def get_node_ids(self) -> list[int]:
        """The connected nodes, less those refused (a site name already taken by another node)."""
        return [node for node in self._grid.get_node_ids() if node not in self.refused]

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> Any:
        from flwr.common import Error, Message

        sent = list(messages)
        by_id: dict[str, Any] = {}
        for msg in sent:
            self.bytes_out[msg.metadata.group_id] += _size(msg)
        replies = self._exchange(sent, timeout)
        for msg in sent:
            by_id[msg.metadata.message_id] = msg
        screened = []
        answered = set()
        for reply in replies:
            original = by_id.get(reply.metadata.reply_to_message_id)
            sender = reply.metadata.src_node_id
            if reply.has_error() and original is not None and sender != original.metadata.dst_node_id:
                # Flower's own stand-in for a reply whose upload never finished (the site went away
                # while sending) names the hub as its sender: re-address it to the site, so that the
                # workflow drops that site for the round instead of keeping it as if it had replied
                reply = Message(Error(code=reply.error.code, reason=reply.error.reason), reply_to=original)
            group = reply.metadata.group_id
            self.bytes_in[group] += _size(reply)
            node = reply.metadata.src_node_id
            answered.add(node)
            shapes = _sent_shapes(original) if original is not None else None
            why = self._learn_site(node, reply) or screen_reply(reply, shapes)
            if reply.has_error():
                self.journal.event(group, "site error", node=self.site_of(node), reason=reply.error.reason)
            if why is not None and original is not None:
                self.journal.event(group, "update rejected", node=self.site_of(node), reason=why)
                reply = Message(Error(code=0, reason=f"rejected by hub: {why}"), reply_to=original)
            screened.append(reply)
        for msg in sent:
            if msg.metadata.dst_node_id not in answered:
                self.journal.event(msg.metadata.group_id, "no reply", node=self.site_of(msg.metadata.dst_node_id))
        return screened

    def _exchange(self, messages: list[Any], timeout: float | None) -> list[Any]:
        """Flower's ``send_and_receive`` (push, then pull until every reply is in or the timeout),
        polling every ``POLL_SECONDS``. A pull that began after the deadline is the last: one pull
        can outlast the timeout (Flower waits on the objects of a site that died mid-upload), and
        the replies that came in meanwhile are still collected."""
        pending = set(self._grid.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Any] = []
        while pending:
            last = deadline is not None and time.monotonic() >= deadline
            pulled = list(self._grid.pull_messages(pending))
            replies += pulled
            pending -= {m.metadata.reply_to_message_id for m in pulled}
            if last:
                break
            if pending:
                time.sleep(POLL_SECONDS)
        return replies

    def _learn_site(self, node: int, reply: Any) -> str | None:
        """Note the site name a reply gives; a name another node holds refuses this node for the
        rest of the run (returns why), as does any reply from a node refused before."""
        if node in self.refused:
            return self.refused[node]
        if reply.has_error():
            return None
        for name in ("fitres.metrics", "evaluateres.metrics"):
            site = (
                reply.content.config_records.get(name, {}).get("site") if name in reply.content.config_records else None
            )
            if not isinstance(site, str):
                continue
            if any(other != node and taken == site for other, taken in self.node_sites.items()):
                self.refused[node] = f"site name {site} is already used by another node"
                return self.refused[node]
            self.node_sites[node] = site
        return None

    def site_of(self, node: int) -> str:
        return self.node_sites.get(node, f"node {node}")
