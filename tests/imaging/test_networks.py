"""The default network, resampling and Grad-CAM in plain torch: the same numbers as the MONAI layers they
stand in for, heatmaps that point at the evidence, and no MONAI import for reading images with the default model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from carelens.imaging.engine import warp
from carelens.imaging.networks import _conv
from carelens.imaging.saliency import gradcam


def test_conv_block_is_monais_convolution_block() -> None:
    """Same parameter names, initial values and outputs: packages trained with MONAI's block load unchanged."""
    from monai.networks.blocks import Convolution

    torch.manual_seed(1)
    theirs = Convolution(spatial_dims=2, in_channels=1, out_channels=8, kernel_size=3, act="RELU", norm="BATCH")
    torch.manual_seed(1)
    ours = _conv(1, 8)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = torch.rand(4, 1, 16, 16)
    for mode in (True, False):
        ours.train(mode), theirs.train(mode)
        assert torch.equal(ours(x), theirs(x))


def test_warp_is_monais_affine_transform() -> None:
    from monai.networks.layers import AffineTransform

    torch.manual_seed(0)
    x, theta = torch.rand(5, 1, 20, 24), torch.randn(5, 2, 3) * 0.3
    theirs = AffineTransform(normalized=True, padding_mode="border", mode="bilinear", align_corners=False)
    assert torch.equal(warp(x, theta), theirs(x, theta))
    shift_down = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])  # rows first: a shift along the rows
    moved = warp(x[:1], shift_down)
    assert torch.allclose(moved[0, 0, 0], x[0, 0, 5]) and not torch.allclose(moved[0, 0, :, 0], x[0, 0, :, 5])


class _BrightIsEvidence(torch.nn.Module):
    """Class 1's score is the image's mean brightness: its evidence is where the image is bright."""

    def __init__(self) -> None:
        super().__init__()
        self.probe = torch.nn.Conv2d(1, 1, kernel_size=1, bias=False)
        torch.nn.init.ones_(self.probe.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.probe(x).mean(dim=(1, 2, 3))
        return torch.stack([-pooled, pooled], dim=1)


def test_gradcam_is_high_where_the_evidence_is() -> None:
    image = np.full((1, 28, 28), 0.1, dtype=np.float32)
    image[0, 4:10, 18:24] = 1.0  # a bright patch, top right
    heatmap = gradcam(_BrightIsEvidence(), image, "probe", class_idx=1)
    assert heatmap.shape == (28, 28) and heatmap.min() == 0.0 and heatmap.max() == 1.0
    assert np.unravel_index(heatmap.argmax(), heatmap.shape)[0] in range(4, 10)
    assert heatmap[4:10, 18:24].mean() > 0.9 > 0.1 > heatmap[14:, :14].mean()
    assert np.allclose(gradcam(_BrightIsEvidence(), image, "probe", class_idx=0), 0.0)  # no evidence for class 0


def test_reading_with_the_default_network_does_not_import_monai() -> None:
    """MONAI's import takes seconds and ~300 MB in every process that reads images (each Ray worker too)."""
    code = (
        "import sys, numpy as np\n"
        "from carelens.imaging.networks import build_model\n"
        "from carelens.imaging.predict import predict_image\n"
        "from carelens.imaging.saliency import explain\n"
        "from carelens.imaging.engine import predict_logits, Augmenter\n"
        "m = build_model('cnn')\n"
        "explain(m, np.random.default_rng(0).random((1, 28, 28), dtype=np.float32), 'features.block3b')\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'monai'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
