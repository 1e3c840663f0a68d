"""Checkpoints written so that a crash can never leave half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint beside its target, then renames it into place (an atomic step on one
    file system): a process killed while saving leaves the previous ``last.ckpt`` whole. Paths with
    a scheme (``s3://``, ...) are left to fsspec, as Lightning does."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        super().save_checkpoint(checkpoint, partial, storage_options)
        os.replace(partial, path)
