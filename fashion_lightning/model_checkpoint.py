"""Lightning's ``ModelCheckpoint``, with its state key worked out once, and a periodic checkpoint due
after an epoch's last step written at the epoch's end.

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

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        """``every_n_train_steps``' checkpoints; one due after an epoch's last step is written at the
        epoch's end instead (``on_train_epoch_end``). Lightning resumes a checkpoint written before that
        end with the next epoch: a crash in between (in the epoch's validation, say) would lose the
        epoch's figures, validation and checkpoints."""
        if batch_idx + 1 != trainer.num_training_batches:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # the last step's periodic checkpoint, unless one was written at this step (validation's, say)
        super().on_train_batch_end(trainer, pl_module, None, None, trainer.num_training_batches - 1)

    @functools.cached_property
    def state_key(self) -> str:
        return ModelCheckpoint.__qualname__ + super().state_key.removeprefix(type(self).__qualname__)
