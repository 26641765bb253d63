"""Reading images with a model package: checks that refuse, JSON, DICOM SR and FHIR outputs read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from carelens.cli import app
from carelens.imaging.package import load_package
from carelens.imaging.predict import REFER, predict_image
from carelens.imaging.saliency import explain
from carelens.imaging.shift import OUTSIDE

CANARY = "Qwxyz^Canarypatient"
runner = CliRunner()


@pytest.fixture(scope="module")
def chest_with_canary(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = pydicom.dcmread(shared_data / "imaging" / "chest-cr-rsna.dcm")
    ds.PatientName = CANARY
    ds.PatientID = "CANARY-MRN-99812"
    path = tmp_path_factory.mktemp("dicom") / "chest.dcm"
    ds.save_as(path)
    return path


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    paths = {
        "white": root / "white.png",
        "colour": root / "colour.png",
        "tiny": root / "tiny.png",
        "corrupt": root / "corrupt.dcm",
    }
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(paths["white"])
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(paths["colour"])
    Image.fromarray(np.full((8, 8), 120, np.uint8)).save(paths["tiny"])
    paths["corrupt"].write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00garbage")
    return paths


def test_predict_json_batch_goes_on_past_bad_items(
    package_dir: Path, shared_data: Path, chest_with_canary: Path, odd_inputs: dict[str, Path], tmp_path: Path
) -> None:
    png = shared_data / "imaging" / "chest-xray-nih-00000001_000.png"
    mr = Path(get_testdata_file("MR_small.dcm"))
    rtplan = Path(get_testdata_file("rtplan.dcm"))
    inputs = [chest_with_canary, png, mr, rtplan, *odd_inputs.values()]
    result = runner.invoke(app, ["image", "predict", str(package_dir), *map(str, inputs), "--out", str(tmp_path)])
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert len(out["predictions"]) + len(out["quarantined"]) == len(inputs)
    assert {p["source"] for p in out["predictions"]} == {"chest.dcm", png.name}
    reasons = {q["source"]: q["reason"] for q in out["quarantined"]}
    assert "modality MR is not one the model was trained on" in reasons["MR_small.dcm"]
    assert "holds no image" in reasons["rtplan.dcm"]
    assert "pixel statistics far from the training images" in reasons["white.png"]
    assert "colour image" in reasons["colour.png"]
    assert "smaller than the model's 28x28 input" in reasons["tiny.png"]
    assert any(w in reasons["corrupt.dcm"] for w in ("corrupt", "not a DICOM", "holds no image"))
    meta = json.loads((package_dir / "model.json").read_text())
    for pred in out["predictions"]:
        assert pred["model"]["id"] == meta["id"]
        assert 0.0 <= pred["probability"] <= 1.0 and pred["probability_of"] == "pneumonia"
        assert set(pred["conformal_set"]) <= {"normal", "pneumonia"}
        outside = pred["outside_validated_population"]
        assert pred["ood_distance"] > 0 and outside == (pred["ood_distance"] > meta["shift"]["threshold"])
        assert pred["uncertain_refer"] == (len(pred["conformal_set"]) != 1 or outside)
        assert pred["status"] == (OUTSIDE if outside else REFER if pred["uncertain_refer"] else pred["finding"])
        assert pred["evidence"]["provenance"]["input_hash"] == pred["input_hash"]
        # a heatmap is either shown (a PNG on disk) or withheld with its reason
        assert (pred["heatmap"] is None) != (pred["heatmap_withheld"] is None)
        if pred["heatmap"]:
            assert Path(pred["heatmap"]).read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / f"{Path(pred['source']).stem}.json").exists()
    assert CANARY not in result.output and "CANARY-MRN-99812" not in result.output
    assert CANARY.encode() not in (package_dir / "model.json").read_bytes()


def test_dicom_sr_reads_back(package_dir: Path, chest_with_canary: Path, shared_data: Path, tmp_path: Path) -> None:
    import highdicom as hd

    png = shared_data / "imaging" / "chest-xray-nih-00000001_000.png"
    args = ["image", "predict", str(package_dir), str(chest_with_canary), str(png), "--format", "dicom-sr"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--no-heatmaps"])
    assert result.exit_code == 3, result.output  # the PNG cannot be referenced from an SR
    out = json.loads(result.stdout)
    assert out["quarantined"][0]["source"] == png.name and "DICOM source image" in out["quarantined"][0]["reason"]
    sr_path = tmp_path / "chest.sr.dcm"
    sr = pydicom.dcmread(sr_path)
    source = pydicom.dcmread(chest_with_canary, stop_before_pixels=True)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert isinstance(hd.sr.srread(sr_path), hd.sr.Comprehensive3DSR)
    prediction = out["predictions"][0]
    model_id = json.loads((package_dir / "model.json").read_text())["id"]
    items = {}
    for item in _walk(sr):
        items.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, []).append(item)
    assert f"model_id={model_id}" in [i.TextValue for i in items["Algorithm Parameters"]]
    assert items["Algorithm Version"][0].TextValue == prediction["model"]["version"]
    probability = float(items["Probability"][0].MeasuredValueSequence[0].NumericValue)
    assert probability == pytest.approx(prediction["probability"], abs=1e-4)
    members = {i.ConceptCodeSequence[0].CodeMeaning.lower() for i in items["Conformal prediction set member"]}
    assert members == set(prediction["conformal_set"])
    assert items["Finding"][0].ConceptCodeSequence[0].CodeMeaning.lower() == prediction["finding"]


def _walk(ds: pydicom.Dataset):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def test_fhir_diagnostic_report_parses(package_dir: Path, chest_with_canary: Path, tmp_path: Path) -> None:
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    args = ["image", "predict", str(package_dir), str(chest_with_canary), "--format", "fhir", "--no-heatmaps"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    report = DiagnosticReport.model_validate_json((tmp_path / "chest.fhir.json").read_text())
    assert report.status == "preliminary"
    assert {obs.id for obs in report.contained} == {"finding", "probability", "conformal-set", "decision"}
    prob = next(obs for obs in report.contained if obs.id == "probability")
    assert float(prob.valueQuantity.value) == pytest.approx(out["predictions"][0]["probability"])
    assert [r.reference for r in report.result] == [f"#{obs.id}" for obs in report.contained]
    assert CANARY not in (tmp_path / "chest.fhir.json").read_text()


def test_predict_without_out_withholds_heatmap_with_reason(package_dir: Path, shared_data: Path) -> None:
    package = load_package(package_dir)
    pred = predict_image(package, shared_data / "imaging" / "chest-xray-nih-00000001_000.png")
    assert pred.heatmap is None and "no output folder" in (pred.heatmap_withheld or "")


class _WeightFreeMap(torch.nn.Module):
    """A model whose Grad-CAM layer sees the raw image: its map cannot depend on learned weights."""

    def __init__(self) -> None:
        super().__init__()
        self.probe = torch.nn.Identity()
        self.gain = torch.nn.Parameter(torch.tensor(1.0))  # plain parameters: not re-initialised by randomisation
        self.scale = torch.nn.Parameter(torch.tensor([1.0, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.probe(x * self.gain).mean(dim=(1, 2, 3))
        return pooled[:, None] * self.scale[None, :]


def test_saliency_sanity_check_withholds_weight_independent_maps() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((1, 28, 28)).astype(np.float32)
    withheld = explain(_WeightFreeMap(), image, "probe", class_idx=1)
    assert withheld.heatmap is None
    assert "failed the randomisation sanity check" in (withheld.reason or "")


def test_saliency_of_trained_model_passes(package_dir: Path, pneumonia_small: Path) -> None:
    """The check is not a wall: a trained model's maps are shown for some images (each passing the
    randomisation check), and every withheld one says why."""
    from carelens.imaging import load_npz

    package = load_package(package_dir)
    images = load_npz(pneumonia_small, "test").images[:8]
    results = [explain(package.model, image, package.meta["saliency"]["layer"]) for image in images]
    shown = [r for r in results if r.shown]
    assert shown, [r.reason for r in results]
    for sal in shown:
        assert sal.heatmap is not None and sal.heatmap.shape == (28, 28)
        assert sal.spearman_vs_random is not None and abs(sal.spearman_vs_random) < 0.5
    assert all((r.reason or "").startswith("heatmap withheld") for r in results if not r.shown)


@pytest.mark.parametrize("arch", ["resnet18", "densenet121"])
def test_gradcam_layer_exists_for_each_architecture(arch: str) -> None:
    from carelens.imaging import build_model
    from carelens.imaging.networks import cam_layer
    from carelens.imaging.saliency import gradcam

    torch.manual_seed(0)
    model = build_model(arch, in_channels=1, num_classes=2, image_size=28)
    heatmap = gradcam(model, np.random.default_rng(0).random((1, 28, 28), dtype=np.float32), cam_layer(arch, 28), 1)
    assert heatmap.shape == (28, 28) and np.isfinite(heatmap).all()


def test_a_radiograph_of_another_body_part_is_refused(package_dir: Path, chest_with_canary: Path,
                                                      tmp_path: Path) -> None:  # fmt: skip
    from carelens.core import InputError

    ds = pydicom.dcmread(chest_with_canary)
    ds.BodyPartExamined = "KNEE"
    knee = tmp_path / "knee.dcm"
    ds.save_as(knee)
    with pytest.raises(InputError, match="body part KNEE is not one the model was trained on"):
        predict_image(load_package(package_dir), knee)
    assert predict_image(load_package(package_dir), chest_with_canary).source == "chest.dcm"
