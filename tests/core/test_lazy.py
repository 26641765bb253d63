"""The packages' lazy exports: every public name resolves to its home's object, once."""

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["carelens.demo", "carelens.imaging", "carelens.network", "carelens.privacy", "carelens.server"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_and_is_kept(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert vars(module)[name] is value, name


@pytest.mark.parametrize("package", PACKAGES)
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match=f"{package}.*no_such_name"):
        importlib.import_module(package).no_such_name  # noqa: B018


def test_a_renamed_export_takes_the_home_attribute() -> None:
    from carelens.privacy import deid_dicom
    from carelens.privacy.dicom import deid_dicom_path

    assert deid_dicom is deid_dicom_path


def test_importing_a_package_loads_none_of_its_exports() -> None:
    code = "import sys, carelens.imaging, carelens.network; print('torch' in sys.modules, 'flwr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
