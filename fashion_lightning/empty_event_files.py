"""A command refused before it logged anything leaves no empty TensorBoard file in a run's folder."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader


class RemoveEmptyEventFiles(Callback):
    """Lightning opens the TensorBoard writer, which writes its file's header at once, before the data
    module's setup, where a test of a checkpoint on data that does not fit it is refused: the run's
    folder kept a file of no events. On a failure, this process's event files that hold only their
    header go, and the folder too if that empties it (a full disk's error is left alone: its message
    may name the file)."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        remove_empty_event_files(trainer, exception)


def remove_empty_event_files(trainer: Trainer, exception: BaseException) -> None:
    """``RemoveEmptyEventFiles``'s work, which ``RunLock`` does for a fit (a resumed run's folder)."""
    if isinstance(exception, OSError) or not trainer.is_global_zero:
        return
    # TensorBoard names each file after its host and process
    mine = f"events.out.tfevents.*.{socket.gethostname()}.{os.getpid()}.*"
    for logger in trainer.loggers:
        folder = Path(logger.log_dir) if isinstance(logger, TensorBoardLogger) else None
        if folder is None or not folder.is_dir():
            continue
        logger.experiment.flush()
        empty = [path for path in folder.glob(mine) if _only_the_header(path)]
        for path in empty:
            path.unlink()
        if empty:  # the folder the logger made for a checkpoint outside any run, say
            with contextlib.suppress(OSError):  # not empty: a run's folder
                folder.rmdir()


def _only_the_header(path: Path) -> bool:
    return all(event.WhichOneof("what") == "file_version" for event in EventFileLoader(str(path)).Load())
