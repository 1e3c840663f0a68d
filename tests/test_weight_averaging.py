"""Weight averaging (Lightning's EMAWeightAveraging) switched on by a config file: training is unchanged,
and validation, checkpoints, test and the model after fit use the averaged weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, LearningRateMonitor
from test_cli import QUIET, data_args
from tiny_idx import write_tiny_fashion_mnist

from fashion_lightning.cli import FashionLightningCLI, main
from fashion_lightning.graceful_stop import GracefulStop
from fashion_lightning.model_checkpoint import RunCheckpoint
from fashion_lightning.viz.callback import PictureLogger

REPO = Path(__file__).resolve().parents[1]
DECAY = 0.8
# a config layer as a user writes one; the second layer's callback list must not drop it, nor it the CLI's
EMA_YAML = f"""
weight_averaging:
  class_path: lightning.pytorch.callbacks.EMAWeightAveraging
  init_args: {{decay: {DECAY}}}
"""
MONITOR_YAML = "trainer: {callbacks: [{class_path: lightning.pytorch.callbacks.LearningRateMonitor}]}"


class HandAverage(Callback):
    """The exponential moving average of the weights after every optimizer step, by torch's formula
    (the first step's weights as they are, then ``decay * average + (1 - decay) * weights``)."""

    def __init__(self, decay: float) -> None:
        self.decay, self.average = decay, None

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items() if v.is_floating_point()}
        if self.average is None:
            self.average = weights
        else:
            self.average = {
                k: self.decay * a + (1 - self.decay) * weights[k] for k, a in self.average.items()
            }


def command(subcommand: str, data_dir: Path, root: Path, *extra: str) -> list[str]:
    """fast.yaml (batch norm, whose statistics are averaged too; bf16; channels-last): 5 steps an epoch."""
    settings = [f"--config={REPO / 'configs/fast.yaml'}", *data_args(data_dir), "--data.val_size=40"]
    settings += ["--data.batch_size=40", "--trainer.max_epochs=2", "--pictures.every_n_epochs=0"]
    return [subcommand, *settings, f"--trainer.default_root_dir={root}", *QUIET, *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The same training twice: plainly, with the moving average computed by hand, and with the CLI's
    weight averaging from config files."""
    tmp = tmp_path_factory.mktemp("weight-averaging")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    hand = HandAverage(DECAY)
    plain = FashionLightningCLI(
        args=command("fit", data_dir, tmp / "plain"), trainer_defaults={"callbacks": [hand]}
    )
    (tmp / "ema.yaml").write_text(EMA_YAML)
    (tmp / "monitor.yaml").write_text(MONITOR_YAML)
    layers = [f"--config={tmp / 'ema.yaml'}", f"--config={tmp / 'monitor.yaml'}"]
    averaged = FashionLightningCLI(args=command("fit", data_dir, tmp / "ema", *layers))
    return {"data_dir": data_dir, "root": tmp / "ema", "hand": hand.average, "plain": plain, "ema": averaged}


def test_a_config_layer_adds_weight_averaging_first_and_keeps_every_other_callback(runs):
    kinds = [type(callback) for callback in runs["ema"].trainer.callbacks]
    assert kinds[0] is EMAWeightAveraging, "before GracefulStop, which saves a step's weights"
    assert {LearningRateMonitor, RunCheckpoint, PictureLogger, GracefulStop} <= set(kinds)
    assert kinds.count(RunCheckpoint) == 2
    assert not any(isinstance(c, EMAWeightAveraging) for c in runs["plain"].trainer.callbacks)


def test_checkpoints_hold_the_moving_average_of_an_unchanged_training(runs):
    last = torch.load(runs["root"] / "version_0/checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 10 and last["averaging_state"]["n_averaged"] == 10
    # the trained weights are the plain run's: averaging only watches
    for name, value in runs["plain"].model.state_dict().items():
        assert torch.equal(last["current_model_state"][name], value), name
    # the checkpoint's weights are their moving average, batch-norm statistics included
    for name, value in runs["hand"].items():
        torch.testing.assert_close(last["state_dict"][name], value, msg=name)
        assert not torch.equal(value, last["current_model_state"][name]) or "standardize" in name, name
    # and so is the model once fit ends
    weights = runs["ema"].model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in last["state_dict"].items())


def test_validation_best_checkpoint_and_test_use_the_averaged_weights(runs):
    fitted, root = runs["ema"].trainer.callback_metrics, runs["root"]
    # a fresh validate of last.ckpt (its state_dict: the average) measures what fit's validation did
    check = FashionLightningCLI(args=command("validate", runs["data_dir"], root, "--ckpt_path=last"))
    # (to float32 rounding: a convolution may sum in another order in a fresh process)
    torch.testing.assert_close(
        check.trainer.callback_metrics["val/loss"], fitted["val/loss"], rtol=1e-5, atol=0
    )
    assert check.trainer.callback_metrics["val/acc"] == fitted["val/acc"]
    # test of the best checkpoint, chosen by that val/acc, tests its averaged weights, with no callback
    tested = FashionLightningCLI(args=command("test", runs["data_dir"], root, "--ckpt_path=best"))
    best = torch.load(tested.config["test"]["ckpt_path"], weights_only=True)
    weights = tested.model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in best["state_dict"].items())
    assert not any(isinstance(c, EMAWeightAveraging) for c in tested.trainer.callbacks)


def test_resuming_an_averaged_run_without_averaging_is_refused(runs):
    args = command("fit", runs["data_dir"], runs["root"], "--ckpt_path=last", "--trainer.max_epochs=3")
    with pytest.raises(SystemExit, match="the checkpoint was trained with weight averaging"):
        main(args)


def test_a_later_layer_switches_averaging_off(runs, tmp_path):
    ema = runs["root"].parent / "ema.yaml"
    args = command("fit", runs["data_dir"], tmp_path, f"--config={ema}", "--weight_averaging=null")
    run = FashionLightningCLI(args=args[1:], run=False)
    assert not any(isinstance(c, EMAWeightAveraging) for c in run.trainer.callbacks)
