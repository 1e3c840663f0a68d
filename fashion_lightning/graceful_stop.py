"""Ctrl+C and ``kill`` (SIGTERM) end a fit with a checkpoint it can be resumed from exactly."""

from __future__ import annotations

import signal
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from fashion_lightning.runs import CHECKPOINTS, LAST
from fashion_lightning.stop_signals import SIGNALS, raise_if_stopped


class Stopped(Exception):
    """A fit stopped by a signal, after saving ``checkpoint``. Under DDP every rank stops so; only the
    first ``announces`` it, as the ranks share one terminal."""

    def __init__(self, signum: int, step: int, checkpoint: Path, announces: bool = True) -> None:
        self.signum, self.step, self.checkpoint, self.announces = signum, step, checkpoint, announces
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: stopped after step {step} and saved {checkpoint}. "
            "Resume with --ckpt_path last (same config)."
        )


class GracefulStop(Callback):
    """On SIGINT or SIGTERM, finish the current training step, write ``last.ckpt`` and stop.

    The signal only sets a flag; the checkpoint is written between two steps, where the weights,
    optimizer, loop and random states all agree, so resuming from it is exact. After an epoch's last
    step, the stop waits for the epoch's end (its figures, validation and checkpoints) and the next
    epoch's first step; after the fit's last step, the fit ends whole. A second Ctrl+C stops at once,
    without a checkpoint.
    """

    def __init__(self) -> None:
        self._received: int | None = None
        self._previous: dict[int, object] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        raise_if_stopped()  # one Python dropped as a DataLoader started its workers: nothing trained
        self._received = None
        try:
            self._previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
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
        # Not after an epoch's last step: Lightning resumes a checkpoint written there with the next epoch,
        # losing this one's end (its training figures, validation and checkpoints). The stop comes after
        # the next step; after the fit's last step, the fit ends whole.
        if not last_of_epoch and self._agreed(trainer):
            self._stop(trainer, self._signal_received(trainer))

    def _agreed(self, trainer: Trainer) -> bool:
        """Whether to stop: every rank must stop at the same step, even if one got the signal."""
        received = self._received is not None
        if trainer.world_size > 1:
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        return received

    def _signal_received(self, trainer: Trainer) -> int:
        """The signal that stops the fit, as one rank got it: ``kill`` may reach a single rank."""
        if trainer.world_size == 1:
            return self._received
        received = torch.tensor(self._received or 0, device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(received, reduce_op="max"))

    def _stop(self, trainer: Trainer, signum: int) -> None:
        if trainer.checkpoint_callback:
            folder = Path(trainer.checkpoint_callback.dirpath)
        else:  # checkpointing off: where a run's checkpoints go, so that --ckpt_path last finds it
            folder = Path(trainer.log_dir or trainer.default_root_dir) / CHECKPOINTS
        checkpoint = folder / LAST
        trainer.save_checkpoint(checkpoint, weights_only=False)
        raise Stopped(signum, trainer.global_step, checkpoint, announces=trainer.is_global_zero)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            if signal.getsignal(signum) == self._handle:  # Lightning may have restored its own already
                signal.signal(signum, handler)
        self._previous = {}
