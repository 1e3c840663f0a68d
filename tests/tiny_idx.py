"""Tiny data sets in the MNIST family's IDX format, written by the tests themselves."""

from __future__ import annotations

import gzip
from pathlib import Path

import torch

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dimensions / 1 dimension
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(tensor: torch.Tensor, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def tiny_split(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images a small CNN can tell apart: each class is a bright horizontal band at its own height,
    plus noise."""
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=gen)]
    images = torch.randint(0, 60, (n, 28, 28), generator=gen)
    for i, label in enumerate(labels.tolist()):
        images[i, 2 + 2 * label : 5 + 2 * label, 4:24] = 250
    return images, labels


def write_tiny_idx(
    folder: Path,
    name: str = "FashionMNIST",
    n_train: int = 240,
    n_test: int = 60,
    seed: int = 0,
    gz: bool = False,
) -> Path:
    """The four IDX files of data set ``name`` (torchvision's class name) in torchvision's layout,
    ``folder/<name>/raw/`` (``gz``: only the four ``.gz`` files, as a local copy holds them).
    Returns ``folder``."""
    gen = torch.Generator().manual_seed(seed)
    raw = folder / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = tiny_split(n, gen)
        for kind, tensor, magic in (
            ("images-idx3", images, IMAGE_MAGIC),
            ("labels-idx1", labels, LABEL_MAGIC),
        ):
            data = idx_bytes(tensor, magic)
            file = raw / f"{prefix}-{kind}-ubyte"
            if gz:
                file.with_name(file.name + ".gz").write_bytes(gzip.compress(data))
            else:
                file.write_bytes(data)
    return folder


def write_tiny_fashion_mnist(folder: Path, **kwargs) -> Path:
    return write_tiny_idx(folder, "FashionMNIST", **kwargs)
