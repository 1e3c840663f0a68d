"""The model's own normalisation, so that it takes images as the data stores them and an exported model
needs no preprocessing code beside it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """``(x - mean) / std`` per channel, with the training split's mean and std of pixels in [0, 1].

    Takes uint8 pixels (0-255, as the data module's batches come) or floats in [0, 1] (as
    torchvision's ``ToTensor`` gives them, and an exported model takes them). The statistics are
    buffers, so they move with the model and are part of an export; they are not saved in the
    state dict, since the checkpoint's ``InputContract`` holds them.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:  # in the model's own precision (float32, or bf16/64 with "-true")
            return images.to(self.mean.dtype).div_(255).sub_(self.mean).div_(self.std)  # a fresh tensor
        return (images - self.mean) / self.std
