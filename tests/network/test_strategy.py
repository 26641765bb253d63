"""The hub's aggregation rules: minimum sites, failures logged, nothing non-finite adopted, DP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

from carelens.network.strategy import EQUAL_SITE_WEIGHT, HubDP, Journal, epsilon_spent, make_strategy


def _res(value: float, n: int, site: str) -> tuple[None, FitRes]:
    params = ndarrays_to_parameters([np.full((2, 2), value, np.float32)])
    return None, FitRes(Status(Code.OK, "Success"), params, n, {"site": site, "n_train": n, "loss": 0.5})


def _strategy(journal: Journal, **kw: object):
    return make_strategy("fedavg", [np.zeros((2, 2), np.float32)], journal, min_sites=2, **kw)  # type: ignore[arg-type]


def test_weighted_average_with_a_failed_site_logged() -> None:
    journal = Journal()
    params, _ = _strategy(journal).aggregate_fit(1, [_res(1.0, 30, "a"), _res(4.0, 10, "b")], [RuntimeError("gone")])
    assert params is not None
    assert np.allclose(parameters_to_ndarrays(params)[0], 1.75)  # (30*1 + 10*4) / 40
    assert journal.rounds[0]["sites"] == ["a", "b"] and journal.rounds[0]["adopted"]
    assert journal.events == [{"round": 1, "event": "site failed", "reason": "gone"}]
    assert journal.sites["a"]["n_train"] == 30


def test_round_below_the_minimum_is_skipped_not_averaged() -> None:
    journal = Journal()
    params, _ = _strategy(journal).aggregate_fit(2, [_res(1.0, 30, "a")], [RuntimeError("timeout")])
    assert params is None and not journal.rounds[0]["adopted"]
    assert any(e["event"] == "round skipped" and "minimum is 2" in e["reason"] for e in journal.events)


def test_non_finite_aggregate_is_never_adopted() -> None:
    journal = Journal()
    params, _ = _strategy(journal).aggregate_fit(1, [_res(np.inf, 30, "a"), _res(1.0, 10, "b")], [])
    assert params is None and "non-finite" in journal.events[-1]["reason"]


def test_dp_wrapper_adds_noise_and_skips_rounds_with_dropouts() -> None:
    journal = Journal()
    strategy = _strategy(journal, dp_noise=1.0, dp_clip=0.5, expected_sites=2)
    assert isinstance(strategy, HubDP)
    params, _ = strategy.aggregate_fit(1, [_res(1.0, 30, "a"), _res(1.0, 30, "b")], [])
    assert params is not None and not np.allclose(parameters_to_ndarrays(params)[0], 1.0)
    skipped, _ = strategy.aggregate_fit(2, [_res(1.0, 30, "a")], [RuntimeError("gone")])
    assert skipped is None and "differential privacy" in journal.events[-1]["reason"]


def test_dp_epsilon_and_site_counts_reach_the_registry_entry(tmp_path: Path) -> None:
    from carelens.models import Registry
    from carelens.network.local import get_weights, new_model
    from carelens.network.screen import ScreenedGrid
    from carelens.network.server_app import _register, privacy_record

    journal = Journal()
    journal.sites = {"north": {"n_train": 120, "n_train_pos": 80}, "east": {"n_train": 100, "n_train_pos": 50}}
    model = new_model()
    privacy = privacy_record(True, 1.1, 0.5, 3)
    evaluation = {"split": "test", "sites": [], "pooled": {}}
    cfg = {"store": str(tmp_path), "rounds": 3}
    grid = ScreenedGrid(None, journal)
    model_id, _ = _register(cfg, model, get_weights(model), journal, evaluation, privacy, grid, 3, {"status": "ok"})
    exported = Registry(tmp_path).export(model_id)
    dp = exported["training"]["privacy"]["differential_privacy"]
    assert dp["epsilon"] == pytest.approx(epsilon_spent(1.1, 3), abs=1e-4) and dp["clipping_norm"] == 0.5
    assert exported["training"]["privacy"]["secure_aggregation"].startswith("SecAgg+")
    assert {s["site"]: s["counts"]["train"] for s in exported["lineage"]["sites"]} == {"east": 100, "north": 120}
    assert "differential_privacy" not in privacy_record(True, 0.0, 1.0, 3)


def test_fedprox_term_keeps_a_site_near_the_global_model(site_npz: Path) -> None:
    import torch

    from carelens.network.local import fit, get_weights, new_model, set_weights
    from carelens.network.sitedata import load_site_data
    from carelens.network.strategy import HubFedProx

    assert isinstance(make_strategy("fedprox", [np.zeros(2, np.float32)], Journal(), proximal_mu=0.5), HubFedProx)
    train = load_site_data(site_npz, "north").split("train")
    start = get_weights(new_model())

    def drift(mu: float) -> float:
        model = new_model()
        set_weights(model, start)
        fit(model, train, epochs=3, lr=1e-2, proximal_mu=mu)
        return float(
            sum(
                ((torch.from_numpy(a) - torch.from_numpy(b)) ** 2).sum()
                for a, b in zip(get_weights(model), start, strict=True)
            )
        )

    assert drift(5.0) < 0.5 * drift(0.0)


def test_equal_site_weighting_reaches_the_site_and_weighs_each_site_the_same(site_npz: Path) -> None:
    """With ``site_weighting="equal"`` the fit config asks each site to report the same weight, so a small
    site's update counts as much as a large one's (the adult site beside PneumoniaMNIST)."""
    from flwr.common import Context, RecordDict

    from carelens.network.client_app import SiteClient
    from carelens.network.local import get_weights, new_model

    journal = Journal()
    equal = _strategy(journal, site_weighting="equal")
    config = equal.on_fit_config_fn(1)  # type: ignore[attr-defined]
    assert (
        config["site_weighting"] == "equal" and _strategy(Journal()).on_fit_config_fn(1)["site_weighting"] == "examples"
    )  # type: ignore[attr-defined]
    context = Context(run_id=1, node_id=1, node_config={"site": "north", "data": str(site_npz)}, state=RecordDict(),
                      run_config={"arch": "cnn", "image-size": 28, "seed": 0})  # fmt: skip
    client = SiteClient(context)
    weights = get_weights(new_model())
    _, weight, metrics = client.fit(weights, {**config, "local_epochs": 1})
    assert weight == EQUAL_SITE_WEIGHT and metrics["n_train"] == 60  # the count still reaches the lineage
    _, weight, _ = client.fit(weights, {**config, "site_weighting": "examples", "local_epochs": 1})
    assert weight == 60
    params, _ = equal.aggregate_fit(1, [_res(1.0, 1, "a"), _res(4.0, 1, "b")], [])
    assert params is not None and np.allclose(parameters_to_ndarrays(params)[0], 2.5)
    with pytest.raises(Exception, match="site weighting"):
        _strategy(Journal(), site_weighting="by-size")


def test_equal_site_weight_survives_secagg_quantisation() -> None:
    """SecAgg+ scales a site's weights by weight / max_weight, then quantises them (the hub's settings): the
    equal-weighting weight keeps the weights to 1e-3, where a weight of 1 would not (the collapse seen before)."""
    from flwr.common.secure_aggregation.quantization import dequantize, quantize

    params = np.random.default_rng(0).normal(0, 0.3, 1000)

    def round_trip_error(weight: float, max_weight: float = 10000.0) -> float:
        ratio = weight / max_weight
        back = dequantize(quantize([params * ratio], 32.0, 4194304), 32.0, 4194304)[0] / ratio
        return float(np.abs(back - params).max())

    assert round_trip_error(EQUAL_SITE_WEIGHT) < 1e-3
    assert round_trip_error(1) > 0.05
