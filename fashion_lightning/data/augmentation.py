"""Random augmentation of whole uint8 batches on their own device, each sample drawn independently.

torchvision's transforms draw one set of parameters per call, so on a batch they would shift, flip
or erase every image the same way; these draw per image and stay a handful of tensor operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fashion_lightning.errors import ConfigError


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation, all off by default (the notes train on the images as they are).

    Args:
        crop_padding: pad by this many black pixels, then crop a random window of the image's own size
            (a random translation of up to ``crop_padding`` pixels each way).
        hflip: mirror half of the images left-right (clothes are left-right symmetric; the labels stay).
        erase_prob: the share of images in which a random rectangle (2% to 33% of the image, aspect
            0.3 to 3.3, as torchvision's ``RandomErasing``) is replaced by random pixels.
        shadow_prob: the share of images given a soft shadow (``random_shadow``): a photo's shadow
            survives the conversion ``predict`` makes as a faint halo beside the object.
    """

    crop_padding: int = 0
    hflip: bool = False
    erase_prob: float = 0.0
    shadow_prob: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ConfigError(f"data.augment.crop_padding must be 0 or more pixels, got {self.crop_padding}")
        for name in ("erase_prob", "shadow_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.augment.{name} must be between 0 and 1, got {getattr(self, name)}")

    def check_fits(self, image_size: tuple[int, int]) -> None:
        """Refuse crops that can miss the image entirely: black images would train as their class."""
        if self.crop_padding >= min(image_size):
            raise ConfigError(
                f"data.augment.crop_padding={self.crop_padding} can move {image_size[0]}x{image_size[1]} "
                f"images wholly out of view: give fewer pixels than {min(image_size)} (best.yaml moves 2)"
            )

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.hflip or self.erase_prob > 0 or self.shadow_prob > 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a uint8 batch ``[N, C, H, W]``; returns a new tensor of the same shape and dtype."""
        if self.crop_padding:
            images = random_crop(images, self.crop_padding)
        if self.hflip:
            images = random_hflip(images)
        if self.erase_prob:
            images = random_erase(images, self.erase_prob)
        if self.shadow_prob:
            images = random_shadow(images, self.shadow_prob)
        return images


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut one randomly placed window of the original size per image."""
    n, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (2, n, 1), device=images.device)
    rows = (offsets[0] + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (offsets[1] + torch.arange(width, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channels, rows, cols]


def random_hflip(images: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_erase(
    images: torch.Tensor,
    prob: float,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Replace one rectangle per chosen image with uniformly random uint8 pixel values."""
    n, _, height, width = images.shape
    device = images.device
    area = height * width * torch.empty(n, device=device).uniform_(*scale)
    aspect = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1])).exp()
    h = (area * aspect).sqrt().round().clamp(1, height)
    w = (area / aspect).sqrt().round().clamp(1, width)
    top = (torch.rand(n, device=device) * (height - h + 1)).floor()
    left = (torch.rand(n, device=device) * (width - w + 1)).floor()
    ys = torch.arange(height, device=device)[None, :]
    xs = torch.arange(width, device=device)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < (top + h)[:, None])
    in_cols = (xs >= left[:, None]) & (xs < (left + w)[:, None])
    chosen = torch.rand(n, device=device) < prob
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None])[:, None]
    return torch.where(mask, torch.randint_like(images, 0, 256), images)


def random_shadow(
    images: torch.Tensor,
    prob: float,
    shift: tuple[float, float] = (0.03, 0.1),
    strength: tuple[float, float] = (0.2, 0.5),
    blur: float = 1.0,
) -> torch.Tensor:
    """Give a share ``prob`` of the images a shadow: the object's outline (what is not black) moved by
    ``shift`` of the image's size in any direction and blurred by ``blur`` pixels, in one convolution
    with a Gaussian centred off the middle, at ``strength`` of full white, and covered where the object
    is dense, as an object lying on a table hides its own shadow."""
    n, _, height, width = images.shape
    device = images.device
    pixels = images.float() / 255
    outline = (pixels.amax(1, keepdim=True) > 0.08).float()
    angle = torch.rand(n, device=device) * 2 * math.pi
    distance = torch.empty(n, device=device).uniform_(*shift) * max(height, width)
    radius = math.ceil(shift[1] * max(height, width) + 3 * blur)
    taps = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    # conv2d correlates: a kernel peaking at -offset moves the outline by +offset
    across = taps[None, None, :] + (distance * angle.cos())[:, None, None]
    down = taps[None, :, None] + (distance * angle.sin())[:, None, None]
    kernel = torch.exp(-(across**2 + down**2) / (2 * blur**2))
    kernel = kernel / kernel.sum((1, 2), keepdim=True)
    shadow = F.conv2d(outline.view(1, n, height, width), kernel[:, None], padding=radius, groups=n)
    chosen = torch.rand(n, 1, 1, 1, device=device) < prob
    shadow = (
        shadow.view(n, 1, height, width) * torch.empty(n, 1, 1, 1, device=device).uniform_(*strength) * chosen
    )
    return (255 * (pixels + (1 - pixels) * shadow)).round().to(images.dtype)
