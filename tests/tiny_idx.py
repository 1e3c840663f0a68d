"""Tiny files in Fashion-MNIST's IDX format, written by the tests themselves."""

from __future__ import annotations

import gzip
from pathlib import Path

import torch

from fashion_lightning.data.files import IMAGE_MAGIC, LABEL_MAGIC, raw_dir


def idx_bytes(tensor: torch.Tensor, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def write_tiny_fashion_mnist(folder: Path, n_train: int = 240, n_test: int = 60, seed: int = 0) -> Path:
    """The four ``.gz`` files in torchvision's layout, with images a small CNN can tell apart:
    each class is a bright horizontal band at its own height, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    raw = raw_dir(folder)
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        labels = labels[torch.randperm(n, generator=gen)]
        images = torch.randint(0, 60, (n, 28, 28), generator=gen)
        for i, label in enumerate(labels.tolist()):
            images[i, 2 + 2 * label : 5 + 2 * label, 4:24] = 250
        for kind, tensor, magic in (
            ("images-idx3", images, IMAGE_MAGIC),
            ("labels-idx1", labels, LABEL_MAGIC),
        ):
            (raw / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(idx_bytes(tensor, magic)))
    return folder
