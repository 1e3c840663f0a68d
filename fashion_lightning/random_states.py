"""The state of every random generator a run draws from, as plain tensors a checkpoint can hold.

Checkpoints are read with ``torch.load(weights_only=True)``, which refuses numpy objects, so numpy's
state is stored as a tensor and rebuilt on load.
"""

from __future__ import annotations

import random

import numpy as np
import torch

RANDOM_STATES = "random_states"


def random_states() -> dict:
    numpy_kind, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # this process's device only: every DDP rank drew the same numbers from its own device's
        # generator (seeded alike), and each restores the state saved by rank 0 to its own device
        "cuda": torch.cuda.get_rng_state()
        if torch.cuda.is_available()
        else torch.empty(0, dtype=torch.uint8),
        "numpy": (
            numpy_kind,
            torch.from_numpy(numpy_keys.astype(np.int64)),
            numpy_pos,
            numpy_has_gauss,
            numpy_gauss,
        ),
        "python": random.getstate(),
    }


def set_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if len(states["cuda"]) and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
