"""What a trained model expects of its input, kept in its checkpoint so that predict, export and the
pictures need nothing but the checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

PhotoFit = Literal["crop", "object"]


@dataclass(frozen=True)
class InputContract:
    """The images a model was trained on, as the data module found them.

    Args:
        classes: the class names, in label order (the model's outputs).
        channels: 1 (grayscale) or 3 (RGB).
        size: (height, width) in pixels.
        mean: per channel, of the training split's pixels scaled to [0, 1].
        std: per channel, likewise.
        photos: how ``predict`` fits a photo of any size to ``size``: ``crop`` scales it to cover
            ``size`` and cuts the centre (how ``ImageFolder`` read the training images); ``object``
            trims the background, scales the object's longest side and centres it light on black
            (how the MNIST family was made).
    """

    classes: tuple[str, ...]
    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    photos: PhotoFit = "crop"

    def __post_init__(self) -> None:
        # lists from YAML or a checkpoint become tuples, so that contracts compare equal
        for name in ("classes", "size", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape, ``(channels, height, width)``."""
        return (self.channels, *self.size)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, so that a checkpoint holding it loads with ``weights_only=True``."""
        return asdict(self)

    @classmethod
    def of(cls, value: InputContract | dict[str, Any]) -> InputContract:
        return value if isinstance(value, InputContract) else cls(**value)

    def mismatch(self, classes: Sequence[str], shape: Sequence[int]) -> str | None:
        """What makes images of ``classes`` and ``shape`` (C, H, W) unfit for this model; None if nothing."""
        if tuple(classes) != self.classes:
            return f"the model's classes are {list(self.classes)}, the data's {list(classes)}"
        if tuple(shape) != self.shape:
            return f"the model takes images of {list(self.shape)} (C, H, W), the data has {list(shape)}"
        return None
