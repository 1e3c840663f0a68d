"""Fixtures: tiny Fashion-MNIST-format files written by the tests, and the real data set when reachable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_idx import write_tiny_fashion_mnist

from fashion_lightning.data.files import DEBIAN_DIR, ENV_VAR, ensure_files, raw_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_system_copies(monkeypatch, tmp_path):
    """Hide any local copy of the real data (environment variable, Debian package) from the code."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr("fashion_lightning.data.files.DEBIAN_DIR", tmp_path / "no-debian-package")


@pytest.fixture
def tiny_data(tmp_path, no_system_copies) -> Path:
    """A data_dir holding tiny Fashion-MNIST-format files (240 training, 60 test images)."""
    return write_tiny_fashion_mnist(tmp_path / "data")


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory) -> Path:
    """A data_dir with the real Fashion-MNIST files; skips, saying why, when no copy is reachable."""
    if (raw_dir(REPO / "data") / "train-images-idx3-ubyte").is_file():
        return REPO / "data"  # `make data` put them there, verified
    for copy in (os.environ.get(ENV_VAR), DEBIAN_DIR):
        if copy and (Path(copy) / "train-images-idx3-ubyte.gz").is_file():
            data_dir = tmp_path_factory.mktemp("real-data")
            ensure_files(data_dir, local_copy=copy, download=False)
            return data_dir
    pytest.skip(
        f"no real Fashion-MNIST: run `make data`, set {ENV_VAR}, or apt-get install dataset-fashion-mnist"
    )
