"""End to end on loopback: one model trained by the Flower network across two different sites, a
pediatric one (a slice of PneumoniaMNIST) and an adult one (nih-adult-dev, prepared with
`node prepare-site` and split by patient), each holding only its own images. The registry entry
records each site's federated validation with its verdict, and the HTI-1 export reads it. The run is
FedBN: batch-norm layers stay at each site (kept in the site's own folder, never sent), and each site
can make a package of the entry with its own layers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from carelens.imaging.package import load_package
from carelens.models import Registry
from carelens.models.package import write_package
from carelens.network.partition import partition_npz
from carelens.network.prepare import prepare_site
from carelens.network.runtime import loopback_network, network_dir, run_job


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pediatric_and_adult_sites_train_one_model_and_each_validates_it(tmp_path: Path, shared_data: Path) -> None:
    imaging = shared_data / "imaging"
    pediatric = partition_npz(imaging / "pneumoniamnist.npz", tmp_path / "data", {"pediatric": {"share": 0.05}})
    adult = tmp_path / "data" / "adult.npz"
    prepared = prepare_site(imaging / "nih-adult-dev" / "images", adult, image_size=28)
    assert prepared["labels"] == {"0": "normal", "1": "pneumonia"}  # the same label order as PneumoniaMNIST
    with np.load(adult) as raw:
        splits = {s: set(raw[f"{s}_patient_id"].tolist()) for s in ("train", "val", "test")}
    assert not (splits["train"] & splits["test"]) and not (splits["train"] & splits["val"])  # split by patient

    store = tmp_path / "store"
    sites = {"pediatric": pediatric["pediatric"], "adult": adult}
    with loopback_network(store, sites, capture=tmp_path / "capture", threads=1, grace=2) as net:
        hub_address = net.address
        settings = {"rounds": 2, "min-sites": 2, "expected-sites": 2, "timeout": 150, "local-epochs": 1, "lr": 0.003}
        settings |= {"strategy": "fedbn", "local-steps": 4}
        result = run_job(hub_address, store, settings, timeout=800, quiet=True)
        by_site = {s["site"]: s for s in result["sites"]}
        assert set(by_site) == {"pediatric", "adult"} and result["rounds_adopted"] == 2, result.get("failures")
        assert by_site["adult"]["n"] == prepared["counts"]["test"]  # the adult site's held-out patients
        for site in by_site.values():
            assert 0.0 <= site["metrics"]["auc"]["value"] <= 1.0
            assert isinstance(site["passed"], bool) and (site["passed"] or site["failed"])

        entry = Registry(store).entry(result["model_id"])
        lineage = {s["site"]: s["counts"] for s in entry.lineage["sites"]}
        assert lineage["adult"]["train"] == prepared["counts"]["train"]
        assert lineage["pediatric"]["train"] == len(np.load(pediatric["pediatric"])["train_labels"])
        recorded = {s["site"]: s for s in entry.training["evaluation"]["sites"]}
        assert recorded["adult"]["metrics"] == by_site["adult"]["metrics"]
        assert entry.training["image_size"] == 28
        local = entry.training["site_local"]
        kept = {site: network_dir(store) / "sites" / site / "site-local" / f"{local['run_id']}.pt" for site in by_site}
        assert all(path.is_file() for path in kept.values()) and len(local["layers"]) == 6
        package = load_package(write_package(Registry(store), entry.id, tmp_path / "adult-model", kept["adult"]))
        site_layers = torch.load(kept["adult"], weights_only=True)
        assert all(torch.equal(package.model.state_dict()[k], v) for k, v in site_layers.items())
        exported = Registry(store).export(entry.id)
        record = exported["records"][0]
        assert record["kind"] == "validation" and {s["site"] for s in record["content"]["sites"]} == set(by_site)
        assert "adult: auc" in exported["hti1"]["local_validity"]
        assert "pediatric: auc" in exported["hti1"]["local_validity"]

        # what left the adult site: weights and aggregate figures, never an image or a patient id
        blobs = b"".join(p.read_bytes() for p in (tmp_path / "capture" / "adult").glob("*.bin"))
        for pid in sorted(splits["test"])[:20]:
            assert pid.encode() not in blobs and pid.encode() not in json.dumps(exported).encode()
