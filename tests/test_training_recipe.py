"""The training settings the fast configs use: seeded order, label smoothing, one-cycle, channels-last."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_cli import cli

from fashion_lightning.data import InputContract
from fashion_lightning.models import ConvBNNet, DropoutNet, ImageClassifier

CONTRACT = InputContract(tuple("0123456789"), 1, (28, 28), (0.5,), (0.25,))


def weights(run) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def test_the_same_seed_trains_to_the_same_weights_and_another_seed_does_not(tiny_data, tmp_path):
    args = ["--trainer.max_epochs=2", "--trainer.accelerator=cpu"]
    first = weights(cli("fit", "dropout", tiny_data, tmp_path / "a", *args))
    again = weights(cli("fit", "dropout", tiny_data, tmp_path / "b", *args))
    other = weights(cli("fit", "dropout", tiny_data, tmp_path / "c", *args, "--seed_everything=7"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_the_shuffle_seed_alone_changes_the_data_order(tiny_data, tmp_path):
    args = ["--trainer.max_epochs=1", "--trainer.accelerator=cpu"]
    first = weights(cli("fit", "dropout", tiny_data, tmp_path / "a", *args, "--data.shuffle_seed=1"))
    other = weights(cli("fit", "dropout", tiny_data, tmp_path / "b", *args, "--data.shuffle_seed=2"))
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_one_cycle_spans_exactly_the_run_and_steps_every_batch(tiny_data, tmp_path):
    # 200 training images in batches of 128: 2 steps an epoch, 3 epochs
    run = cli("fit", "fast", tiny_data, tmp_path, "--trainer.max_epochs=3", "--trainer.accelerator=cpu")
    scheduler = run.trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "step"
    assert scheduler.scheduler.total_steps == 6 == run.trainer.global_step == scheduler.scheduler.last_epoch


def test_a_per_step_scheduler_without_total_steps_is_refused_clearly(tiny_data, tmp_path):
    scheduler = ["--model.scheduler=torch.optim.lr_scheduler.StepLR", "--model.scheduler.step_size=1"]
    with pytest.raises(ValueError, match="scheduler_interval=step builds the scheduler with total_steps"):
        cli("fit", "fast", tiny_data, tmp_path, "--trainer.max_epochs=1", *scheduler)


def test_train_loss_and_acc_are_the_means_over_the_epochs_images(tiny_data, tmp_path):
    # A learning rate of 0 keeps the baseline net (no dropout, no batch norm) fixed for the epoch, so
    # the logged train/loss and train/acc must be its loss and accuracy on the whole training split.
    run = cli("fit", "baseline", tiny_data, tmp_path, "--trainer.max_epochs=1", "--model.optimizer.lr=0")
    images, labels = run.datamodule.train_set.images, run.datamodule.train_set.labels
    with torch.no_grad():
        logits = run.model(images)
    logged = run.trainer.callback_metrics
    torch.testing.assert_close(logged["train/loss"], F.cross_entropy(logits, labels), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logged["train/acc"], (logits.argmax(dim=1) == labels).float().mean())


def test_label_smoothing_changes_the_training_loss_only():
    torch.manual_seed(0)
    model = ImageClassifier(DropoutNet, CONTRACT, label_smoothing=0.2).eval()
    batch = (torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    logits = model(batch[0])
    smoothed, *_ = model.model_step(batch, model.hparams.label_smoothing)
    plain, *_ = model.model_step(batch)
    torch.testing.assert_close(smoothed, F.cross_entropy(logits, batch[1], label_smoothing=0.2))
    torch.testing.assert_close(plain, F.cross_entropy(logits, batch[1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        ImageClassifier(DropoutNet, CONTRACT, label_smoothing=1.0)


def test_channels_last_computes_the_same_function():
    torch.manual_seed(0)
    model = ImageClassifier(ConvBNNet, CONTRACT, channels_last=True).eval()
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    assert model.net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    net = ConvBNNet(1, (28, 28), 10).eval()
    net.load_state_dict(model.net.state_dict())
    torch.testing.assert_close(model(images), net((images / 255 - 0.5) / 0.25), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("widths, depth, params", [((32, 64, 128), 1, 104_426), ((32, 64, 128), 2, 298_410)])
def test_conv_bn_net_shapes_and_size(widths, depth, params):
    net = ConvBNNet(1, (28, 28), 10, widths=widths, depth=depth)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert sum(p.numel() for p in net.parameters()) == params < 1_000_000
    with pytest.raises(ValueError, match="positive widths and depth"):
        ConvBNNet(1, (28, 28), 10, depth=0)
    with pytest.raises(ValueError, match="halves the image 3 times, too often for 6x6 pixels"):
        ConvBNNet(1, (6, 6), 10)
