"""Networks: a small fast CNN (the default; plain torch, laid out as MONAI ``Convolution`` blocks) and MONAI's
ResNet and DenseNet families (MONAI is imported only for those: its import costs seconds and ~300 MB a process)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from carelens.core import UsageError

ARCHS = ("cnn", "resnet18", "resnet34", "resnet50", "densenet121")

# The layer Grad-CAM reads, per architecture (names in ``model.named_modules()``).
CAM_LAYERS = {
    "cnn": "features.block3b",
    "resnet18": "layer4",
    "resnet34": "layer4",
    "resnet50": "layer4",
    "densenet121": "class_layers.relu",
    "densenet121@small": "net.class_layers.relu",
}


# The stages whose pooled outputs (mean and spread per channel) describe an image for shift detection.
SHIFT_LAYERS = {
    "cnn": ["features.block1b", "features.block2b", "features.block3b"],
    "resnet18": ["layer1", "layer2", "layer3", "layer4"],
    "resnet34": ["layer1", "layer2", "layer3", "layer4"],
    "resnet50": ["layer1", "layer2", "layer3", "layer4"],
    "densenet121": ["features.denseblock1", "features.denseblock2", "features.denseblock3", "features.denseblock4"],
}


def shift_layers(arch: str, image_size: int) -> list[str]:
    """Names (in ``model.named_modules()``) of the layers :mod:`carelens.imaging.shift` pools."""
    prefix = "net." if arch == "densenet121" and image_size < 64 else ""
    return [prefix + name for name in SHIFT_LAYERS[arch]]


def build_model(
    arch: str = "cnn", in_channels: int = 1, num_classes: int = 2, image_size: int = 28, **kwargs: Any
) -> nn.Module:
    """A 2-D image classifier returning ``num_classes`` logits.

    ``cnn``: three stages of two 3x3 convolutions with batch norm, max pooling, global average
    pooling, dropout and a linear head; ``width`` (default 32) sets the first stage's channels.
    ``resnet18/34/50`` and ``densenet121``: MONAI's networks; below 64 px the ResNet stem is a
    stride-1 3x3 convolution, as MedMNIST does.
    """
    if arch == "cnn":
        return SmallCNN(
            in_channels, num_classes, width=int(kwargs.get("width", 32)), dropout=kwargs.get("dropout", 0.2)
        )
    if arch not in ARCHS:
        raise UsageError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    from monai.networks import nets

    if arch.startswith("resnet"):
        small = image_size < 64
        factory = getattr(nets, arch)
        return factory(
            spatial_dims=2,
            n_input_channels=in_channels,
            num_classes=num_classes,
            conv1_t_size=3 if small else 7,
            conv1_t_stride=1 if small else 2,
            no_max_pool=False,
        )
    net = nets.DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes)
    return Upsampled(net, 64) if image_size < 64 else net


class SmallCNN(nn.Module):
    """Three conv stages (blocks of conv, batch norm, ReLU: :func:`_conv`), max pooling,
    global average pooling, dropout and a linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential()
        cin = in_channels
        widths = [width, width * 2, width * 4]
        for i, cout in enumerate(widths, start=1):
            self.features.add_module(f"block{i}a", _conv(cin, cout))
            self.features.add_module(f"block{i}b", _conv(cout, cout))
            if i < len(widths):
                self.features.add_module(f"pool{i}", nn.MaxPool2d(2))
            cin = cout
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(x))


class Upsampled(nn.Module):
    """Runs ``net`` on images enlarged to ``size`` px (DenseNet's five poolings need at least 32)."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net = net
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)


def cam_layer(arch: str, image_size: int) -> str:
    """The name of the layer Grad-CAM reads for this architecture and input size."""
    if arch == "densenet121" and image_size < 64:
        return CAM_LAYERS["densenet121@small"]
    return CAM_LAYERS[arch]


def _conv(cin: int, cout: int) -> nn.Module:
    """A 3x3 convolution, batch norm and ReLU with the module names of MONAI's ``Convolution(act="RELU",
    norm="BATCH")`` (``conv``, ``adn.N``, ``adn.A``): the same parameters, so earlier packages load unchanged."""
    adn = nn.Sequential(OrderedDict(N=nn.BatchNorm2d(cout), A=nn.ReLU()))
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(cin, cout, kernel_size=3, padding=1), adn=adn))
