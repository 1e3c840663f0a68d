"""Lightning's ``ModelCheckpoint``, with its state key worked out once.

Lightning names every callback by its ``state_key`` at each hook it calls, several times a training
step, and ``ModelCheckpoint`` formats its key from its settings each time; the run's two of them (the
best checkpoint and ``last.ckpt``) spent a measurable share of a small net's step on it (BENCHMARKS.md).
The settings that make the key are fixed when the callback is made. The class keeps its parent's name,
so the key is the same: checkpoints written with either class resume with the other.
"""

from __future__ import annotations

import functools

from lightning.pytorch import callbacks


class ModelCheckpoint(callbacks.ModelCheckpoint):
    state_key = functools.cached_property(callbacks.ModelCheckpoint.state_key.fget)
