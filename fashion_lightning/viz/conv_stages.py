"""What one convolution layer does to an image, as the notes show it: conv, ReLU, 2x2 max-pool."""

from __future__ import annotations

import torch
from torch import nn

# The notes' filter: dark on the left, light on the right, so it responds to vertical edges.
EDGE_FILTER = torch.tensor([[-1.0, -1.0, 1.0, 1.0]] * 4)
STAGES = ("convolution", "after ReLU", "after max-pool 2x2")


def edge_filters() -> torch.Tensor:
    """The notes' four hand-made filters ``[4, 1, 4, 4]``: the filter, its negative, its transpose
    (horizontal edges) and the transpose's negative."""
    return torch.stack([EDGE_FILTER, -EDGE_FILTER, EDGE_FILTER.T, -EDGE_FILTER.T]).unsqueeze(1)


class ConvStages(nn.Module):
    """A convolution followed by ReLU and a 2x2 max-pool, returning the output of each (by ``STAGES``)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        convolved = self.conv(images)
        activated = self.relu(convolved)
        return dict(zip(STAGES, (convolved, activated, self.pool(activated)), strict=True))


def edge_filter_layer() -> ConvStages:
    """The notes' single-layer net: ``Conv2d(1, 4, 4x4, bias=False)`` holding the four edge filters."""
    conv = nn.Conv2d(1, 4, kernel_size=4, bias=False)
    with torch.no_grad():
        conv.weight.copy_(edge_filters())
    return ConvStages(conv)


def first_conv(net: nn.Module) -> nn.Conv2d | None:
    """The network's first convolution (in module order), whose filters look at the pixels."""
    return next((module for module in net.modules() if isinstance(module, nn.Conv2d)), None)


NORMALISATIONS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm, nn.LocalResponseNorm)


def normalises_before_relu(net: nn.Module, conv: nn.Conv2d) -> bool:
    """Whether a normalisation comes between ``conv`` and the next ReLU (in module order), as in
    ConvBNNet, so the net's feature maps are not the notes' convolution, ReLU and max-pool that
    ``ConvStages`` draws. The notes' nets pool before their ReLU, which gives the same maps."""
    modules = list(net.modules())
    for module in modules[modules.index(conv) + 1 :]:
        if isinstance(module, nn.ReLU):
            return False
        if isinstance(module, NORMALISATIONS):
            return True
    return False
