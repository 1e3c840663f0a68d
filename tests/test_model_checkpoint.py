"""The CLI's checkpoint callbacks are Lightning's ModelCheckpoint with the state key made once: the same
key, so the callbacks' states in a checkpoint are found by either class, and a name of their own, so a
config still names Lightning's class by its short name."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch import callbacks

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.model_checkpoint import RunCheckpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "settings",
    [{}, {"monitor": "val/acc", "mode": "max"}, {"every_n_train_steps": 5}, {"every_n_epochs": 2}],
)
def test_the_state_key_is_lightnings_and_is_made_once(settings):
    ours = RunCheckpoint(**settings)
    assert ours.state_key == callbacks.ModelCheckpoint(**settings).state_key
    assert ours.state_key is ours.state_key, "formatted once, not at every hook"


def test_a_config_names_lightnings_model_checkpoint_by_its_short_name(tmp_path):
    args = [
        f"--config={REPO / 'configs/dropout.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=ModelCheckpoint",
        "--trainer.callbacks.monitor=val/loss",
    ]
    run = FashionLightningCLI(args=args, run=False)
    theirs = [c for c in run.trainer.callbacks if type(c) is callbacks.ModelCheckpoint]
    assert [c.monitor for c in theirs] == ["val/loss"]
    assert sum(isinstance(c, RunCheckpoint) for c in run.trainer.callbacks) == 2
