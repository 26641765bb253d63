"""FedBN: batch-norm layers stay at each site (never sent, kept between rounds and after the run),
the hub averages the rest, and the registry entry says which layers are site-local."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.common import Context, RecordDict

from carelens.core.errors import InputError
from carelens.network.client_app import SiteClient
from carelens.network.local import (
    get_local_state,
    get_weights,
    local_epochs,
    new_model,
    set_local_state,
    site_local_keys,
    site_local_layers,
)
from carelens.network.strategy import Journal, make_strategy


def _client(site: str, data: Path, home: Path, run_id: int = 11) -> SiteClient:
    config = {"site": site, "data": str(data), "site-state": str(home / "site-local")}
    return SiteClient(Context(run_id=run_id, node_id=7, node_config=config, state=RecordDict(), run_config={}))


def test_site_local_layers_are_the_batch_norm_layers_and_never_travel() -> None:
    model = new_model()
    layers = site_local_layers(model)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(layers) == len(bn) == 6
    keys = site_local_keys(model)
    kinds = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert {k.rsplit(".", 1)[1] for k in keys} == kinds
    shared, everything = get_weights(model, site_local=True), get_weights(model)
    assert len(everything) - len(shared) == 4 * len(layers)  # the counters never travel either way
    local = {k: v + 1 if v.is_floating_point() else v for k, v in get_local_state(model).items()}
    other = new_model(seed=3)
    set_local_state(other, local)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in local.items())
    with pytest.raises(ValueError, match="batch-norm"):
        set_local_state(other, {k: v for k, v in local.items() if "block1a" not in k})


def test_fedbn_site_keeps_its_layers_between_rounds_and_for_its_scoring(site_npz: Path, tmp_path: Path) -> None:
    client = _client("north", site_npz, tmp_path)
    start = get_weights(new_model(), site_local=True)
    config = {"local_epochs": 1, "lr": 1e-2, "round": 1, "site_local": True}
    sent, n, metrics = client.fit(start, config)
    assert [w.shape for w in sent] == [w.shape for w in start] and n == 60 and metrics["epochs"] == 1
    kept = tmp_path / "site-local" / "11.pt"
    assert kept.is_file() and "site-local-layers" in client.context.state.array_records
    saved = torch.load(kept, weights_only=True)
    assert sorted(saved) == sorted(site_local_keys(new_model()))
    assert not torch.equal(saved["features.block1a.adn.N.running_mean"], torch.zeros(32))  # the site's statistics
    # round 2 starts from the site's own layers, not the initial ones
    client.fit(sent, {**config, "round": 2})
    again = torch.load(kept, weights_only=True)
    assert int(again["features.block1a.adn.N.num_batches_tracked"]) == 2 * int(
        saved["features.block1a.adn.N.num_batches_tracked"]
    )
    loss, n_test, result = client.evaluate(sent, {"split": "test", "site_local_run": "11"})
    assert n_test == 60 and result["site"] == "north" and np.isfinite(loss)
    # after the run (a fresh node context) the site still scores with its layers, from the file
    later = _client("north", site_npz, tmp_path, run_id=12)
    assert later.evaluate(sent, {"split": "test", "site_local_run": "11"})[1] == 60
    stranger = _client("south", site_npz, tmp_path / "elsewhere", run_id=12)
    with pytest.raises(InputError, match="did not train it"):
        stranger.evaluate(sent, {"split": "test", "site_local_run": "11"})


def test_fedbn_strategy_asks_for_site_local_layers_and_equal_steps() -> None:
    strategy = make_strategy("fedbn", [np.zeros(2, np.float32)], Journal(), local_steps=61)
    config = strategy.on_fit_config_fn(3)  # type: ignore[attr-defined]
    assert config["site_local"] is True and config["local_steps"] == 61
    assert make_strategy("fedavg", [np.zeros(2, np.float32)], Journal()).on_fit_config_fn(1)["site_local"] is False  # type: ignore[attr-defined]
    assert local_epochs(3882, steps=61) == 1 and local_epochs(434, steps=61) == 9 and local_epochs(434, epochs=2) == 2


def test_fedbn_entry_records_its_site_local_layers_and_packages_only_with_them(site_npz: Path, tmp_path: Path) -> None:
    from carelens.imaging.package import load_package
    from carelens.models import Registry
    from carelens.models.package import write_package
    from carelens.network.screen import ScreenedGrid
    from carelens.network.server_app import _register

    client = _client("north", site_npz, tmp_path)
    sent, _, _ = client.fit(get_weights(new_model(), site_local=True), {"local_epochs": 1, "site_local": True})
    journal = Journal()
    cfg = {"store": str(tmp_path / "store"), "rounds": 1, "strategy": "fedbn"}
    evaluation = {"split": "test", "sites": [], "pooled": {}}
    status = {"status": "ok", "site_local_run": "11"}
    model_id, _ = _register(cfg, new_model(), sent, journal, evaluation, {}, ScreenedGrid(None, journal), 1, status)
    registry = Registry(tmp_path / "store")
    entry = registry.entry(model_id)
    assert entry.training["site_local"]["layers"] == site_local_layers(new_model())
    assert entry.training["site_local"]["run_id"] == "11"
    assert entry.package["preprocessing"]["image_size"] == 28
    with pytest.raises(InputError, match="FedBN"):
        write_package(registry, model_id, tmp_path / "pkg")
    folder = write_package(registry, model_id, tmp_path / "pkg", tmp_path / "site-local" / "11.pt")
    package = load_package(folder)
    site = torch.load(tmp_path / "site-local" / "11.pt", weights_only=True)
    assert all(torch.equal(package.model.state_dict()[k], v) for k, v in site.items())
    assert package.meta["site_local"]["site_state"] == "11.pt"
    with pytest.raises(InputError, match="batch-norm"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
        write_package(registry, model_id, tmp_path / "pkg2", tmp_path / "bad.pt")


def test_a_federated_entry_reads_images_with_image_predict(tmp_path: Path) -> None:
    from PIL import Image

    from carelens.imaging.predict import predict_files
    from carelens.network.screen import ScreenedGrid
    from carelens.network.server_app import _register
    from carelens.run.models import load_registered, registered_image_model

    journal = Journal()
    model = new_model()
    cfg = {"store": str(tmp_path), "rounds": 1}
    evaluation = {"split": "test", "sites": [], "pooled": {}}
    _register(cfg, model, get_weights(model), journal, evaluation, {}, ScreenedGrid(None, journal), 1, {"status": "ok"})
    model_id = registered_image_model(tmp_path)  # a federated entry now counts as an image model
    assert model_id is not None
    package = load_registered(tmp_path, model_id)
    assert package.preprocessing["image_size"] == 28 and package.temperature == 1.0
    rng = np.random.default_rng(0)
    png = tmp_path / "chest.png"
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(png)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tiny)
    results, batch = predict_files(package, [png, tiny], tmp_path / "maps", explain_maps=False)
    assert len(results) == 1 and results[0].finding in ("normal", "pneumonia")
    assert sum(results[0].probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert results[0].model["id"] == package.id
    assert [q.source for q in batch.quarantined] == ["tiny.png"]
