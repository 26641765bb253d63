"""Aggregation strategies (Flower's FedAvg / FedProx, optionally wrapped for differential
privacy) with the hub's rules: a round needs ``min_sites`` answers, every failure is logged,
and an aggregate that is not finite is never adopted."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.common import FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, FedProx, Strategy

# fedbn: FedAvg over every layer but batch norm, whose parameters and statistics stay at each site (FedBN, Li et
# al. 2021), for sites whose images differ in intensity and texture (e.g. pediatric beside adult radiographs).
STRATEGIES = ("fedavg", "fedprox", "fedbn")
# How site updates are weighted in the average: by training examples (FedAvg), or equally (each site reports a
# weight of 1, so a small site is not drowned by a large one whose images differ: e.g. adult beside pediatric).
SITE_WEIGHTINGS = ("examples", "equal")
# The weight each site reports under "equal". Not 1: SecAgg+ multiplies a site's weights by weight / max_weight
# (hub default 10,000) before quantising them to 2^22 steps over +-32, so a weight of 1 leaves a step of ~0.15 in
# the weights themselves and the averaged model collapses to a constant output; 1,000 leaves ~1.5e-4.
EQUAL_SITE_WEIGHT = 1000


@dataclass
class Journal:
    """What happened, round by round: who took part, who failed and why, rounds skipped."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)

    def event(self, server_round: int | str, what: str, **detail: Any) -> None:
        self.events.append({"round": server_round, "event": what, **detail})


def _reason(failure: Any) -> str:
    if isinstance(failure, BaseException):
        return " ".join(str(failure).split())[:300] or type(failure).__name__
    return "site returned an unusable result"


class _HubRules:
    """Mixed into a Flower strategy: the minimum-site rule, logging, and finiteness checks."""

    min_sites: int
    journal: Journal

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        sites = []
        for _proxy, res in results:
            site = str(res.metrics.get("site", "unnamed"))
            sites.append(site)
            info = {k: v for k, v in res.metrics.items() if k.startswith("n_")}
            self.journal.sites.setdefault(site, {}).update(info)
        for failure in failures:
            self.journal.event(server_round, "site failed", reason=_reason(failure))
        summary = {"round": server_round, "sites": sorted(sites), "failures": len(failures)}
        self.journal.rounds.append(summary)
        if len(results) < self.min_sites:
            self.journal.event(
                server_round,
                "round skipped",
                reason=f"{len(results)} site(s) answered, the minimum is {self.min_sites}; model unchanged",
            )
            summary["adopted"] = False
            return None, {}
        parameters, metrics = super().aggregate_fit(server_round, results, failures)  # type: ignore[misc]
        if parameters is not None and not all(np.isfinite(a).all() for a in parameters_to_ndarrays(parameters)):
            self.journal.event(server_round, "round skipped", reason="aggregate holds non-finite values")
            summary["adopted"] = False
            return None, {}
        summary["adopted"] = parameters is not None
        if parameters is not None:  # SecAgg+ dequantises to float64; the model travels as float32
            parameters = ndarrays_to_parameters([a.astype(np.float32) for a in parameters_to_ndarrays(parameters)])
        losses = [float(r.metrics["loss"]) for _, r in results if isinstance(r.metrics.get("loss"), int | float)]
        if losses:
            summary["mean_site_loss"] = float(np.mean(losses))
        return parameters, metrics


class HubFedAvg(_HubRules, FedAvg):
    """FedAvg (weighted by site example counts) under the hub's rules."""


class HubFedProx(_HubRules, FedProx):
    """FedProx (FedAvg plus a proximal term at the sites, for non-identical site data)."""


class HubDP(DifferentialPrivacyClientSideFixedClipping):
    """Central DP with client-side clipping (works with SecAgg+): sites clip their update, the
    hub adds Gaussian noise to the aggregate. Flower skips a round with any failure (the noise
    is calibrated to the sampled number of sites); the skip is logged."""

    def __init__(self, strategy: Strategy, journal: Journal, **kw: Any) -> None:
        super().__init__(strategy, **kw)
        self.journal = journal

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> tuple[Parameters | None, dict]:
        if failures or len(results) != self.num_sampled_clients:
            for failure in failures:
                self.journal.event(server_round, "site failed", reason=_reason(failure))
            self.journal.event(
                server_round,
                "round skipped",
                reason="differential privacy needs every sampled site in the round; model unchanged",
            )
            self.journal.rounds.append({"round": server_round, "sites": [], "adopted": False})
            return None, {}
        return super().aggregate_fit(server_round, results, failures)


def make_strategy(
    name: str,
    initial: list[np.ndarray],
    journal: Journal,
    min_sites: int = 2,
    local_epochs: int = 1,
    lr: float = 1e-3,
    proximal_mu: float = 0.01,
    dp_noise: float = 0.0,
    dp_clip: float = 1.0,
    expected_sites: int | None = None,
    site_weighting: str = "examples",
    local_steps: int = 0,
) -> Strategy:
    """A Flower strategy for the hub: ``fedavg``, ``fedprox`` or ``fedbn`` (``initial`` then holds
    only the shared layers; sites weighted by ``site_weighting``, see :data:`SITE_WEIGHTINGS`); with
    ``dp_noise`` > 0, wrapped
    in Flower's client-side-clipping DP (noise multiplier ``dp_noise``, clip norm ``dp_clip``)."""
    if site_weighting not in SITE_WEIGHTINGS:
        from carelens.core.errors import UsageError

        raise UsageError(f"unknown site weighting {site_weighting!r}: choose one of {', '.join(SITE_WEIGHTINGS)}")
    if name not in STRATEGIES:
        from carelens.core.errors import UsageError

        raise UsageError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")

    def fit_config(server_round: int) -> dict[str, Scalar]:
        config: dict[str, Scalar] = {"local_epochs": local_epochs, "local_steps": local_steps, "lr": lr}
        config["round"] = server_round
        return config | {"site_weighting": site_weighting, "site_local": name == "fedbn"}

    common: dict[str, Any] = {
        "fraction_fit": 1.0,
        "fraction_evaluate": 0.0,
        "min_fit_clients": min_sites,
        "min_evaluate_clients": 0,
        "min_available_clients": min_sites,
        "on_fit_config_fn": fit_config,
        "initial_parameters": ndarrays_to_parameters(initial),
        "accept_failures": True,
    }
    strategy: Strategy
    strategy = HubFedProx(proximal_mu=proximal_mu, **common) if name == "fedprox" else HubFedAvg(**common)
    strategy.min_sites = min_sites
    strategy.journal = journal
    if dp_noise > 0:
        strategy = HubDP(
            strategy,
            journal,
            noise_multiplier=dp_noise,
            clipping_norm=dp_clip,
            num_sampled_clients=expected_sites or min_sites,
        )
    return strategy


def epsilon_spent(noise_multiplier: float, rounds: int, delta: float = 1e-5) -> float:
    """Site-level (epsilon, delta)-DP of ``rounds`` Gaussian releases of the clipped sum with
    noise ``noise_multiplier`` x clip norm and every site in every round (no subsampling), from
    Google's ``dp_accounting`` privacy-loss-distribution accountant (tight composition)."""
    if noise_multiplier <= 0:
        return math.inf
    import dp_accounting
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant

    accountant = PLDAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)
    return float(accountant.get_epsilon(delta))
