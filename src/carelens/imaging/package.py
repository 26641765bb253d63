"""The model package: a folder with ``weights.pt``, ``model.json`` (identity, preprocessing,
labels, calibration, conformal threshold, metrics, model card) and ``MODEL_CARD.md``.

The model id is the SHA-256 of the weights file, so the same weights always carry the same id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from carelens.core import InputError, content_hash
from carelens.imaging.conformal import ConformalThreshold
from carelens.imaging.networks import build_model
from carelens.imaging.shift import ShiftReference, load_reference

WEIGHTS = "weights.pt"
MODEL_JSON = "model.json"
MODEL_CARD = "MODEL_CARD.md"


@dataclass
class ModelPackage:
    """A loaded model package: the network (eval mode, on CPU) and its ``model.json`` as ``meta``."""

    model: torch.nn.Module
    meta: dict[str, Any]
    path: Path

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def temperature(self) -> float:
        return float(self.meta["calibration"]["temperature"])

    @property
    def threshold(self) -> float:
        return float(self.meta.get("operating_threshold", 0.5))

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.meta["preprocessing"])

    @property
    def conformal(self) -> ConformalThreshold | None:
        c = self.meta.get("conformal")
        if not c:
            return None
        keys = ("method", "target", "qhat", "n", "qhat_per_class", "scores", "score_labels")
        return ConformalThreshold(**{k: c[k] for k in keys if k in c})

    @property
    def shift(self) -> ShiftReference | None:
        """The description of the training distribution (``None`` for packages made before it existed)."""
        if "_shift" not in self.__dict__:
            self.__dict__["_shift"] = load_reference(self.path)
        return self.__dict__["_shift"]


def save_weights(model: torch.nn.Module, folder: Path) -> str:
    """Write ``weights.pt`` (the state dict, on CPU) and return its content hash (the model id)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = folder / WEIGHTS
    torch.save(state, path)
    return content_hash(path.read_bytes())


def write_package_files(folder: Path, meta: dict[str, Any]) -> None:
    """Write ``model.json`` and the human-readable ``MODEL_CARD.md`` next to the weights."""
    (folder / MODEL_JSON).write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    (folder / MODEL_CARD).write_text(render_model_card(meta), encoding="utf-8")


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def load_package(folder: str | Path) -> ModelPackage:
    """Load a model package, checking that the weights are the ones ``model.json`` names."""
    folder = Path(folder)
    meta_path, weights_path = folder / MODEL_JSON, folder / WEIGHTS
    if not meta_path.exists() or not weights_path.exists():
        raise InputError(f"{folder.name}: not a model package (needs {MODEL_JSON} and {WEIGHTS})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{folder.name}: {MODEL_JSON} is not readable JSON ({type(err).__name__})") from None
    data = weights_path.read_bytes()
    if content_hash(data) != meta.get("id"):
        raise InputError(f"{folder.name}: weights do not match the model id in {MODEL_JSON} (changed or corrupt)")
    prep = meta["preprocessing"]
    model = build_model(
        meta["arch"],
        in_channels=int(prep["channels"]),
        num_classes=len(meta["labels"]),
        image_size=int(prep["image_size"]),
        **meta.get("arch_options", {}),
    )
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return ModelPackage(model=model, meta=meta, path=folder)


def _fmt(value: Any, ci: Any = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if ci and all(isinstance(c, float) for c in ci):
        text += f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"
    return text


CARD_FIELDS = (
    ("intended_patient_population", "Population"),
    ("intended_users", "Users"),
    ("intended_decision_role", "Decision role"),
    ("out_of_scope_use", "Out of scope"),
    ("developer", "Developer"),
)


def render_model_card(meta: dict[str, Any]) -> str:
    """The model card as Markdown (intended use, data, performance with intervals, limitations)."""
    card = meta.get("card", {})
    lines = [
        f"# Model card: {meta.get('name', 'image classifier')} {meta.get('version', '')}",
        "",
        f"- Model id: `{meta.get('id')}`",
        f"- Architecture: {meta.get('arch')} (MONAI), task: {meta.get('task')}",
        f"- Labels: {', '.join(meta.get('labels', []))}",
        f"- Created: {meta.get('created_at')} by carelens {meta.get('carelens_version')}",
        "",
        "## Intended use",
        "",
        str(card.get("intended_use", "")),
        "",
        *[f"- {title}: {card[key]}" for key, title in CARD_FIELDS if card.get(key)],
        "",
        "## Data",
        "",
        str(card.get("data", "")),
        "",
        "## Performance",
        "",
        str(card.get("performance", "")),
        "",
        "| split | metric | value |",
        "| --- | --- | --- |",
    ]
    for split, metrics in meta.get("metrics", {}).items():
        cis = metrics.get("ci", {})
        for key in ("auc", "accuracy", "sensitivity", "specificity", "ece", "ece_uncalibrated", "brier"):
            if key in metrics:
                lines.append(f"| {split} | {key} | {_fmt(metrics[key], cis.get(key))} |")
        if "conformal_coverage" in metrics:
            lines.append(
                f"| {split} | conformal coverage (target {metrics.get('conformal_target')}) | "
                f"{_fmt(metrics['conformal_coverage'])} |"
            )
        per_class = metrics.get("conformal_coverage_per_class") or []
        for label, value in zip(meta.get("labels", []), per_class, strict=False):
            lines.append(f"| {split} | conformal coverage, true {label} | {_fmt(value)} |")
    shift = meta.get("shift")
    if shift:
        lines += [
            "",
            f"Shift detection: {shift['method']}; an image scoring beyond {shift['threshold']:.2f} "
            f"(the {shift['quantile']:.0%} point of the validation images) is read as 'outside validated population: "
            "refer'. Check a new site with `carelens image check-site` before showing reads there.",
        ]
    for v in meta.get("site_validations", []):
        verdict = "passed" if v.get("passed") else "not passed: " + "; ".join(v.get("failed", []))
        values = ", ".join(
            f"{k} {m['value']:.3f}" for k, m in v.get("metrics", {}).items() if m.get("value") is not None
        )
        lines += ["", f"Local validation at {v['site']} (n={v['n']}, held-out patients): {values}; {verdict}."]
    lines += [
        "",
        f"Calibration: temperature {meta.get('calibration', {}).get('temperature', 1.0):.3f} (fitted on validation). "
        f"Operating threshold: {meta.get('operating_threshold', 0.5):.3f}.",
        "",
        "## Limitations",
        "",
    ]
    lines += [f"- {item}" for item in card.get("limitations", [])]
    lines.append("")
    return "\n".join(lines)
