"""Files written so that a crash, a power cut or a full disk never leaves half of one: checkpoints, image
caches, predict's CSV, exports and pictures. The stores people trust most promise the same: a write
lands whole or not at all, and once it is acknowledged it survives a power cut."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fashion_lightning.errors import ConfigError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(RuntimeError):
    """A write failed for lack of space; the message names the folder, the space free and needed."""


def explained(err: OSError, path: str | Path | None) -> Exception:
    """A full disk as a ``DiskFullError`` that says where and how much; any other error as it is.
    ``path`` stands in where the error names no file (a write in another thread, as TensorBoard's)."""
    where = err.filename or path
    return disk_full(err, where) if err.errno in DISK_FULL and where else err


RUN_AGAIN = "free some space there and run the command again (a fit goes on with --ckpt_path last)"


def disk_full(
    err: OSError, path: str | Path, needed: int | None = None, remedy: str = RUN_AGAIN
) -> DiskFullError:
    """``path``: the file that could not be written, or the folder it was in."""
    path = Path(path)
    folder, what = (path, "") if path.is_dir() else (path.parent, f" to write {path.name}")
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    need = f", about {readable_size(needed)} needed" if needed else ""
    return DiskFullError(
        f"no space left in {folder}{what} ({readable_size(free)} free{need}; {os.strerror(err.errno)}): "
        + remedy
    )


def readable_size(count: int) -> str:
    return f"{count / 2**20:.1f} MB" if count >= 2**20 else f"{count // 1024} KB"


@contextmanager
def replaced_whole(path: Path, needed: int | None = None, remedy: str = RUN_AGAIN) -> Iterator[Path]:
    """Yields a path beside ``path`` to write to. On success the file's bytes are flushed to disk, it is
    renamed to ``path`` (one atomic step on one file system) and the rename is flushed too, so a reader
    or a resumed run sees the old file or the new one, also after a power cut. On failure the partial
    file is removed; a full disk is a ``DiskFullError`` that says how much is ``needed`` (else the
    size of the file replaced) and the ``remedy``."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        _flush(partial)
        os.replace(partial, path)
        _flush(path.parent)
    except BaseException as err:
        partial.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            if needed is None and path.exists():
                needed = path.stat().st_size
            raise disk_full(err, path, needed, remedy) from None
        raise


def torch_save_whole(content: Any, path: Path, needed: int | None = None, remedy: str = RUN_AGAIN) -> None:
    """``torch.save`` through ``replaced_whole``. torch's own writer tells a failed write only as a
    short one ("unexpected pos"); written through a Python file, the write's own error (a full disk, a
    quota, a file size limit) is kept and raised instead."""
    with replaced_whole(path, needed, remedy) as partial, partial.open("wb") as file:
        kept = _ErrorKeepingFile(file)
        try:
            torch.save(content, kept)
        except RuntimeError:
            if kept.error is None:
                raise
            raise kept.error from None


class _ErrorKeepingFile:
    """A file for ``torch.save`` that keeps the ``OSError`` of a failed write, which torch drops."""

    def __init__(self, file) -> None:
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def write_whole(path: Path, content: bytes) -> None:
    with replaced_whole(path) as partial:
        partial.write_bytes(content)


def _flush(path: Path) -> None:
    """fsync a file's bytes, or a folder's entries."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written with ``replaced_whole``: a process killed, a machine losing power or a disk
    filling up while saving leaves the previous ``last.ckpt`` whole. Paths with a scheme (``s3://``,
    ...) are left to fsspec, as Lightning does."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with replaced_whole(Path(path)) as partial:
            super().save_checkpoint(checkpoint, partial, storage_options)


def writable_folder(folder: str | Path, setting: str = "trainer.default_root_dir") -> Path:
    """``folder``, made if need be; refused in one line, naming the ``setting`` that gave it, before any
    work whose output it would take, if it cannot take files."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"{setting}: cannot write into {folder} ({err.strerror}); give a writable folder"
        ) from None
    return folder
