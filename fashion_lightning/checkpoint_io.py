"""Files written so that a crash can never leave half of one: checkpoints, and predict's CSV."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """Yields a path beside ``path`` to write to; on success it is renamed to ``path`` (an atomic
    step on one file system), so a reader or a resumed run sees the old file or the new one."""
    partial = path.with_name(f".{path.name}.partial")
    yield partial
    os.replace(partial, path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written with ``replaced_whole``: a process killed while saving leaves the previous
    ``last.ckpt`` whole. Paths with a scheme (``s3://``, ...) are left to fsspec, as Lightning does."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with replaced_whole(Path(path)) as partial:
            super().save_checkpoint(checkpoint, partial, storage_options)
