"""Lightning's ``ModelCheckpoint``, with its state key worked out once and no periodic checkpoint on an
epoch's last step.

Lightning names every callback by its ``state_key`` at each hook it calls, several times a training
step, and ``ModelCheckpoint`` formats its key from its settings each time; the run's two of them (the
best checkpoint and ``last.ckpt``) spent a measurable share of a small net's step on it (BENCHMARKS.md).
The settings that make the key are fixed when the callback is made.
"""

from __future__ import annotations

import functools

from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """The CLI's ``best_checkpoint`` and ``last_checkpoint``. A name of its own, so that a config can still
    name Lightning's class as ``ModelCheckpoint``; its key is the one Lightning's class would have, so
    checkpoints written with either resume with the other."""

    _epoch_last_batch: int | None = None  # a periodic checkpoint put off to the epoch's end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        """``every_n_train_steps``' checkpoints; one due after an epoch's last step is written at the
        epoch's end instead (``on_train_epoch_end``). Lightning resumes a checkpoint written before that
        end with the next epoch: a crash in between (in the epoch's validation, say) would lose the
        epoch's figures, validation and checkpoints."""
        if batch_idx + 1 == trainer.num_training_batches:
            self._epoch_last_batch = batch_idx
        else:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._epoch_last_batch is not None:  # written now, unless validation's was at this step
            batch_idx, self._epoch_last_batch = self._epoch_last_batch, None
            super().on_train_batch_end(trainer, pl_module, None, None, batch_idx)

    @functools.cached_property
    def state_key(self) -> str:
        return ModelCheckpoint.__qualname__ + super().state_key.removeprefix(type(self).__qualname__)
