"""Fixtures: tiny IDX data sets written by the tests, and the real Fashion-MNIST when reachable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_idx import write_tiny_fashion_mnist

from fashion_lightning.data import FashionMNIST
from fashion_lightning.data.fashion_mnist_copies import DEBIAN_DIR, ENV_VAR

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_system_copies(monkeypatch, tmp_path):
    """Hide any local copy of the real data (environment variable, Debian package) from the code."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(
        "fashion_lightning.data.fashion_mnist_copies.DEBIAN_DIR", tmp_path / "no-debian-package"
    )


@pytest.fixture
def tiny_data(tmp_path, no_system_copies) -> Path:
    """A data root holding tiny Fashion-MNIST-format files (240 training, 60 test images)."""
    return write_tiny_fashion_mnist(tmp_path / "data")


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory) -> Path:
    """A data root with the real Fashion-MNIST files; skips, saying why, when no copy is reachable."""
    if FashionMNIST(str(REPO / "data")).has_files():
        return REPO / "data"  # `make data` put them there, verified
    for copy in (os.environ.get(ENV_VAR), DEBIAN_DIR):
        if copy and (Path(copy) / "train-images-idx3-ubyte.gz").is_file():
            root = tmp_path_factory.mktemp("real-data")
            FashionMNIST(str(root), download=False, local_copy=str(copy)).prepare()
            return root
    pytest.skip(
        f"no real Fashion-MNIST: run `make data`, set {ENV_VAR}, or apt-get install dataset-fashion-mnist"
    )
