"""The clock a time budget is counted on: ``--budget-clock`` of ``image train`` and ``image adapt``, and its record."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.imaging.clocks import BUDGET_CLOCKS, clock_name
from carelens.imaging.trainer import TrainConfig, train

from .conftest import TickClock

runner = CliRunner()


def _unread() -> float:
    raise AssertionError("the budget was read on the clock not chosen")


@pytest.fixture
def fake_clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both budget clocks replaced by clocks that fail when read; a test installs a ticking one for the chosen name."""
    for name in BUDGET_CLOCKS:
        monkeypatch.setitem(BUDGET_CLOCKS, name, _unread)


@pytest.mark.parametrize("chosen", ["wall", "cpu"])
def test_cli_train_counts_its_budget_on_the_chosen_clock(
    chosen: str, synthetic_npz: Path, tmp_path: Path, fake_clocks: None
) -> None:
    BUDGET_CLOCKS[chosen] = TickClock()  # a tick per reading: the 10 s budget runs out within the first epochs
    option = ["--budget-clock", chosen] if chosen == "cpu" else []  # wall is the default
    result = runner.invoke(app, ["image", "train", "--data", str(synthetic_npz), "--out", str(tmp_path / "p"),
                                 "--time-budget", "10", "--max-epochs", "50", "--threads", "1", *option])  # fmt: skip
    assert result.exit_code == 0, result.output
    training = json.loads((tmp_path / "p" / "model.json").read_text())["training"]
    assert training["stopped_because"] == "time_budget" and training["epochs_run"] < 50
    assert training["budget_clock"] == chosen and training["time_budget_s"] == 10.0


def test_cli_adapt_counts_its_budget_on_the_cpu_clock(synthetic_npz: Path, tmp_path: Path, fake_clocks: None) -> None:
    parent = tmp_path / "parent"
    train(synthetic_npz, parent, TrainConfig(max_epochs=1, arch_options={"width": 8}, bootstrap=10))
    BUDGET_CLOCKS["cpu"] = TickClock()
    result = runner.invoke(app, ["image", "adapt", str(parent), "--data", str(synthetic_npz), "--out",
                                 str(tmp_path / "a"), "--folds", "0", "--no-register", "--time-budget", "10",
                                 "--budget-clock", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    training = json.loads((tmp_path / "a" / "model.json").read_text())["training"]
    assert training["stopped_because"] == "time_budget" and training["epochs_run"] < 80  # adapt's max_epochs
    assert training["budget_clock"] == "cpu"


def test_the_recorded_name_of_a_clock() -> None:
    assert clock_name(time.monotonic) == "wall" and clock_name(time.process_time) == "cpu"
    assert clock_name(TickClock()) == "custom"
