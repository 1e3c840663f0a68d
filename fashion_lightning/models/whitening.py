"""A first convolution set from the data instead of trained, as KellerJordan/airbench starts its net: a
net with it reaches the same accuracy in fewer steps, and each step skips that layer's backward pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# added to each direction's variance before scaling by 1/sqrt(variance): a direction of almost no
# variance (a blank border's) is not scaled up without bound (airbench's value)
EPS = 5e-4
PATCHES_AT_ONCE = 1 << 20


class PatchWhitening(nn.Conv2d):
    """A 3x3 convolution whose filters are the principal directions of the training images' 3x3
    patches, each scaled to unit variance and paired with its negative (ReLU then keeps both signs);
    ``out_channels // 2`` directions of most variance, so ``out_channels`` is even and at most twice
    the numbers in a patch. Its weights are not trained; the classifier sets them once, before a new
    run's first step (``fit_to_images``), and checkpoints and exports hold them as any weights.
    Only as a net's first layer: it sees the images the net sees."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1, bias=False)
        self.weight.requires_grad_(False)

    @torch.no_grad()
    def fit_to_images(self, images: torch.Tensor) -> None:
        """Set the filters from ``images``, standardised as the net gets them."""
        size = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        sums = {"dtype": torch.float64, "device": images.device}  # whatever default Lightning's context sets
        total, products, count = torch.zeros(size, **sums), torch.zeros(size, size, **sums), 0
        per_chunk = max(1, PATCHES_AT_ONCE // images[0, 0].numel())  # a chunk's patches, not all at once
        for chunk in images.split(per_chunk):
            patches = F.unfold(chunk.double(), self.kernel_size).transpose(1, 2).flatten(0, 1)
            total, products, count = (
                total + patches.sum(0),
                products + patches.T @ patches,
                count + len(patches),
            )
        mean = total / count
        variances, directions = torch.linalg.eigh(products / count - torch.outer(mean, mean))
        keep = self.out_channels // 2  # eigh sorts the directions by variance, the largest last
        variances, directions = variances[-keep:].flip(0), directions[:, -keep:].flip(1)
        filters = (directions / (variances.clamp(min=0) + EPS).sqrt()).T.reshape(keep, *self.weight.shape[1:])
        self.weight.copy_(torch.cat((filters, -filters)).to(self.weight.dtype))
