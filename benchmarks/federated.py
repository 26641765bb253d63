"""Federated vs centralised vs site-alone training on PneumoniaMNIST split over three sites.

The train split is divided non-identically: a large referral hospital with almost only
pneumonia, a mid-size hospital with the source's own mix, and a small screening clinic with many
normal films. Every model is the carelens image CNN trained by the same local routine
(``carelens.network.local.fit``) for the same number of epochs over its data:

* federated: a real hub (Flower SuperLink) and three site processes (SuperNodes) on loopback,
  SecAgg+ on, ``--rounds`` rounds of ``--local-epochs`` epochs;
* centralised: the pooled train data, rounds x local epochs epochs;
* each site alone: its own train data, rounds x local epochs epochs.

All are scored on the full official test split (624 images). Goal: federated AUC >= 98% of the
centralised AUC and above every site alone. Also printed: wall time, bytes per round.

Run: ``nice -n 10 .venv/bin/python benchmarks/federated.py [--rounds 3 --local-epochs 1]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from carelens.core.config import shared_data_dir
from carelens.models import Registry
from carelens.network.local import fit, new_model, predict
from carelens.network.partition import partition_npz
from carelens.network.runtime import loopback_network, run_job
from carelens.network.sitedata import SiteSplit, load_site_data

SITES = {
    "referral": {"share": 0.50, "positive": 0.98},
    "general": {"share": 0.35},
    "screening": {"share": 0.15, "positive": 0.65},
}


def test_auc(model: torch.nn.Module, test: SiteSplit) -> float:
    return float(roc_auc_score(test.labels, predict(model, test)[:, 1]))


def train_alone(split: SiteSplit, epochs: int, seed: int) -> tuple[torch.nn.Module, float]:
    start = time.monotonic()
    model = new_model(seed=seed)
    fit(model, split, epochs=epochs, seed=seed)
    return model, time.monotonic() - start


def pooled(splits: list[SiteSplit]) -> SiteSplit:
    return SiteSplit(
        images=np.concatenate([s.images for s in splits]), labels=np.concatenate([s.labels for s in splits])
    )


def federated(files: dict[str, Path], store: Path, rounds: int, epochs: int, strategy: str) -> tuple[dict, float]:
    start = time.monotonic()
    with loopback_network(store, files) as net:
        settings = {
            "rounds": rounds,
            "local-epochs": epochs,
            "strategy": strategy,
            "min-sites": 3,
            "expected-sites": 3,
            "timeout": 900,
        }
        result = run_job(net.address, store, settings, timeout=7200, quiet=True)
    return result, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--strategy", default="fedprox", choices=["fedavg", "fedprox"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("shared data not found (set CARELENS_SHARED_DATA)")
    source = shared / "imaging" / "pneumoniamnist.npz"
    epochs = args.rounds * args.local_epochs
    work = Path(tempfile.mkdtemp(prefix="carelens-fed-bench-"))
    files = partition_npz(source, work / "sites", SITES, seed=args.seed)
    data = {site: load_site_data(path, site) for site, path in files.items()}
    full = load_site_data(source, "all").split("test")

    print("site        train  pneumonia share")
    for site, d in data.items():
        tr = d.split("train")
        print(f"{site:<11} {len(tr):>5}  {tr.labels.mean():.2f}")
    print(f"test (official, all sites' population): {len(full)} images\n", flush=True)

    rows: list[tuple[str, float, float, str]] = []
    result, fed_wall = federated(files, work / "store", args.rounds, args.local_epochs, args.strategy)
    registry = Registry(work / "store")
    fed_model = new_model()
    fed_model.load_state_dict(torch.load(registry.weights_path(result["model_id"]), weights_only=True))
    fed_auc = test_auc(fed_model, full)
    per_round = [v["to_sites"] + v["from_sites"] for k, v in result["bytes_per_round"].items() if k.isdigit()]
    rows.append(
        (f"federated ({args.strategy}, SecAgg+, 3 sites)", fed_auc, fed_wall, f"{np.mean(per_round) / 1e6:.1f} MB")
    )
    print(f"federated done: AUC {fed_auc:.4f} in {fed_wall:.0f} s", flush=True)

    central, central_wall = train_alone(pooled([d.split("train") for d in data.values()]), epochs, args.seed)
    central_auc = test_auc(central, full)
    rows.append(("centralised (pooled data)", central_auc, central_wall, "-"))
    print(f"centralised done: AUC {central_auc:.4f}", flush=True)
    alone_aucs = {}
    for site, d in data.items():
        model, wall = train_alone(d.split("train"), epochs, args.seed)
        alone_aucs[site] = test_auc(model, full)
        rows.append((f"{site} alone", alone_aucs[site], wall, "-"))
        print(f"{site} alone done: AUC {alone_aucs[site]:.4f}", flush=True)

    print(f"\nrounds {args.rounds} x local epochs {args.local_epochs} (= {epochs} epochs for the others)\n")
    print("| model | test AUC | wall s | bytes per round (to + from sites) |")
    print("|---|---|---|---|")
    for name, auc, wall, size in rows:
        print(f"| {name} | {auc:.4f} | {wall:.0f} | {size} |")
    ratio = fed_auc / central_auc
    best_alone = max(alone_aucs.values())
    print(f"\nfederated / centralised AUC: {ratio:.3f} (goal >= 0.98): {'met' if ratio >= 0.98 else 'NOT met'}")
    verdict = "met" if fed_auc > best_alone else "NOT met"
    print(f"federated vs best site alone: {fed_auc:.4f} vs {best_alone:.4f}: {verdict}")
    print(f"rounds adopted: {result['rounds_adopted']} of {args.rounds}; events: {len(result['events'])}")
    print(f"hub bytes per round: {result['bytes_per_round']}")


if __name__ == "__main__":
    main()
