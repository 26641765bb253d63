"""End to end on a real network (loopback): a hub and three site processes train the carelens
image model with SecAgg+ on small slices of PneumoniaMNIST (one site with skewed labels), one
site drops out in the middle of round 2, then the sites validate the registered model. Every
message that left a site is checked for the canary identifiers planted in that site's data."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from carelens.models import Registry
from carelens.network.partition import partition_npz
from carelens.network.runtime import loopback_network, run_job, stop

from .conftest import CANARY_MRNS, CANARY_NAMES

SITES = {"north": {"share": 0.035}, "south": {"share": 0.035}, "east": {"share": 0.035, "positive": 0.5}}


def _plant_canaries(path: Path) -> None:
    with np.load(path) as data:
        payload = {k: data[k] for k in data.files}
    for split in ("train", "val", "test"):
        n = len(payload[f"{split}_labels"])
        payload[f"{split}_patient_name"] = np.asarray([CANARY_NAMES[i % 2] for i in range(n)])
        payload[f"{split}_patient_id"] = np.asarray([f"{CANARY_MRNS[i % 2]}-{i % 7}" for i in range(n)])
    np.savez(path, **payload)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_hub_and_three_sites_train_with_secagg_survive_a_dropout_and_validate(
    tmp_path: Path, shared_data: Path
) -> None:
    files = partition_npz(shared_data / "imaging" / "pneumoniamnist.npz", tmp_path / "data", SITES, seed=3)
    _plant_canaries(files["north"])
    store = tmp_path / "store"
    # one torch thread per site: three sites share the test machine's few cores
    with loopback_network(store, files, capture=tmp_path / "capture", threads=1, grace=2) as net:
        hub_address = net.address
        south_log = store.resolve() / "network" / "sites" / "south" / "outbound.jsonl"

        def drop_south_in_round_two() -> None:
            # the roll call's reply, then 4 SecAgg+ replies per round: the 6th is south's first of round 2
            deadline = time.monotonic() + 800
            while _lines(south_log) < 6 and time.monotonic() < deadline:
                time.sleep(0.5)
            stop(net.nodes["south"], grace=1)

        killer = threading.Thread(target=drop_south_in_round_two, daemon=True)
        killer.start()
        settings = {"rounds": 2, "min-sites": 2, "expected-sites": 3, "timeout": 150, "cohort": "test slices"}
        result = run_job(hub_address, store, settings, timeout=1100, quiet=True)
        killer.join(timeout=5)

        assert result["rounds_adopted"] == 2
        assert result["ok"] is False and result["status"] == "failed"  # a site failed in round 2: the run did too
        assert any(line.startswith("round 2: south:") for line in result["failures"])
        entry = Registry(store).entry(result["model_id"])
        assert entry.package["status"] == "failed" and entry.package["failures"] == result["failures"]
        rounds = entry.training["rounds_log"]
        assert rounds[0]["sites"] == ["east", "north", "south"] and rounds[0]["adopted"]
        assert rounds[1]["sites"] == ["east", "north"] and rounds[1]["adopted"]
        assert any(e["round"] == "2" and e["node"] == "south" for e in entry.training["events"])
        assert entry.training["privacy"]["secure_aggregation"].startswith("SecAgg+")
        counts = {s["site"]: s["counts"]["train"] for s in entry.lineage["sites"]}
        assert set(counts) == {"north", "south", "east"} and all(c > 100 for c in counts.values())
        east = next(s for s in entry.lineage["sites"] if s["site"] == "east")["label_counts"]["train"]
        assert abs(east["pneumonia"] - east["normal"]) <= 2  # the skewed site: half normal, unlike the others
        by_site = {s["site"]: s for s in result["sites"]}
        assert "refused" in by_site.get("south", {"refused": "gone"})
        assert 0.0 <= by_site["north"]["metrics"]["auc"]["value"] <= 1.0

        validation = run_job(
            hub_address, store, {"mode": "validate", "model": entry.id, "min-sites": 2, "timeout": 150}, quiet=True
        )
        exported = Registry(store).export(entry.id)
        # record 1: the validation at the end of training (south refused: it had dropped out); record 2: hub validate
        assert [r["kind"] for r in exported["records"]] == ["validation", "validation"] and validation["record"] == 2
        at_training = {s["site"]: s for s in exported["records"][0]["content"]["sites"]}
        assert "refused" in at_training.get("south", {"refused": "gone"})
        assert isinstance(at_training["north"]["passed"], bool)
        validated = {s["site"] for s in exported["records"][1]["content"]["sites"] if "refused" not in s}
        assert validated == {"north", "east"}
        assert exported["hti1"]["local_validity"] and len(exported["hti1"]) == 31

        blobs = b"".join(p.read_bytes() for p in (tmp_path / "capture" / "north").glob("*.bin"))
        assert len(list((tmp_path / "capture" / "north").glob("*.bin"))) >= 10  # roll call, 8 SecAgg+, evaluations
        hub_side = json.dumps([result, validation, exported]).encode()
        for canary in [*CANARY_NAMES, *CANARY_MRNS, "CANARY"]:
            assert canary.encode() not in blobs and canary.encode() not in hub_side
