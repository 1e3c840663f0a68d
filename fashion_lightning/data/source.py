"""Where a data set's images come from: the one thing to write for a data set of your own.

A source returns each split as uint8 images ``[N, C, H, W]``, int64 labels and the class names; the
data module does the rest (validation split, batches on the device, augmentation, normalisation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from fashion_lightning.data.contract import PhotoFit


class DataError(RuntimeError):
    """The data is missing, corrupt or unusable; the message says which file and how to fix it."""


@dataclass
class LabelledImages:
    """One split held in memory: uint8 images ``[N, C, H, W]``, int64 labels ``[N]`` indexing ``classes``
    (-1 for an image without a label, as predict's photos). NumPy arrays become tensors, and labels of
    another integer type int64. ``files``: each image's file, for a source read from files; ``predict``
    on the test split names its rows by them (else ``test image N``)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: Sequence[str]
    files: Sequence[Path] | None = None

    def __post_init__(self) -> None:
        self.images, self.labels = _tensor(self.images, "images"), _tensor(self.labels, "labels")
        if self.labels.is_floating_point() or self.labels.dim() != 1:
            raise DataError(
                f"a source's labels must be integers [N], got {self.labels.dtype} {list(self.labels.shape)}"
            )
        # int64, as cross-entropy and the metrics take them; a source's may be int32 or uint8
        self.labels = self.labels.long()
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(
                f"a source's images must be uint8 [N, C, H, W], got {images.dtype} {list(images.shape)}"
            )
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if len(labels) and not -1 <= int(labels.min()) <= int(labels.max()) < len(self.classes):
            raise DataError(
                f"labels outside 0..{len(self.classes) - 1} (min {int(labels.min())}, "
                f"max {int(labels.max())}) for {len(self.classes)} classes"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, index: torch.Tensor) -> LabelledImages:
        files = None if self.files is None else [self.files[i] for i in index.tolist()]
        return LabelledImages(self.images[index].contiguous(), self.labels[index], self.classes, files)

    def first(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` images and labels (for pictures)."""
        return self.images[:count], self.labels[:count]


def _tensor(value, name: str) -> torch.Tensor:
    """A source's images or labels as a tensor: NumPy arrays are taken as they are."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise DataError(
            f"a source's {name} must be a torch tensor or a NumPy array, got a {type(value).__name__}"
        ) from None


class ImageSource(ABC):
    """A data set's images. Subclass it, implement ``load`` (and ``prepare`` if files must be fetched
    first), and name the class in a config: ``data: {source: my_package.MySource}``.

    ``photos`` says how ``predict`` should fit a user's photo to these images (see ``InputContract``).
    """

    photos: ClassVar[PhotoFit] = "crop"

    def prepare(self) -> None:  # noqa: B027 - most sources have nothing to fetch
        """Download, unpack or cache what ``load`` reads. Runs in one process before any ``load``."""

    @abstractmethod
    def load(self, train: bool) -> LabelledImages:
        """The training split (``train=True``) or the test split. A split too large for memory may
        instead be a torch ``Dataset`` of ``(uint8 image [C, H, W], label)`` with the same ``labels``,
        ``classes``, ``image_shape``, ``subset`` and ``first`` (``image_folder.ImageFiles``): the data
        module then streams it from disk."""
