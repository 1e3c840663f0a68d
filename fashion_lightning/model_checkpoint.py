"""Lightning's ``ModelCheckpoint``, with its state key worked out once.

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

    @functools.cached_property
    def state_key(self) -> str:
        return ModelCheckpoint.__qualname__ + super().state_key.removeprefix(type(self).__qualname__)
