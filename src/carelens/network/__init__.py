"""carelens.network: federation with partner sites on Flower.

Each site runs a node (a Flower SuperNode) that trains and validates the carelens image model on
its own data; the hub (a SuperLink) aggregates with FedAvg or FedProx under SecAgg+, optionally
with differential privacy, and registers the result in the model registry. What may leave a site
is enforced by the site's outbound guard; the hub screens every reply before aggregation.

The Flower apps live in ``carelens.network.server_app`` and ``carelens.network.client_app``; the
names below load lazily (torch and flwr load on first use).
"""

from __future__ import annotations

from carelens.core.lazy import lazy_exports

_EXPORTS = {
    "SiteData": "carelens.network.sitedata",
    "SiteSplit": "carelens.network.sitedata",
    "load_site_data": "carelens.network.sitedata",
    "check_schema": "carelens.network.sitedata",
    "describe": "carelens.network.sitedata",
    "site_metrics": "carelens.network.metrics",
    "pooled": "carelens.network.metrics",
    "MIN_CELL": "carelens.network.metrics",
    "GuardRefusal": "carelens.network.guard",
    "check_result": "carelens.network.guard",
    "METRIC_KEY": "carelens.network.guard",
    "Journal": "carelens.network.strategy",
    "make_strategy": "carelens.network.strategy",
    "epsilon_spent": "carelens.network.strategy",
    "ScreenedGrid": "carelens.network.screen",
    "screen_reply": "carelens.network.screen",
    "start_hub": "carelens.network.runtime",
    "start_node": "carelens.network.runtime",
    "run_job": "carelens.network.runtime",
    "stop": "carelens.network.runtime",
    "wait_for_port": "carelens.network.runtime",
    "free_port": "carelens.network.runtime",
    "serve": "carelens.network.runtime",
    "register_site": "carelens.network.runtime",
    "prepare_site": "carelens.network.prepare",
    "make_certs": "carelens.network.security",
    "make_node_key": "carelens.network.security",
    "is_loopback": "carelens.network.security",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
