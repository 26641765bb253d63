"""Training leaves the process's torch thread count as it found it, also when it fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from carelens.imaging import load_npz
from carelens.imaging.trainer import TrainConfig, fit_network, train


@pytest.fixture
def two_threads() -> Iterator[int]:
    """The process on 2 torch threads during the test, back to what it was after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def test_fit_network_restores_the_thread_count(synthetic_npz: Path, two_threads: int) -> None:
    seen: list[int] = []

    def clock() -> float:
        seen.append(torch.get_num_threads())
        return 0.0

    cfg = TrainConfig(max_epochs=1, arch_options={"width": 8}, threads=1)
    fit_network(load_npz(synthetic_npz, "train"), load_npz(synthetic_npz, "val"), cfg, clock)
    assert seen[-1] == 1  # trained on cfg.threads
    assert torch.get_num_threads() == two_threads


def test_fit_network_restores_the_thread_count_when_training_fails(synthetic_npz: Path, two_threads: int) -> None:
    seen: list[int] = []

    def clock() -> float:  # the first epoch's first reading fails
        seen.append(torch.get_num_threads())
        if len(seen) > 1:
            raise RuntimeError("training failed")
        return 0.0

    cfg = TrainConfig(max_epochs=1, arch_options={"width": 8}, threads=1)
    with pytest.raises(RuntimeError, match="training failed"):
        fit_network(load_npz(synthetic_npz, "train"), load_npz(synthetic_npz, "val"), cfg, clock)
    assert seen[-1] == 1
    assert torch.get_num_threads() == two_threads


def test_train_restores_the_thread_count(synthetic_npz: Path, tmp_path: Path, two_threads: int) -> None:
    train(synthetic_npz, tmp_path / "p", TrainConfig(max_epochs=1, arch_options={"width": 8}, bootstrap=10, threads=1))
    assert torch.get_num_threads() == two_threads
