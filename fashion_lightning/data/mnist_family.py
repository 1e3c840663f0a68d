"""torchvision's MNIST family as sources: Fashion-MNIST (the default), MNIST and KMNIST.

torchvision downloads them (its mirrors and MD5 checks) into ``<root>/<Name>/raw/`` and reads the IDX
files (``read_image_file``/``read_label_file``); this module adds messages that name the file at
fault, and Fashion-MNIST's offline copies (``fashion_mnist_copies``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
from torchvision import datasets
from torchvision.datasets.mnist import read_image_file, read_label_file

from fashion_lightning.data import fashion_mnist_copies
from fashion_lightning.data.source import DataError, ImageSource, LabelledImages


class MNISTFamily(ImageSource):
    """28x28 grayscale images of 10 classes, kept as torchvision keeps them.

    Args:
        root: the data folder; the files go to ``<root>/<Name>/raw/``, as torchvision's download puts them.
        download: fall back to torchvision's download when the files are not there.
    """

    dataset: ClassVar[type[datasets.MNIST]] = datasets.MNIST
    photos = "object"  # made from photos: the object trimmed, scaled, centred, light on black
    how_to_provide: ClassVar[str] = (
        "Put its four IDX files there, or go online and run again: torchvision downloads them."
    )

    def __init__(self, root: str = "data", download: bool = True) -> None:
        self.root = root
        self.download = download

    @property
    def raw_folder(self) -> Path:
        return Path(self.root) / self.dataset.__name__ / "raw"

    def files(self) -> list[str]:
        """The uncompressed IDX files, named as torchvision names them."""
        return [os.path.splitext(name)[0] for name, _ in self.dataset.resources]

    def has_files(self) -> bool:
        return all((self.raw_folder / name).is_file() for name in self.files())

    def prepare(self) -> None:
        if self.has_files():
            return
        _make_writable_dir(self.raw_folder)
        if not self.download:
            raise DataError(self._not_found("download=False"))
        try:
            self.dataset(self.root, train=True, download=True)
        except (RuntimeError, OSError) as err:
            # files that did arrive passed their MD5 check and stay; torchvision skips them next time
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise DataError(self._not_found(f"the download failed: {reason}")) from None

    def load(self, train: bool) -> LabelledImages:
        prefix = "train" if train else "t10k"
        images = self._read(read_image_file, f"{prefix}-images-idx3-ubyte")
        labels = self._read(read_label_file, f"{prefix}-labels-idx1-ubyte")
        if images.shape[1:] != (28, 28):  # a header rewritten for the same bytes reads, but garbled
            height, width = images.shape[1:]
            raise DataError(
                f"{self.raw_folder / f'{prefix}-images-idx3-ubyte'} holds {height}x{width} images, where "
                f"{self.dataset.__name__}'s are 28x28: it is damaged; {self._fix()}"
            )
        try:
            return LabelledImages(images.unsqueeze(1), labels, self.dataset.classes)
        except DataError as err:
            raise DataError(f"{self.raw_folder} ({prefix} files): {err}; {self._fix()}") from None

    def _read(self, reader: Callable[[str], torch.Tensor], name: str) -> torch.Tensor:
        path = self.raw_folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing; {self._fix()}")
        try:
            return reader(str(path))
        except (AssertionError, ValueError, TypeError, RuntimeError, KeyError) as err:
            raise DataError(
                f"{path} is not a readable IDX file of this kind ({type(err).__name__}: {err}): it is "
                f"truncated or corrupt; {self._fix()}"
            ) from None

    def _fix(self) -> str:
        return f"delete {self.raw_folder} and run again to fetch the files afresh"

    def _not_found(self, why: str) -> str:
        return f"{self.dataset.__name__} was not found in {self.raw_folder} and {why}.\n{self.how_to_provide}"


class FashionMNIST(MNISTFamily):
    """Zalando's Fashion-MNIST: 60,000 training and 10,000 test images of 10 kinds of clothing.

    Without the internet, the files come from a local copy, checked by content (see
    ``fashion_mnist_copies``): ``local_copy``, else ``$FASHION_MNIST_DIR``, else Debian's package.

    Args:
        root: the data folder (``<root>/FashionMNIST/raw/``).
        download: fall back to torchvision's download when no copy is found.
        local_copy: a folder with the four official ``.gz`` files to copy from.
    """

    dataset = datasets.FashionMNIST
    how_to_provide = fashion_mnist_copies.HOW_TO_PROVIDE

    def __init__(self, root: str = "data", download: bool = True, local_copy: str | None = None) -> None:
        super().__init__(root, download)
        self.local_copy = local_copy

    def prepare(self) -> None:
        if not self.has_files():
            _make_writable_dir(self.raw_folder)
            for copy in fashion_mnist_copies.local_copies(self.local_copy):
                fashion_mnist_copies.unpack_verified(copy, self.raw_folder)
                print(f"Fashion-MNIST: verified and unpacked the local copy in {copy} into {self.raw_folder}")
                break
        super().prepare()


class MNIST(MNISTFamily):
    """LeCun's handwritten digits: 60,000 training and 10,000 test images."""

    dataset = datasets.MNIST


class KMNIST(MNISTFamily):
    """Kuzushiji-MNIST: 10 classes of cursive Japanese characters, 60,000 training and 10,000 test images."""

    dataset = datasets.KMNIST


def _make_writable_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the data folder {folder} ({err.strerror}); "
            "choose a writable one with --data.source.root"
        ) from None
    if not os.access(folder, os.W_OK):
        raise DataError(f"the data folder {folder} is not writable; choose another with --data.source.root")
