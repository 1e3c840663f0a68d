"""Test-time augmentation: each image is classified as it is and as mirrored or slightly moved copies,
and the copies' class probabilities are averaged."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fashion_lightning.errors import ConfigError


@dataclass(frozen=True)
class TestTimeAugmentation:
    """Which copies ("views") of each image are classified at validation, test and predict; all off by
    default, so an image is classified once, as the notes do.

    The views' probabilities are averaged, not their scores: the mean of probabilities is the ensemble's
    own prediction, where a mean of scores would let one over-confident view outvote the others.

    Args:
        hflip: add the image mirrored left-right (worth it where training mirrored images too).
        shifts: add the image moved by this many pixels left, right, up and down, black filling the
            gap, as ``data.augment.crop_padding`` moves training images; 0: no moved copies.
    """

    hflip: bool = False
    shifts: int = 0

    def __post_init__(self) -> None:
        if self.shifts < 0:
            raise ConfigError(f"test_time_augmentation.shifts must be 0 or more pixels, got {self.shifts}")

    def check_fits(self, image_size: tuple[int, int]) -> None:
        """Refuse moves that take the whole image out of view: those copies would all be black."""
        if self.shifts >= min(image_size):
            raise ConfigError(
                f"test_time_augmentation.shifts={self.shifts} moves {image_size[0]}x{image_size[1]} images "
                f"wholly out of view: give fewer pixels than {min(image_size)} (best.yaml moves 1)"
            )

    @property
    def views(self) -> int:
        """How many times each image is classified: each view costs one more forward pass."""
        return 1 + self.hflip + 4 * (self.shifts > 0)

    def __call__(
        self, classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
    ) -> torch.Tensor:
        """Class scores ``[N, classes]`` of ``images`` (``[N, C, H, W]``) by ``classify``: with several
        views, the log of their mean probabilities, which softmax turns back into those probabilities,
        so losses, metrics and ``softmax`` take them as they take a net's scores. Each view is its own
        pass of ``classify``: memory does not grow with the views, and a CPU classifies a batch of a few
        hundred images faster per image than one of thousands (BENCHMARKS.md)."""
        if self.views == 1:
            return classify(images)
        log_probabilities = [classify(view).float().log_softmax(dim=1) for view in self.transformed(images)]
        return torch.stack(log_probabilities).logsumexp(dim=0) - math.log(self.views)

    def transformed(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The views of ``images``, the images themselves first."""
        views = [images]
        if self.hflip:
            views.append(images.flip(-1))
        if self.shifts:
            n = self.shifts
            views += [shifted(images, down, right) for down, right in ((0, n), (0, -n), (n, 0), (-n, 0))]
        return views


def shifted(images: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """``images`` moved ``down`` rows and ``right`` columns (negative: up, left); zeros (black) come in."""
    height, width = images.shape[-2:]
    pad = max(abs(down), abs(right))
    padded = F.pad(images, (pad,) * 4)
    return padded[..., pad - down : pad - down + height, pad - right : pad - right + width]
