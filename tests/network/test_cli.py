"""The network commands fail fast with one-line reasons before touching the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _carelens(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARELENS_STORE": str(store)}
    return subprocess.run(
        [sys.executable, "-m", "carelens.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_bad_invocations_exit_with_one_line_reasons(tmp_path: Path) -> None:
    unknown = _carelens("hub", "validate", "no-such-model", store=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.strip().splitlines() == [
        "error: no model 'no-such-model' in the registry (0 entries): see 'carelens models list'"
    ]
    strategy = _carelens("hub", "train", "--strategy", "fedsgd", store=tmp_path)
    assert strategy.returncode == 2 and "unknown strategy 'fedsgd'" in strategy.stderr
    site = _carelens("node", "start", "--site", "bad name!", "--data", str(tmp_path / "x.npz"), store=tmp_path)
    assert site.returncode == 1 and "site name must be" in site.stderr
    assert "tasks will be refused" in site.stderr  # the missing data file was reported first
