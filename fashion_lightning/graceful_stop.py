"""Ctrl+C and ``kill`` (SIGTERM) end a fit with a checkpoint it can be resumed from exactly."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from fashion_lightning.runs import CHECKPOINTS, LAST


class Stopped(Exception):
    """A fit stopped by a signal, after saving ``checkpoint``."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: stopped after step {step} and saved {checkpoint}. "
            "Resume with --ckpt_path last (same config)."
        )


class Interrupted(BaseException):
    """A command stopped by Ctrl+C or SIGTERM where it stood. A ``BaseException``, as
    ``KeyboardInterrupt`` is, so that no ``except Exception`` on the way takes it for another error (a
    damaged file) or drops it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} received: stopped")


_received: int | None = None  # the SIGTERM stop_at_once was called for
_between_batches = False  # inside stops_between_batches


def stop_at_once_on_signals() -> dict:
    """Install ``stop_at_once`` for SIGINT and SIGTERM (from the main thread); the handlers it replaces."""
    global _received
    _received = None
    return {signum: signal.signal(signum, stop_at_once) for signum in GracefulStop.SIGNALS}


def stop_at_once(signum: int, frame) -> None:
    """Ctrl+C's and SIGTERM's handler outside a fit's steps, where ``GracefulStop``'s takes over: an
    exception, so that what was begun is cleaned up (SIGTERM's default kills the process where it
    stands, which left a new run folder holding only its lock while an image folder was being decoded;
    Ctrl+C's KeyboardInterrupt, Lightning answers with a shutdown of its own and status 1), and the
    command ends as a stopped fit does, with status 128 + the signal.
    The signal is kept too, for ``raise_if_stopped``: Python drops an exception raised in the callbacks
    it runs after a fork, as when the signal comes while a DataLoader starts its workers."""
    global _received
    if multiprocessing.parent_process() is not None:  # a process forked from this one (a DDP rank)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _received = signum
    if not _between_batches:
        raise Interrupted(signum)


def raise_if_stopped() -> None:
    """Raise ``Interrupted`` for a signal that ``stop_at_once`` kept and did not (or could not) raise."""
    if _received is not None:
        raise Interrupted(_received)


@contextlib.contextmanager
def stops_between_batches() -> Iterator[None]:
    """Ctrl+C and SIGTERM only noted inside, for ``raise_if_stopped`` to raise between a DataLoader's batches.
    Raised as the loader starts its workers, its exception was dropped ("Exception ignored in:
    _releaseLock") and the fit went on, or it left the workers half started (tracebacks of torch's and
    multiprocessing's own)."""
    global _between_batches
    _between_batches = True
    try:
        yield
    finally:
        _between_batches = False
    raise_if_stopped()


class GracefulStop(Callback):
    """On SIGINT or SIGTERM, finish the current training step, write ``last.ckpt`` and stop.

    The signal only sets a flag; the checkpoint is written between two steps, where the weights,
    optimizer, loop and random states all agree, so resuming from it is exact. A second Ctrl+C
    stops at once, without a checkpoint.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._received: int | None = None
        self._previous: dict[int, object] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        raise_if_stopped()  # one Python dropped as a DataLoader started its workers: nothing trained
        self._received = None
        try:
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        except ValueError:  # not the main thread (e.g. a notebook's worker): leave signals alone
            self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self._received is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self._received = signum

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if self._received is None and trainer.world_size == 1:
            return  # the usual case, decided first: this runs after every step
        last_of_epoch = batch_idx + 1 == trainer.num_training_batches
        if (batch_idx + 1) % trainer.accumulate_grad_batches and not last_of_epoch:
            return  # gradients gathered over micro-batches are not in a checkpoint: wait for the step
        received = self._received is not None
        if trainer.world_size > 1:  # every rank must stop at the same step, even if one got the signal
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        if trainer.checkpoint_callback:
            folder = Path(trainer.checkpoint_callback.dirpath)
        else:  # checkpointing off: where a run's checkpoints go, so that --ckpt_path last finds it
            folder = Path(trainer.log_dir or trainer.default_root_dir) / CHECKPOINTS
        checkpoint = folder / LAST
        trainer.save_checkpoint(checkpoint)
        raise Stopped(self._received or signal.SIGTERM, trainer.global_step, checkpoint)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            if signal.getsignal(signum) == self._handle:  # Lightning may have restored its own already
                signal.signal(signum, handler)
        self._previous = {}
