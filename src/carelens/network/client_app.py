"""The site's Flower ``ClientApp``: trains and evaluates the carelens image model on the site's
own data, behind the outbound guard and SecAgg+ (``mods``, outermost first).

Node config (``flower-supernode --node-config``): ``site`` (name), ``data`` (npz or folder),
optional ``outbound-log`` (folder for the size log), ``capture`` (folder keeping a copy of
every outgoing message), ``threads`` (torch CPU threads; absent: torch's default) and
``site-state`` (folder where the site keeps its site-local layers of a FedBN run, one file per
run: ``<run id>.pt``). Torch loads only for training and evaluation messages, not for the
SecAgg+ key-exchange stages.

Under the ``fedbn`` strategy the batch-norm layers never leave the site: they are kept in the
node's run state between rounds and in ``site-state``, and used for the site's own scoring.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.common import Context, MessageType

from carelens.core.errors import InputError
from carelens.network.guard import SECAGG_RECORD, OutboundLog, outbound_guard, payload_guard
from carelens.network.strategy import EQUAL_SITE_WEIGHT

KEY_CLIPPING_NORM = "clipping_norm"
LOCAL_STATE = "site-local-layers"


def _site(ctxt: Context) -> str:
    return str(ctxt.node_config.get("site", "site"))


def _outbound_log(ctxt: Context) -> OutboundLog:
    folder = ctxt.node_config.get("outbound-log")
    capture = ctxt.node_config.get("capture")
    return OutboundLog(Path(str(folder)) if folder else None, Path(str(capture)) if capture else None)


class SiteClient(NumPyClient):
    """Local training (FedAvg/FedProx) and local evaluation for one site."""

    def __init__(self, context: Context) -> None:
        self.site = _site(context)
        self.data_path = str(context.node_config.get("data", ""))
        self.arch = str(context.run_config.get("arch", "cnn"))
        self.image_size = int(context.run_config.get("image-size", 28))
        self.seed = int(context.run_config.get("seed", 0))
        self.threads = int(context.node_config.get("threads", 0))
        self.context = context

    def _data(self):
        from carelens.network.sitedata import load_site_data

        try:
            return load_site_data(self.data_path, self.site, (1, self.image_size, self.image_size))
        except InputError as err:
            raise InputError(f"site data failed the schema check: {err.reason}") from None

    def _model(self, parameters: list[Any], site_local: bool = False):
        import torch

        from carelens.network.local import new_model, set_weights

        if self.threads > 0:  # several sites sharing few cores train faster one thread each
            torch.set_num_threads(self.threads)
        model = new_model(self.arch, self.image_size, self.seed)
        try:
            set_weights(model, parameters, site_local=site_local)
        except ValueError as err:
            raise InputError(f"model from the hub does not fit this site's network: {err}") from None
        return model

    def _state_file(self, run: str) -> Path | None:
        folder = self.context.node_config.get("site-state")
        return Path(str(folder)) / f"{run}.pt" if folder and run.isdigit() else None

    def _restore_local(self, model: Any, run: str, first_round_ok: bool = False) -> None:
        """This site's own batch-norm layers (FedBN) of the training run ``run``: from the node's
        run state while that run lasts, else from the site-state file. A first training round
        starts from the network's initial ones; scoring without them is refused."""
        import torch

        from carelens.network.local import set_local_state

        record = self.context.state.array_records.get(LOCAL_STATE) if run == str(self.context.run_id) else None
        path = self._state_file(run)
        if record is not None:
            set_local_state(model, record.to_torch_state_dict())
        elif path is not None and path.is_file():
            set_local_state(model, torch.load(path, map_location="cpu", weights_only=True))
        elif not first_round_ok:
            raise InputError("this site holds no site-local layers (FedBN) of this model: it did not train it")

    def _keep_local(self, model: Any) -> None:
        import torch
        from flwr.app import ArrayRecord

        from carelens.network.local import get_local_state

        local = get_local_state(model)
        self.context.state.array_records[LOCAL_STATE] = ArrayRecord(torch_state_dict=local)
        path = self._state_file(str(self.context.run_id))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(local, path)

    def fit(self, parameters: list[Any], config: dict[str, Any]) -> tuple[list[Any], int, dict[str, Any]]:
        from carelens.network.local import fit, get_weights, local_epochs

        start = time.monotonic()
        data = self._data()
        site_local = bool(config.get("site_local", False))
        model = self._model(parameters, site_local)
        if site_local:
            self._restore_local(model, str(self.context.run_id), first_round_ok=True)
        train = data.split("train")
        epochs = local_epochs(len(train), int(config.get("local_epochs", 1)), int(config.get("local_steps", 0)))
        stats = fit(
            model,
            train,
            epochs=epochs,
            lr=float(config.get("lr", 1e-3)),
            proximal_mu=float(config.get("proximal_mu", 0.0)),
            seed=self.seed + int(config.get("round", 0)),
        )
        metrics: dict[str, Any] = {"site": self.site, "loss": stats["loss"], "train_seconds": time.monotonic() - start}
        metrics["epochs"] = epochs
        if site_local:
            self._keep_local(model)
        for split, part in data.splits.items():
            metrics[f"n_{split}"] = len(part)
            metrics[f"n_{split}_pos"] = int(part.labels.sum())
        equal = config.get("site_weighting") == "equal"
        weight = EQUAL_SITE_WEIGHT if equal else len(train)  # the site's weight in the average
        return get_weights(model, site_local=site_local), weight, metrics

    def evaluate(self, parameters: list[Any], config: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
        import numpy as np

        from carelens.network.local import predict
        from carelens.network.metrics import flatten, site_metrics

        if config.get("roll-call"):  # the hub asks who this is: the name only, no data read
            return 0.0, 0, {"site": self.site}
        data = self._data()
        split = data.split(str(config.get("split", "test")))
        run = str(config.get("site_local_run", ""))
        model = self._model(parameters, site_local=bool(run))
        if run:
            self._restore_local(model, run)
        proba = predict(model, split)
        result = site_metrics(proba, split, threshold=float(config.get("threshold", 0.5)))
        eps = 1e-7
        p = np.clip(proba[np.arange(len(split)), split.labels], eps, 1.0)
        loss = float(-np.mean(np.log(p)))
        return loss, len(split), {"site": self.site, **flatten(result)}


def _client_fn(context: Context):
    return SiteClient(context).to_client()


def secagg_mod(msg: Any, ctxt: Context, call_next: Any) -> Any:
    """Flower's SecAgg+ for training messages that run the SecAgg+ protocol (the hub's default);
    a hub that trains without it (``--no-secagg``) sends plain training messages."""
    if not msg.has_error() and SECAGG_RECORD in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def dp_clipping_mod(msg: Any, ctxt: Context, call_next: Any) -> Any:
    """Flower's client-side fixed clipping, applied only to training messages that carry the
    hub's clipping norm (differential privacy on); other messages pass through."""
    records = msg.content.config_records if not msg.has_error() else {}
    if msg.metadata.message_type == MessageType.TRAIN and KEY_CLIPPING_NORM in records.get("fitins.config", {}):
        return fixedclipping_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


app = ClientApp(
    client_fn=_client_fn,
    mods=[outbound_guard(_site, _outbound_log), secagg_mod, payload_guard(_site), dp_clipping_mod],
)
