"""Split one public data set into partner sites for demos, tests and benchmarks (each site gets
its own ``.npz`` in the site-data layout, with synthetic patient ids, sex and age group)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carelens.network.sitedata import SPLITS


def partition_npz(
    source: str | Path,
    out_dir: str | Path,
    sites: dict[str, dict[str, float | int]],
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``<out_dir>/<site>.npz`` for each site.

    ``sites`` maps a site name to ``{"share": fraction of each split, "positive": wanted fraction
    of label 1 in the train split (omit for the source's own mix; val and test keep the source's
    mix), "max": cap on images per split}``. Shares are
    drawn without replacement, so sites never overlap.
    """
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with np.load(source) as data:
        arrays = {k: data[k] for k in data.files}
    pools: dict[str, dict[int, list[int]]] = {}
    for split in SPLITS:
        labels = arrays[f"{split}_labels"].reshape(-1)
        pools[split] = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in (0, 1)}
    written: dict[str, Path] = {}
    for site_index, (site, spec) in enumerate(sites.items()):
        payload: dict[str, np.ndarray] = {}
        for split in SPLITS:
            labels = arrays[f"{split}_labels"].reshape(-1)
            total = round(float(spec.get("share", 1 / len(sites))) * len(labels))
            total = min(total, int(spec.get("max", total)))
            positive = spec.get("positive") if split == "train" else None
            share_pos = float(positive) if positive is not None else float(labels.mean())
            n_pos = min(round(total * share_pos), len(pools[split][1]))
            n_neg = min(total - n_pos, len(pools[split][0]))
            take = [pools[split][1].pop() for _ in range(n_pos)] + [pools[split][0].pop() for _ in range(n_neg)]
            index = np.asarray(sorted(take), dtype=np.int64)
            n = index.size
            payload[f"{split}_images"] = arrays[f"{split}_images"][index]
            payload[f"{split}_labels"] = labels[index].reshape(-1, 1)
            payload[f"{split}_patient_id"] = np.asarray([f"S{site_index}-{split}-{i:05d}" for i in range(n)])
            payload[f"{split}_sex"] = rng.choice(np.asarray(["F", "M"]), n)
            payload[f"{split}_age_group"] = rng.choice(np.asarray(["18-39", "40-64", "65+"]), n, p=[0.3, 0.45, 0.25])
        path = out / f"{site}.npz"
        np.savez_compressed(path, **payload)
        written[site] = path
    return written
