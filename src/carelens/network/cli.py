"""Command-line commands of carelens.network: ``carelens node start`` and
``carelens hub start|train|validate`` (the partner network, on Flower)."""

from __future__ import annotations

from pathlib import Path

import typer

from carelens.core.errors import UsageError
from carelens.core.options import store_option
from carelens.core.output import emit_json

hub = typer.Typer(
    help="The partner-network hub: aggregates site updates, runs federated validation.", no_args_is_help=True
)
node = typer.Typer(
    help="A partner site's node: trains and validates on local data that never leaves.", no_args_is_help=True
)

StoreOpt = store_option()
HubOpt = typer.Option("127.0.0.1:9092", "--hub", help="Hub address host:port.")
CaOpt = typer.Option(
    None, "--ca", help="The hub's CA certificate (ca.crt from `hub certs`): required unless the hub is loopback."
)


def _store(store: Path | None) -> Path:
    from carelens.core.config import load_settings

    return store or load_settings().store


def _serve(proc, log: Path) -> None:
    from carelens.core.errors import InputError
    from carelens.network.runtime import serve

    code = serve(proc)
    if code:
        raise InputError(f"process exited with status {code}; see {log}")


@hub.command("start")
def hub_start(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(9092, "--port", help="Port of the hub's API (sites and jobs connect here)."),
    tls: Path | None = typer.Option(
        None, "--tls", help="Folder from `hub certs`: TLS and node authentication (required unless --host is loopback)."
    ),
    store: Path | None = StoreOpt,
) -> None:
    """Run the hub (a Flower SuperLink) until stopped: on loopback it may run without TLS; on any
    other address only with TLS and node authentication (sites registered with `hub add-site`)."""
    from carelens.network.runtime import hub_command, network_dir, start_hub

    hub_command(host, port, tls)  # the options checked before anything starts
    log = network_dir(_store(store)) / "hub" / "superlink.log"
    proc = start_hub(_store(store), host, port, tls=tls)
    security = "TLS, registered nodes only" if tls else "loopback, no TLS"
    typer.echo(f"hub listening on {host}:{port} ({security}; log: {log})", err=True)
    _serve(proc, log)


@hub.command("train")
def hub_train(
    rounds: int = typer.Option(3, "--rounds", help="Federated rounds."),
    strategy: str = typer.Option(
        "fedavg", "--strategy", help="fedavg, fedprox or fedbn (FedAvg with batch norm kept at each site)."
    ),
    min_sites: int = typer.Option(2, "--min-sites", help="A round needs at least this many site updates."),
    sites: int | None = typer.Option(None, "--sites", help="Sites to wait for before starting (default: --min-sites)."),
    local_epochs: int = typer.Option(1, "--local-epochs", help="Local epochs per round at each site."),
    local_steps: int = typer.Option(
        0, "--local-steps", help="Instead: at least this many batches per round at each site (small sites repeat)."
    ),
    site_weighting: str = typer.Option(
        "examples", "--site-weighting", help="examples (FedAvg: by training images) or equal (each site the same)."
    ),
    lr: float = typer.Option(1e-3, "--lr", help="Local learning rate."),
    proximal_mu: float = typer.Option(0.01, "--proximal-mu", help="FedProx proximal term weight."),
    dp_noise: float = typer.Option(0.0, "--dp-noise", help="DP noise multiplier (0 = no differential privacy)."),
    dp_clip: float = typer.Option(1.0, "--dp-clip", help="DP clipping norm of each site's update."),
    secagg: bool = typer.Option(True, "--secagg/--no-secagg", help="Secure aggregation (SecAgg+), on by default."),
    arch: str = typer.Option("cnn", "--arch", help="Network (as `image train --arch`); every site builds the same."),
    image_size: int = typer.Option(
        28, "--image-size", help="Input size in px: each site's data file must hold images of this size."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and of the sites' shuffling."),
    name: str = typer.Option("carelens-federated-cnn", "--name", help="Model name in the registry."),
    card: Path | None = typer.Option(None, "--card", help="Model card JSON (HTI-1 attribute keys) to attach."),
    cohort: str = typer.Option("", "--cohort", help="Cohort definition recorded in the lineage."),
    timeout: int = typer.Option(300, "--timeout", help="Seconds to wait for the sites in each protocol step."),
    hub_address: str = HubOpt,
    ca: Path | None = CaOpt,
    store: Path | None = StoreOpt,
) -> None:
    """Train the carelens image model across the connected sites; prints the new registry entry."""
    from carelens.network.runtime import run_job

    if rounds < 1 or min_sites < 1:
        raise UsageError("--rounds and --min-sites must be at least 1")
    if card is not None and not card.is_file():
        raise UsageError(f"--card {card.name}: file not found")
    settings = {
        "mode": "train",
        "rounds": rounds,
        "strategy": strategy,
        "min-sites": min_sites,
        "expected-sites": sites or min_sites,
        "local-epochs": local_epochs,
        "local-steps": local_steps,
        "site-weighting": site_weighting,
        "lr": lr,
        "proximal-mu": proximal_mu,
        "dp-noise": dp_noise,
        "dp-clip": dp_clip,
        "secagg": secagg,
        "arch": arch,
        "image-size": image_size,
        "seed": seed,
        "name": name,
        "card": str(card.resolve()) if card else "",
        "cohort": cohort,
        "timeout": timeout,
    }
    from carelens.imaging.networks import ARCHS

    if arch not in ARCHS:
        raise UsageError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    if not 28 <= image_size <= 512:
        raise UsageError("--image-size must be between 28 and 512")
    if site_weighting not in ("examples", "equal"):
        raise UsageError(f"unknown site weighting {site_weighting!r}: choose examples or equal")
    from carelens.network.strategy import STRATEGIES

    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    _report(run_job(hub_address, _store(store), settings, root_cert=ca))


def _report(result: dict) -> None:
    """The job's JSON on stdout; a run with any failed site (or a model no better than chance)
    also exits non-zero with a one-line reason."""
    from carelens.core.errors import InputError

    emit_json(result)
    if not result.get("ok"):
        failures = result.get("failures") or ["unknown reason"]
        raise InputError(f"federated {result.get('mode', 'job')} failed: {'; '.join(failures)}"[:400])


@hub.command("validate")
def hub_validate(
    model: str = typer.Argument(..., help="Registered model id, id prefix or name."),
    split: str = typer.Option("test", "--split", help="Which split each site scores: train, val or test."),
    min_sites: int = typer.Option(1, "--min-sites", help="Fail unless at least this many sites return results."),
    sites: int | None = typer.Option(None, "--sites", help="Sites to wait for before starting."),
    timeout: int = typer.Option(300, "--timeout", help="Seconds to wait for the sites' results."),
    hub_address: str = HubOpt,
    ca: Path | None = CaOpt,
    store: Path | None = StoreOpt,
) -> None:
    """Each site scores MODEL on its own data and returns aggregate metrics only (small cells
    suppressed); the cross-site report is appended to the model's registry entry."""
    from carelens.models import Registry
    from carelens.network.runtime import run_job

    if split not in ("train", "val", "test"):
        raise UsageError("--split must be train, val or test")
    entry = Registry(_store(store)).entry(model)
    settings = {
        "mode": "validate",
        "model": entry.id,
        "arch": entry.arch,
        "image-size": int(entry.training.get("image_size", 28)),
        "split": split,
        "min-sites": min_sites,
        "expected-sites": sites or min_sites,
        "timeout": timeout,
    }
    _report(run_job(hub_address, _store(store), settings, root_cert=ca))


@hub.command("certs")
def hub_certs(
    folder: Path = typer.Argument(..., help="Folder for the CA and the hub's certificate and key."),
    hosts: list[str] = typer.Option(..., "--host", help="Name or address the sites dial (repeatable)."),
) -> None:
    """Make a private CA and the hub's TLS certificate (give ca.crt to every site; keep the keys)."""
    from carelens.network.security import make_certs

    emit_json(make_certs(folder, hosts))


@hub.command("add-site")
def hub_add_site(
    public_key: Path = typer.Argument(..., help="The site's public key (SITE.pub from `node keygen`)."),
    hub_address: str = HubOpt,
    ca: Path | None = CaOpt,
    store: Path | None = StoreOpt,
) -> None:
    """Register a site's public key with the running hub: only registered nodes may connect."""
    from carelens.network.runtime import register_site

    if not public_key.is_file():
        raise UsageError(f"{public_key.name}: file not found")
    typer.echo(register_site(hub_address, _store(store), public_key, ca))


@node.command("keygen")
def node_keygen(
    folder: Path = typer.Argument(..., help="Folder for SITE.key (stays here) and SITE.pub (for the hub)."),
    site: str = typer.Option(..., "--site", help="This site's name."),
) -> None:
    """Make this site's key pair for node authentication; send SITE.pub to the hub's operator."""
    from carelens.network.runtime import check_site_name
    from carelens.network.security import make_node_key

    check_site_name(site)
    emit_json(make_node_key(folder, site))


@node.command("start")
def node_start(
    site: str = typer.Option(..., "--site", help="This site's name (letters, digits, '.', '_', '-')."),
    data: Path = typer.Option(..., "--data", help="The site's data: a .npz file or a folder holding one."),
    hub_address: str = HubOpt,
    port: int | None = typer.Option(None, "--port", help="Local port for the node's app runtime (default: free)."),
    capture: Path | None = typer.Option(
        None, "--capture-outbound", help="Keep a copy of every message that leaves the site in this folder."
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for training (default: torch's)."),
    ca: Path | None = CaOpt,
    key: Path | None = typer.Option(
        None, "--key", help="This site's private key (`node keygen`): required unless the hub is loopback."
    ),
    store: Path | None = StoreOpt,
) -> None:
    """Run a site node (a Flower SuperNode) until stopped; it refuses to start on data that fails
    the schema check."""
    from carelens.network.runtime import check_site_name, network_dir, node_security, start_node
    from carelens.network.sitedata import describe, load_site_data

    check_site_name(site)
    node_security(hub_address, ca, key)
    summary = describe(load_site_data(data, site))  # a node never starts on data it cannot use
    typer.echo(f"site {site}: data passed the schema check: {summary['counts']}", err=True)
    log = network_dir(_store(store)) / "sites" / site / "supernode.log"
    proc = start_node(
        site, data, hub_address, _store(store), port, capture, threads=threads, root_cert=ca, auth_key=key
    )
    typer.echo(f"site {site}: node started, joining hub {hub_address} (log: {log})", err=True)
    _serve(proc, log)


@node.command("prepare-site")
def node_prepare_site(
    folder: Path = typer.Argument(..., help="The site's images (PNG, JPEG or DICOM) with a labels CSV."),
    out: Path = typer.Option(..., "--out", help="The site data file to write (.npz)."),
    labels: Path | None = typer.Option(None, "--labels", help="The labels CSV (default: labels.csv in FOLDER)."),
    image_size: int = typer.Option(28, "--image-size", help="Images are resized to this many pixels square."),
) -> None:
    """Make a site's data file for `node start --data`: images and labels (two classes) split
    70/15/15 by patient_id unless the CSV has a split column; optional patient_id, sex and
    age_group columns travel along (only counts ever leave the site). Prints {"out", "counts",
    "label_counts", "labels", "left_out"}."""
    from carelens.network.prepare import prepare_site

    if image_size < 8:
        raise UsageError("--image-size must be at least 8")
    if out.suffix != ".npz":
        raise UsageError("--out must name a .npz file")
    emit_json(prepare_site(folder, out, labels, image_size))


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
    app.add_typer(hub, name="hub")
    app.add_typer(node, name="node")
