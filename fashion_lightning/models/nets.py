"""The networks, as plain ``nn.Module``s the LightningModule trains.

Each takes the shape of its input and the number of classes first (``in_channels``, ``image_size``,
``num_classes``): the classifier passes them from the data, so a config names only a net's own
settings. A net of your own goes here (or anywhere importable) with the same first three arguments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fashion_lightning.errors import ConfigError
from fashion_lightning.models.whitening import PatchWhitening


def flat_size(features: nn.Module, in_channels: int, image_size: tuple[int, int]) -> int:
    """How many numbers ``features`` makes of one image: the input size of the linear layer after it.

    One forward pass of a blank image in eval mode (batch norm's running statistics stay untouched)."""
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            size = features(torch.zeros(1, in_channels, *image_size)).numel()
    except RuntimeError as err:  # e.g. "Output size is too small" from a pooling layer
        raise ConfigError(
            f"the net cannot take {in_channels}x{image_size[0]}x{image_size[1]} images "
            f"({str(err).splitlines()[0]}): give larger images (data.source.size) or another net"
        ) from None
    features.train(was_training)
    return size


def two_conv_relu_pool(in_channels: int, widths: tuple[int, int] = (10, 20)) -> nn.Sequential:
    """The course notes' feature extractor, shared by both of their nets: two stages of a 3x3
    convolution, ReLU and 2x2 max-pooling, flattened. With the notes' widths on 1x28x28 images:
    28 -> 26 -> 13 -> 11 -> 5, so 20 x 5 x 5 = 500 features.

    Each stage pools before its ReLU: max-pooling and ReLU commute, so the numbers are the notes', and
    the ReLU (forward and backward) runs on a quarter of the values (BENCHMARKS.md). Neither has
    weights, so the layers' names in a checkpoint are the same in either order."""
    return nn.Sequential(
        nn.Conv2d(in_channels, widths[0], 3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(widths[0], widths[1], 3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
    )


class BaselineNet(nn.Module):
    """The notes' first net: ``two_conv_relu_pool``, then one linear layer to the class scores.

    ``relu_logits=True`` reproduces the notes' mistake of a ReLU on the class scores: every class
    whose score goes negative for all inputs gets zero gradient and is never predicted again (the
    notes ended with Pullover and Shirt at 0% and 74% overall).
    """

    def __init__(
        self, in_channels: int, image_size: tuple[int, int], num_classes: int, relu_logits: bool = False
    ) -> None:
        super().__init__()
        self.features = two_conv_relu_pool(in_channels)
        self.classifier = nn.Linear(flat_size(self.features, in_channels, image_size), num_classes)
        self.relu_logits = relu_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.features(x))
        return torch.relu(logits) if self.relu_logits else logits


class DropoutNet(nn.Module):
    """The notes' improved net: ``two_conv_relu_pool``, then linear (to ``hidden``) - ReLU - dropout -
    linear to the class scores."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        hidden: int = 50,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        self.features = two_conv_relu_pool(in_channels)
        self.classifier = nn.Sequential(
            nn.Linear(flat_size(self.features, in_channels, image_size), hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ConvBeforePool(nn.Conv2d):
    """A 3x3 convolution, padded by one pixel, that leaves out its map's last row or column where the
    map is odd-sized: the 2x2 max-pool after it would drop them. The same numbers as ``nn.Conv2d``
    with ``padding=1`` then the pool, for less work: a 7x7 map (a 28-pixel image's third stage) is
    computed 6x6, 27% less (BENCHMARKS.md). Its weights are named as ``nn.Conv2d``'s."""

    def __init__(self, in_channels: int, out_channels: int, map_size: tuple[int, int]) -> None:
        super().__init__(in_channels, out_channels, 3, bias=False)
        height, width = map_size
        self.sides = [1, 1 - width % 2, 1, 1 - height % 2]  # F.pad's order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.sides), self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, padded (left, right, top, bottom)={tuple(self.sides)}"


class ConvBNNet(nn.Module):
    """A VGG-style net with batch norm, stronger than the notes' nets at a few times their cost.

    ``len(widths)`` stages of ``depth`` 3x3 convolutions, each followed by batch norm and ReLU, and a
    2x2 max-pool per stage (each halves the image); then dropout and one linear layer on the flattened
    maps. A stage's last convolution is pooled *before* its batch norm and ReLU: max-pooling commutes
    with ReLU, and normalising a quarter of the values is faster (BENCHMARKS.md); on an odd-sized map
    it is a ``ConvBeforePool``, which leaves out what the pool drops.

    ``whitening``: the first convolution is ``PatchWhitening``, set from the training images and not
    trained, so ``widths[0]`` is even and at most twice the numbers in a 3x3 patch (18 for grey images).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        widths: tuple[int, ...] = (32, 64, 128),
        depth: int = 1,
        dropout: float = 0.0,
        whitening: bool = False,
    ) -> None:
        super().__init__()
        if not widths or min(widths) <= 0 or depth <= 0:
            raise ConfigError(
                f"ConvBNNet needs positive widths and depth, got widths={widths}, depth={depth}"
            )
        patch = in_channels * 3 * 3
        if whitening and (widths[0] % 2 or widths[0] > 2 * patch):
            raise ConfigError(
                f"ConvBNNet's whitening pairs each of a 3x3 patch's {patch} directions with its negative: "
                f"widths[0] must be even and at most {2 * patch}, got {widths[0]}"
            )
        if min(image_size) >> len(widths) == 0:
            raise ConfigError(
                f"ConvBNNet halves the image {len(widths)} times, too often for "
                f"{image_size[0]}x{image_size[1]} pixels: give fewer widths, or larger images"
            )
        layers: list[nn.Module] = []
        channels, size = in_channels, tuple(image_size)
        for width in widths:
            for position in range(depth):
                pooled = position == depth - 1
                if whitening and not layers:
                    layers.append(PatchWhitening(channels, width))
                elif pooled and (size[0] % 2 or size[1] % 2):
                    layers.append(ConvBeforePool(channels, width, size))
                else:
                    layers.append(nn.Conv2d(channels, width, 3, padding=1, bias=False))
                if pooled:
                    layers.append(nn.MaxPool2d(2))
                    size = (size[0] // 2, size[1] // 2)
                layers += [nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(flat_size(self.features, in_channels, image_size), num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
