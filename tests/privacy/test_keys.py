"""The key service: stable, keyed, rotatable; the secret never defaults."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core.errors import UsageError
from carelens.privacy.keys import KeyService


def test_pseudonym_and_shift_stable_across_instances(keys: KeyService) -> None:
    other = KeyService(b"carelens-test-secret-0123456789abcdef")
    assert keys.pseudonym("p1") == other.pseudonym("p1")
    assert keys.date_shift("p1") == other.date_shift("p1")
    assert keys.pseudonym("p1") != keys.pseudonym("p2")


def test_date_shift_range_never_zero(keys: KeyService) -> None:
    shifts = [keys.date_shift(f"patient-{i}") for i in range(2000)]
    assert all(-365 <= s <= -1 for s in shifts)
    assert len(set(shifts)) > 200


def test_rotation_rederives_everything(keys: KeyService) -> None:
    rotated = KeyService(b"a-completely-different-secret-42!")
    ids = [f"p{i}" for i in range(50)]
    assert all(keys.pseudonym(i) != rotated.pseudonym(i) for i in ids)
    assert sum(keys.date_shift(i) != rotated.date_shift(i) for i in ids) > 45
    assert keys.uid("1.2.3.4") != rotated.uid("1.2.3.4")
    assert keys.fingerprint != rotated.fingerprint


def test_uid_is_valid_dicom_uid(keys: KeyService) -> None:
    uid = keys.uid("1.2.840.113619.2.55.3.604688119")
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid == keys.uid("1.2.840.113619.2.55.3.604688119")


def test_from_env_without_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARELENS_SECRET_FILE", raising=False)
    monkeypatch.delenv("CARELENS_SECRET", raising=False)
    with pytest.raises(UsageError, match="CARELENS_SECRET_FILE"):
        KeyService.from_env()


def test_from_env_file_and_value(secret_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_file = KeyService.from_env()
    monkeypatch.delenv("CARELENS_SECRET_FILE")
    monkeypatch.setenv("CARELENS_SECRET", secret_env.read_text().strip())
    assert KeyService.from_env().pseudonym("x") == from_file.pseudonym("x")


def test_keygen_writes_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "keys" / "site.key"
    runner = CliRunner()
    res = runner.invoke(app, ["deid", "keygen", str(target)])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    first = KeyService.from_file(target).fingerprint
    assert runner.invoke(app, ["deid", "keygen", str(target)]).exit_code != 0
    assert KeyService.from_file(target).fingerprint == first
    assert runner.invoke(app, ["deid", "keygen", str(target), "--force"]).exit_code == 0
    assert KeyService.from_file(target).fingerprint != first
