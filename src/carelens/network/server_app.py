"""The hub's Flower ``ServerApp``: federated training (a ``DefaultWorkflow`` whose fit step is
Flower's ``SecAggPlusWorkflow``) or federated validation, then the registry entry / record.

Run config (``flwr run -c``): ``mode`` (train|validate), ``store``, ``result`` (JSON file the
hub CLI reads back), ``rounds``, ``strategy``, ``min-sites``, ``expected-sites``, ``local-epochs``,
``lr``, ``proximal-mu``, ``dp-noise``, ``dp-clip``, ``secagg``, ``timeout``, ``arch``,
``image-size``, ``seed``, ``name``, ``card`` (JSON file), ``cohort``, ``model``, ``split``.
The strategy lives in ``carelens.network.strategy``; this module only wires it to Flower.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from flwr.common import Context
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.serverapp import ServerApp

app = ServerApp()


class DropoutSafeSecAggPlus(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow with one fix: a site that drops out before the key-share stage
    completes never masked anyone's vector, so it leaves the round's sampled set (Flower 1.42
    would ask the others for key shares they never received, and the round would fail)."""

    def share_keys_stage(self, grid: Any, context: Any, state: Any) -> bool:
        ok = bool(super().share_keys_stage(grid, context, state))
        state.sampled_node_ids = set(state.active_node_ids)
        return ok


def _cfg(context: Context) -> dict[str, Any]:
    return dict(context.run_config)


@app.main()
def main(grid: Any, context: Context) -> None:
    """Entry point the SuperLink runs for each ``flwr run``."""
    cfg = _cfg(context)
    started = time.time()
    try:
        if cfg.get("mode", "train") == "validate":
            result = run_validation(grid, cfg)
        else:
            result = run_training(grid, context, cfg)
        result["ok"] = not result["failures"]
    except Exception as err:
        result = {"ok": False, "reason": f"{type(err).__name__}: {err}"[:500]}
    result["wall_seconds"] = round(time.time() - started, 1)
    out = Path(str(cfg["result"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")


def _wait_for_sites(grid: Any, count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) >= count or time.monotonic() > deadline:
            return nodes
        time.sleep(1)


def run_training(grid: Any, context: Context, cfg: dict[str, Any]) -> dict[str, Any]:
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow

    from carelens.network.local import get_weights, new_model
    from carelens.network.screen import ScreenedGrid
    from carelens.network.strategy import Journal, make_strategy

    journal = Journal()
    screened = ScreenedGrid(grid, journal)
    arch, size, seed = str(cfg.get("arch", "cnn")), int(cfg.get("image-size", 28)), int(cfg.get("seed", 0))
    model = new_model(arch, size, seed)
    site_local = str(cfg.get("strategy", "fedavg")) == "fedbn"
    initial = get_weights(model, site_local=site_local)
    min_sites = int(cfg.get("min-sites", 2))
    expected = int(cfg.get("expected-sites", min_sites))
    rounds = int(cfg.get("rounds", 3))
    timeout = float(cfg.get("timeout", 300))
    _wait_for_sites(grid, expected, float(cfg.get("join-timeout", 120)))
    nodes = roll_call(screened, timeout)
    if len(nodes) < min_sites:
        raise RuntimeError(f"only {len(nodes)} site(s) connected, the minimum is {min_sites}")
    dp_noise = float(cfg.get("dp-noise", 0.0))
    strategy = make_strategy(
        str(cfg.get("strategy", "fedavg")),
        initial,
        journal,
        min_sites=min_sites,
        local_epochs=int(cfg.get("local-epochs", 1)),
        local_steps=int(cfg.get("local-steps", 0)),
        site_weighting=str(cfg.get("site-weighting", "examples")),
        lr=float(cfg.get("lr", 1e-3)),
        proximal_mu=float(cfg.get("proximal-mu", 0.01)),
        dp_noise=dp_noise,
        dp_clip=float(cfg.get("dp-clip", 1.0)),
        expected_sites=len(nodes),
    )
    legacy = LegacyContext(
        context=context, config=ServerConfig(num_rounds=rounds, round_timeout=timeout), strategy=strategy
    )
    secagg = bool(cfg.get("secagg", True))
    fit_workflow = (
        DropoutSafeSecAggPlus(
            num_shares=1.0,
            reconstruction_threshold=0.6,
            max_weight=float(cfg.get("max-weight", 10000.0)),
            clipping_range=float(cfg.get("clipping-range", 32.0)),
            timeout=timeout,
        )
        if secagg
        else None
    )
    DefaultWorkflow(fit_workflow=fit_workflow)(screened, legacy)  # type: ignore[arg-type]  # a Grid proxy
    weights = [a.numpy() for a in legacy.state.array_records["parameters"].values()]
    adopted = sum(1 for r in journal.rounds if r.get("adopted"))
    local_run = str(context.run_id) if site_local else None
    evaluation = federated_evaluate(screened, weights, cfg, split=str(cfg.get("split", "test")), local_run=local_run)
    _name_nodes(journal, screened)
    privacy = privacy_record(secagg, dp_noise, float(cfg.get("dp-clip", 1.0)), rounds)
    failures = failures_of(journal, evaluation)
    chance = no_better_than_chance(evaluation)
    status: dict[str, Any] = {"status": "failed" if failures or chance else "ok", "failures": failures + chance}
    status["site_local_run"] = local_run
    model_id, version = _register(cfg, model, weights, journal, evaluation, privacy, screened, adopted, status)
    return {
        "mode": "train",
        "model_id": model_id,
        "version": version,
        "status": status["status"],
        "failures": status["failures"],
        "rounds": rounds,
        "rounds_adopted": adopted,
        "sites": evaluation["sites"],
        "pooled": evaluation["pooled"],
        "events": journal.events,
        "privacy": privacy,
        "bytes_per_round": _bytes(screened),
    }


def roll_call(grid: Any, timeout: float) -> list[int]:
    """Ask every connected node for its site name (an evaluation message with ``roll-call`` set:
    no data is read, only the name returns); a node naming a site another node already holds is
    refused for the whole run. Returns the nodes taking part."""
    import numpy as np

    placeholder = [np.zeros(1, np.float32)]  # Flower cannot carry an empty parameter list
    messages = _evaluate_messages(sorted(grid.get_node_ids()), placeholder, {"roll-call": True}, "roll-call")
    grid.send_and_receive(messages, timeout=timeout)
    return list(grid.get_node_ids())


def _evaluate_messages(nodes: list[int], weights: list[Any], config: dict[str, Any], group: str) -> list[Any]:
    """One Flower evaluation message per node, carrying ``weights`` and ``config``."""
    from flwr.common import EvaluateIns, Message, MessageType, ndarrays_to_parameters
    from flwr.compat.common.recorddict_compat import evaluateins_to_recorddict

    ins = EvaluateIns(parameters=ndarrays_to_parameters(weights), config=config)
    return [Message(content=evaluateins_to_recorddict(ins, True), dst_node_id=node,
                    message_type=MessageType.EVALUATE, group_id=group) for node in nodes]  # fmt: skip


FAILURE_EVENTS = ("site failed", "site error", "no reply", "update rejected")


def failures_of(journal: Any, evaluation: dict[str, Any]) -> list[str]:
    """Every site failure of the run, one line each: a round a site failed, a reply the hub
    rejected, a site that did not validate. Any one of them makes the run a failure."""
    found = [
        f"round {e['round']}: {e.get('node', 'a site')}: {e['event']}"
        + (f" ({e['reason']})" if e.get("reason") else "")
        for e in journal.events
        if e.get("event") in FAILURE_EVENTS
    ]
    found += [f"validation: {s['site']}: {s['refused']}" for s in evaluation["sites"] if "refused" in s]
    return found


def no_better_than_chance(evaluation: dict[str, Any]) -> list[str]:
    """Sites where the model does no better than chance: Youden's J (sensitivity + specificity
    - 1) at most 0, or an AUC whose 95% CI reaches down to 0.5."""
    found = []
    for site in evaluation["sites"]:
        metrics = site.get("metrics", {})
        if "refused" in site:
            continue
        sens, spec = _value(metrics.get("sensitivity")), _value(metrics.get("specificity"))
        low = (metrics.get("auc") or {}).get("ci_low")
        if sens is not None and spec is not None and sens + spec - 1 <= 0:
            found.append(f"{site['site']}: no better than chance (sensitivity {sens:.2f}, specificity {spec:.2f})")
        elif isinstance(low, int | float) and low <= 0.5:
            found.append(f"{site['site']}: no better than chance (AUC 95% CI reaches {low:.2f})")
    return found


def _value(metric: Any) -> float | None:
    value = metric.get("value") if isinstance(metric, dict) else None
    return float(value) if isinstance(value, int | float) else None


def privacy_record(secagg: bool, dp_noise: float, dp_clip: float, rounds: int) -> dict[str, Any]:
    """What the registry entry says about the run's privacy: SecAgg+ and, with DP, the epsilon spent."""
    from carelens.network.strategy import epsilon_spent

    privacy: dict[str, Any] = {"secure_aggregation": "SecAgg+ (Flower SecAggPlusWorkflow)" if secagg else "off"}
    if dp_noise > 0:
        privacy["differential_privacy"] = {
            "mechanism": "Gaussian, central noise on the aggregate, client-side clipping (Flower)",
            "noise_multiplier": dp_noise,
            "clipping_norm": dp_clip,
            "rounds": rounds,
            "delta": 1e-5,
            "epsilon": round(epsilon_spent(dp_noise, rounds), 4),
            "unit": "site (each site's whole update per round)",
            "accountant": "privacy loss distribution (dp-accounting PLDAccountant), no subsampling",
        }
    return privacy


def _name_nodes(journal: Any, screened: Any) -> None:
    """Replace node ids in the event log by site names once the sites have named themselves."""
    names = {f"node {k}": v for k, v in screened.node_sites.items()}
    for event in journal.events:
        if event.get("node") in names:
            event["node"] = names[event["node"]]


def _bytes(screened: Any) -> dict[str, dict[str, int]]:
    groups = sorted(set(screened.bytes_out) | set(screened.bytes_in))
    return {g: {"to_sites": screened.bytes_out.get(g, 0), "from_sites": screened.bytes_in.get(g, 0)} for g in groups}


def federated_evaluate(
    grid: Any, weights: list[Any], cfg: dict[str, Any], split: str = "test", local_run: str | None = None
) -> dict[str, Any]:
    """Each connected site scores ``weights`` on its own ``split``; only aggregates come back. A
    FedBN model (``local_run``: its training run) is scored with each site's own batch-norm layers."""
    from flwr.compat.common.recorddict_compat import recorddict_to_evaluateres

    from carelens.network.guard import METRIC_KEY
    from carelens.network.metrics import pooled, unflatten

    nodes = list(grid.get_node_ids())
    config: dict[str, Any] = {"split": split} | ({"site_local_run": local_run} if local_run else {})
    messages = _evaluate_messages(nodes, weights, config, "validate")
    replies = grid.send_and_receive(messages, timeout=float(cfg.get("timeout", 300)))
    sites: list[dict[str, Any]] = []
    answered = set()
    for reply in replies:
        node = reply.metadata.src_node_id
        answered.add(node)
        if reply.has_error():
            sites.append({"site": grid.site_of(node), "refused": reply.error.reason})
            continue
        res = recorddict_to_evaluateres(reply.content)
        metrics = dict(res.metrics)
        name = str(metrics.pop("site", f"node {node}"))
        grid.node_sites[node] = name
        kept = {k: v for k, v in metrics.items() if METRIC_KEY.match(k) and isinstance(v, int | float)}
        sites.append({"site": name, **unflatten(kept)})
    for node in nodes:
        if node not in answered:
            sites.append({"site": grid.site_of(node), "refused": "no reply before the timeout"})
    for site in sites:
        if "refused" not in site:
            site.update(site_verdict(site))
    usable = [s for s in sites if "refused" not in s]
    pooled_metrics = {k: p for k in ("auc", "ece", "sensitivity", "specificity") if (p := pooled(usable, k))}
    return {"split": split, "sites": sorted(sites, key=lambda s: s["site"]), "pooled": pooled_metrics}


def site_verdict(site: dict[str, Any]) -> dict[str, Any]:
    """Whether a site's figures pass the local-validation criteria of ``carelens image adapt``
    (``imaging/validation_criteria.json``: enough images, AUC, ECE): ``{"passed", "failed", "criteria"}``."""
    from carelens.imaging.adapt import judge, validation_criteria

    metrics = site.get("metrics", {})
    flat: dict[str, float] = {"n": int(site.get("n", 0))}
    for key in ("auc", "ece"):
        value = _value(metrics.get(key))
        flat[key] = float("nan") if value is None else value
    criteria = validation_criteria()
    failed = judge(flat, criteria)
    applied = {k: criteria[k] for k in ("min_n", "min_auc", "max_ece")}
    return {"passed": not failed, "failed": failed, "criteria": applied}


FEDERATED_PROCESS = (
    "federated validation: each site scored the model on its own {split} split (patients held out of training) "
    "and returned only aggregate metrics (bootstrap 95% CIs); subgroup cells with fewer than 11 patients suppressed; "
    "each site judged against the local-validation criteria (n, AUC, ECE)"
)


def _register(
    cfg: dict[str, Any],
    model: Any,
    weights: list[Any],
    journal: Any,
    evaluation: dict[str, Any],
    privacy: dict[str, Any],
    screened: Any,
    adopted: int,
    status: dict[str, Any],
) -> tuple[str, str]:
    import torch

    from carelens.models import Registry
    from carelens.network.local import set_weights, site_local_layers

    local_run = status.pop("site_local_run", None)
    set_weights(model, weights, site_local=local_run is not None)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    lineage_sites = []
    for name, info in sorted(journal.sites.items()):
        counts = {s: int(info[f"n_{s}"]) for s in ("train", "val", "test") if f"n_{s}" in info}
        label_counts = {
            s: {"pneumonia": int(info[f"n_{s}_pos"]), "normal": int(info[f"n_{s}"] - info[f"n_{s}_pos"])}
            for s in ("train", "val", "test")
            if f"n_{s}_pos" in info and f"n_{s}" in info
        }
        lineage_sites.append({"site": name, "counts": counts, "label_counts": label_counts, "date_range": None})
    from carelens.imaging.trainer import model_card_file

    # the developer's card (--card), else the card shipped for carelens image models
    card = model_card_file(str(cfg["card"]) if cfg.get("card") else None, "default")
    subgroups = [
        {**row, "site": s["site"]} for s in evaluation["sites"] if "refused" not in s for row in s.get("subgroups", [])
    ]
    registry = Registry(str(cfg["store"]))
    name = str(cfg.get("name", "carelens-federated-cnn"))
    version = str(cfg.get("version") or registry.next_version(name))
    if any(e.name == name and e.version == version for e in map(registry.entry, registry.ids())):
        raise RuntimeError(f"model {name} version {version} is already registered")
    meta = {
        "name": name,
        "version": version,
        **status,
        "arch": str(cfg.get("arch", "cnn")),
        "task": "binary",
        "labels": ["normal", "pneumonia"],
        "metrics": evaluation["pooled"],
        "subgroups": subgroups,
        "lineage": {
            "sites": lineage_sites,
            "cohort_definition": cfg.get("cohort") or None,
            "date_ranges": None,
            "counts": {"train": sum(s["counts"].get("train", 0) for s in lineage_sites)},
        },
        "training": {
            "mode": "federated",
            "framework": "Flower (SuperLink/SuperNode, ServerApp/ClientApp)",
            "strategy": str(cfg.get("strategy", "fedavg")),
            "rounds": int(cfg.get("rounds", 3)),
            "rounds_adopted": adopted,
            "min_sites": int(cfg.get("min-sites", 2)),
            "local_epochs": int(cfg.get("local-epochs", 1)),
            "local_steps": int(cfg.get("local-steps", 0)),
            "site_weighting": str(cfg.get("site-weighting", "examples")),
            "image_size": int(cfg.get("image-size", 28)),
            "seed": int(cfg.get("seed", 0)),
            "site_local": site_local_record(site_local_layers(model), local_run) if local_run else None,
            "privacy": privacy,
            "evaluation": {
                "split": evaluation["split"],
                "sites": evaluation["sites"],
                "pooling": "fixed-effect inverse-variance meta-analysis of site estimates",
            },
            "rounds_log": journal.rounds,
            "events": journal.events,
            "bytes_per_round": _bytes(screened),
        },
        "card": card,
        **federated_package(cfg),
    }
    entry = registry.register_weights(buf.getvalue(), meta)
    report = {
        "process": FEDERATED_PROCESS.format(split=evaluation["split"]),
        "split": evaluation["split"],
        "sites": evaluation["sites"],
        "pooled": evaluation["pooled"],
        "status": status["status"],
    }
    registry.append_record(entry.id, "validation", report)
    return entry.id, version


def site_local_record(layers: list[str], run: str) -> dict[str, Any]:
    """What a FedBN entry says about its site-local layers: which, where they are, and that the
    registered weights hold the network's initial ones there."""
    return {
        "method": "FedBN: batch-norm layers never left the sites; every other layer is the federated average",
        "layers": layers,
        "run_id": run,
        "kept_at": f"each training site, in its node's site-state folder as {run}.pt",
        "registered_values": "the network's initial batch-norm layers (placeholders: each site scores with its own)",
    }


def federated_package(cfg: dict[str, Any]) -> dict[str, Any]:
    """The package block of a federated entry (what ``image predict``, ``adapt`` and ``run`` read):
    the preprocessing ``image train`` records, no temperature (1), threshold 0.5, no conformal sets
    (``image adapt`` fits them at a site)."""
    from carelens.imaging.networks import cam_layer
    from carelens.imaging.trainer import preprocessing_block

    arch, size = str(cfg.get("arch", "cnn")), int(cfg.get("image-size", 28))
    return {
        "kind": "image-classifier",
        "arch_options": {},
        "positive_label": "pneumonia",
        "preprocessing": preprocessing_block(size, 1, ["CR", "DX"], ["CHEST"], None, 5.0, False),
        "operating_threshold": 0.5,
        "threshold_rule": "fixed 0.5 (federated: no site's validation split chose it)",
        "calibration": {"method": "none (federated)", "temperature": 1.0, "fitted_on": None},
        "conformal": None,
        "saliency": {"method": "Grad-CAM", "layer": cam_layer(arch, size)},
    }


def run_validation(grid: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """Federated validation of a registered model: appended to its entry as a new record."""
    import torch

    from carelens.models import Registry
    from carelens.network.local import get_weights, new_model
    from carelens.network.screen import ScreenedGrid
    from carelens.network.strategy import Journal

    registry = Registry(str(cfg["store"]))
    entry = registry.entry(str(cfg["model"]))
    model = new_model(entry.arch, int(entry.training.get("image_size", cfg.get("image-size", 28))))
    state = torch.load(registry.weights_path(entry.id), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    journal = Journal()
    screened = ScreenedGrid(grid, journal)
    _wait_for_sites(grid, int(cfg.get("expected-sites", cfg.get("min-sites", 1))), float(cfg.get("join-timeout", 60)))
    roll_call(screened, float(cfg.get("timeout", 300)))
    local = entry.training.get("site_local") or {}
    weights = get_weights(model, site_local=bool(local))
    run = str(local["run_id"]) if local else None
    evaluation = federated_evaluate(screened, weights, cfg, split=str(cfg.get("split", "test")), local_run=run)
    _name_nodes(journal, screened)
    answered = [s for s in evaluation["sites"] if "refused" not in s]
    if len(answered) < int(cfg.get("min-sites", 1)):
        raise RuntimeError(f"only {len(answered)} site(s) returned results, the minimum is {cfg.get('min-sites', 1)}")
    report = {
        "process": FEDERATED_PROCESS.format(split=evaluation["split"]),
        "split": evaluation["split"],
        "sites": evaluation["sites"],
        "pooled": evaluation["pooled"],
        "events": journal.events,
        "failures": failures_of(journal, evaluation) + no_better_than_chance(evaluation),
    }
    report["status"] = "failed" if report["failures"] else "ok"
    record = registry.append_record(entry.id, "validation", report)
    return {"mode": "validate", "model_id": entry.id, "record": record["seq"], **report}
