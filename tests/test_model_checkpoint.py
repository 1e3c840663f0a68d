"""The project's ModelCheckpoint is Lightning's with its state key made once: the same key, so the
callbacks' states in a checkpoint are found by either class."""

from __future__ import annotations

import pytest
from lightning.pytorch import callbacks

from fashion_lightning.model_checkpoint import ModelCheckpoint


@pytest.mark.parametrize(
    "settings",
    [{}, {"monitor": "val/acc", "mode": "max"}, {"every_n_train_steps": 5}, {"every_n_epochs": 2}],
)
def test_the_state_key_is_lightnings_and_is_made_once(settings):
    ours = ModelCheckpoint(**settings)
    assert ours.state_key == callbacks.ModelCheckpoint(**settings).state_key
    assert ours.state_key is ours.state_key, "formatted once, not at every hook"
    assert ModelCheckpoint.__qualname__ == callbacks.ModelCheckpoint.__qualname__
