"""Test-time augmentation: the mean of the views' probabilities, in validation, test and predict, set
by the command that evaluates (a config or a flag), whatever the checkpoint was trained with."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_cli import QUIET, data_args
from test_training_recipe import CONTRACT
from tiny_idx import write_tiny_fashion_mnist

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.data import FashionMNIST
from fashion_lightning.models import ConvBNNet, ImageClassifier
from fashion_lightning.models import test_time_augmentation as tta

REPO = Path(__file__).resolve().parents[1]
FAST = f"--config={REPO / 'configs/fast.yaml'}"
FLIP_AND_SHIFTS = ["--model.test_time_augmentation.hflip=true", "--model.test_time_augmentation.shifts=2"]


def moved(images: torch.Tensor, n: int) -> list[torch.Tensor]:
    """``images`` moved ``n`` pixels right, left, down and up, black coming in: written out by hand."""
    right, left, down, up = (torch.zeros_like(images) for _ in range(4))
    right[..., n:] = images[..., :-n]
    left[..., :-n] = images[..., n:]
    down[..., n:, :] = images[..., :-n, :]
    up[..., :-n, :] = images[..., n:, :]
    return [right, left, down, up]


@torch.no_grad()
def by_hand(model: ImageClassifier, images: torch.Tensor, hflip: bool, shifts: int) -> torch.Tensor:
    """The mean of the model's probabilities over the views, one forward pass per view."""
    views = [images, *([images.flip(-1)] if hflip else []), *(moved(images, shifts) if shifts else [])]
    return torch.stack([model.eval()(view).softmax(dim=1) for view in views]).mean(dim=0)


@pytest.mark.parametrize(
    ("hflip", "shifts", "views"), [(False, 0, 1), (True, 0, 2), (False, 1, 5), (True, 2, 6)]
)
def test_the_views_probabilities_are_averaged(hflip, shifts, views):
    torch.manual_seed(0)
    model = ImageClassifier(ConvBNNet, CONTRACT).eval()
    model.test_time_augmentation = tta.TestTimeAugmentation(hflip=hflip, shifts=shifts)
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    assert model.test_time_augmentation.views == views
    with torch.no_grad():
        scores = model.evaluate(images)
    expected = by_hand(model, images, hflip, shifts)
    torch.testing.assert_close(scores.softmax(dim=1), expected)
    if views > 1:  # the scores are the log of the mean probabilities
        torch.testing.assert_close(scores.exp(), expected)


def test_each_view_is_a_pass_of_the_batchs_own_size():
    """Evaluation memory and a CPU's per-image speed depend on the pass's size: views must not be
    stacked into one pass of views x eval_batch_size images."""
    passes = []

    def classify(images: torch.Tensor) -> torch.Tensor:
        passes.append(len(images))
        return torch.zeros(len(images), 10)

    images = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    tta.TestTimeAugmentation(hflip=True, shifts=1)(classify, images)
    assert passes == [7] * 6


def test_views_run_in_bf16_autocast_with_channels_last():
    torch.manual_seed(0)
    model = ImageClassifier(ConvBNNet, CONTRACT, channels_last=True).eval()
    model.test_time_augmentation = tta.TestTimeAugmentation(hflip=True, shifts=1)
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model.evaluate(images)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores.exp(), by_hand(model, images, True, 1), atol=0.02, rtol=0)


def test_negative_shifts_are_refused():
    with pytest.raises(ValueError, match="shifts must be 0 or more"):
        tta.TestTimeAugmentation(shifts=-1)


def command(subcommand: str, data_dir: Path, root: Path, *extra: str, fast: bool = False) -> list[str]:
    """A CLI command on tiny data; ``fast``: configs/fast.yaml first (``root`` overrides its own)."""
    config = [f"--config={REPO / 'configs/fast.yaml'}"] if fast else []
    data = [*data_args(data_dir), "--data.val_size=40"]
    return [subcommand, *config, *data, f"--trainer.default_root_dir={root}", *QUIET, *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """fast.yaml (bf16, channels-last), validated with mirrored images: 2 epochs on tiny data."""
    tmp = tmp_path_factory.mktemp("tta")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    settings = [
        "--trainer.max_epochs=2",
        "--pictures.every_n_epochs=0",
        "--model.test_time_augmentation.hflip=true",
    ]
    run = FashionLightningCLI(args=command("fit", data_dir, tmp / "runs", *settings, fast=True))
    test = FashionMNIST(str(data_dir)).load(train=False)
    checkpoint = tmp / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    return {
        "data_dir": data_dir,
        "ckpt": checkpoint,
        "fit": run,
        "images": test.images,
        "labels": test.labels,
    }


def test_validation_measured_the_mirrored_views(trained):
    hparams = torch.load(trained["ckpt"], weights_only=True)["hyper_parameters"]
    assert hparams["test_time_augmentation"] == {"hflip": True, "shifts": 0}
    # validate with the same precision and views measures what fit's last validation did
    args = [f"--ckpt_path={trained['ckpt']}", "--model.test_time_augmentation.hflip=true"]
    check = FashionLightningCLI(
        args=command("validate", trained["data_dir"], trained["ckpt"].parents[2], *args, fast=True)
    )
    assert check.trainer.callback_metrics["val/loss"] == trained["fit"].trainer.callback_metrics["val/loss"]


@pytest.mark.parametrize(("flags", "hflip", "shifts"), [(FLIP_AND_SHIFTS, True, 2), ([], False, 0)])
def test_test_time_augmentation_is_the_test_commands(flags, hflip, shifts, trained, tmp_path):
    """Flags on the command line set it; without them it is off, though the checkpoint's is on. A test
    in float32, to compare with the views computed by hand."""
    args = [f"--ckpt_path={trained['ckpt']}", "--trainer.precision=32-true", *flags]
    run = FashionLightningCLI(args=command("test", trained["data_dir"], tmp_path, *args))
    assert run.model.test_time_augmentation == tta.TestTimeAugmentation(hflip=hflip, shifts=shifts)
    model = ImageClassifier.load_from_checkpoint(trained["ckpt"], map_location="cpu")
    probabilities, labels = by_hand(model, trained["images"], hflip, shifts), trained["labels"]
    metrics = run.trainer.callback_metrics
    assert metrics["test/loss"].item() == pytest.approx(F.nll_loss(probabilities.log(), labels).item())
    assert metrics["test/acc"].item() == pytest.approx((probabilities.argmax(1) == labels).float().mean())


def test_predict_averages_the_views_given_on_its_command_line(trained, tmp_path):
    args = [f"--ckpt_path={trained['ckpt']}", f"--predictions.output={tmp_path / 'p.csv'}", *FLIP_AND_SHIFTS]
    run = FashionLightningCLI(args=command("predict", trained["data_dir"], tmp_path, *args))
    probabilities = torch.cat(run.trainer.predict_loop.predictions)
    model = ImageClassifier.load_from_checkpoint(trained["ckpt"], map_location="cpu")
    torch.testing.assert_close(probabilities, by_hand(model, trained["images"], True, 2))
