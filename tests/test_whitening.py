"""``PatchWhitening``: a first convolution set from the training images, not trained (ConvBNNet's
``whitening``, which fast.yaml uses)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from test_cli import cli

from fashion_lightning.data import FashionMNIST, ImageDataModule
from fashion_lightning.errors import ConfigError
from fashion_lightning.models import ConvBNNet, ImageClassifier
from fashion_lightning.models.whitening import PatchWhitening

WHITENING = ["--model.net.whitening=true", "--model.net.widths=[16, 32]"]


def correlated_images(count: int = 300, channels: int = 1) -> torch.Tensor:
    """Smooth random images: neighbouring pixels vary together, as in photos."""
    noise = torch.randn(count, channels, 20, 20, generator=torch.Generator().manual_seed(0))
    return F.avg_pool2d(noise, 3, stride=1, padding=1) * 4 + 1


@pytest.mark.parametrize("channels", [1, 3])
def test_the_filters_whiten_the_patches_of_the_images_they_were_set_from(channels):
    images = correlated_images(channels=channels)
    layer = PatchWhitening(channels, 2 * 8)
    layer.fit_to_images(images)
    maps = F.conv2d(images, layer.weight)  # the patches inside the images, as they were measured
    kept = maps[:, :8].transpose(0, 1).flatten(1)
    torch.testing.assert_close(
        torch.cov(kept), torch.eye(8), atol=0.02, rtol=0
    )  # unit variance, uncorrelated
    torch.testing.assert_close(maps[:, 8:], -maps[:, :8])  # each direction with its negative


def test_a_fit_sets_the_first_convolution_from_the_data_and_never_trains_it(tiny_data, tmp_path):
    run = cli("fit", "fast", tiny_data, tmp_path, "--trainer.max_epochs=2", *WHITENING)
    first = run.model.net.features[0]
    assert isinstance(first, PatchWhitening) and not first.weight.requires_grad
    expected = PatchWhitening(1, 16)
    sample = run.datamodule.training_sample(len(run.datamodule.train_set))
    expected.fit_to_images(run.model.standardize(sample))
    torch.testing.assert_close(first.weight, expected.weight)  # after two epochs of training
    assert sum(p.requires_grad for p in run.model.parameters()) == len(list(run.model.parameters())) - 1


def test_a_resumed_fit_keeps_the_filters_its_checkpoint_holds(tiny_data, tmp_path):
    """Set once, by the run's first start: a resume loads them with the other weights (from other data,
    they would be set again from that data, and the later layers trained on the first filters)."""
    run = cli("fit", "fast", tiny_data, tmp_path, "--trainer.max_epochs=1", *WHITENING)
    filters = run.model.net.features[0].weight.clone()
    checkpoint = torch.load(tmp_path / "version_0/checkpoints/last.ckpt", weights_only=True)
    checkpoint["state_dict"]["net.features.0.weight"] += 1  # to tell the checkpoint's from new ones
    torch.save(checkpoint, tmp_path / "changed.ckpt")
    resumed = cli(
        "fit",
        "fast",
        tiny_data,
        tmp_path,
        "--trainer.max_epochs=1",
        *WHITENING,
        "--ckpt_path",
        str(tmp_path / "changed.ckpt"),
    )
    torch.testing.assert_close(resumed.model.net.features[0].weight, filters + 1)


@pytest.mark.parametrize(("widths", "channels"), [((15, 32), 1), ((20, 32), 1), ((56, 32), 3)])
def test_whitening_widths_a_patch_cannot_fill_are_refused_in_one_line(widths, channels):
    with pytest.raises(ConfigError, match=rf"widths\[0\] must be even and at most {channels * 18}, got"):
        ConvBNNet(channels, (28, 28), 10, widths=widths, whitening=True)


class WithoutSample(ImageDataModule):
    """A data module of one's own, which cannot give training images before training."""

    training_sample = None


def test_a_data_module_that_cannot_give_a_sample_is_refused_in_one_line(tiny_data, tmp_path):
    data = WithoutSample(source=FashionMNIST(root=str(tiny_data)), batch_size=20, val_size=40)
    model = ImageClassifier(net=partial(ConvBNNet, widths=(16, 32), whitening=True))
    trainer = Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match="sets itself from training images before the first step"):
        trainer.fit(model, datamodule=data)
