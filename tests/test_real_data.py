"""On the real Fashion-MNIST (skipped, with the reason, when no copy is reachable)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from fashion_lightning.cli import FashionLightningCLI, main
from fashion_lightning.data import FashionMNISTDataModule
from fashion_lightning.data.files import load_split, raw_dir

pytestmark = pytest.mark.real_data
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def datamodule(real_data_dir) -> FashionMNISTDataModule:
    dm = FashionMNISTDataModule(data_dir=str(real_data_dir), download=False)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    return dm


def test_sizes_classes_and_normalisation_constants(datamodule):
    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (
        55_000,
        5_000,
        10_000,
    )
    train = torch.cat([datamodule.train_set.tensors[0], datamodule.val_set.tensors[0]]).float() / 255
    assert (round(train.mean().item(), 4), round(train.std().item(), 4)) == (datamodule.mean, datamodule.std)
    assert torch.bincount(datamodule.test_set.tensors[1]).tolist() == [1000] * 10


def test_batches_equal_torchvisions_fashion_mnist(datamodule, real_data_dir):
    """Image for image, what torchvision's FashionMNIST (PIL, ToTensor, Normalize) gives for these files."""
    normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    reference = FashionMNIST(str(real_data_dir), train=False, transform=normalize)
    assert list(datamodule.classes) == reference.classes
    start = 0
    for batch_index, batch in enumerate(datamodule.test_dataloader()):
        if batch_index == 3:
            break
        images, labels = datamodule.on_after_batch_transfer(batch, 0)
        for offset in range(0, len(labels), 97):
            image, label = reference[start + offset]
            torch.testing.assert_close(images[offset], image, rtol=0, atol=1e-6)
            assert labels[offset].item() == label
        start += len(labels)
    # the training split takes its images from torchvision's training set, labels with them
    train_reference = FashionMNIST(str(real_data_dir), train=True)
    images, labels = datamodule.train_set.tensors
    for i in (0, 1234, 54_999):
        match = (train_reference.data == images[i, 0]).flatten(1).all(dim=1).nonzero().flatten()
        assert len(match) >= 1 and (train_reference.targets[match] == labels[i]).all()


def test_one_epoch_of_the_dropout_config_passes_70_percent(real_data_dir, tmp_path):
    config = ["--config", str(REPO / "configs/dropout.yaml"), f"--data.data_dir={real_data_dir}"]
    trainer = [
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
    ]
    args = ["fit", *config, *trainer]
    fit = FashionLightningCLI(args=args)
    fit.trainer.test(fit.model, datamodule=fit.datamodule, ckpt_path="best")
    assert fit.trainer.callback_metrics["test/acc"].item() > 0.70


def test_photo_like_copies_of_test_images_are_classified_above_80_percent(real_data_dir, tmp_path):
    """The issue's user check: big RGB images, dark garment on a white page, through `predict`."""
    root = tmp_path / "runs"
    data = [f"--data.data_dir={real_data_dir}", "--trainer.enable_progress_bar=false"]
    fit = ["fit", "--config", str(REPO / "configs/dropout_tuned.yaml"), f"--trainer.default_root_dir={root}"]
    FashionLightningCLI(args=[*fit, *data, "--pictures.every_n_epochs=0"])
    images, labels = load_split(raw_dir(real_data_dir), train=False)
    folder = tmp_path / "photos"
    folder.mkdir()
    picked = range(0, len(images), 50)
    for i in picked:
        garment = ImageOps.invert(Image.fromarray(images[i].numpy())).resize(
            (280, 280), Image.Resampling.BICUBIC
        )
        page = Image.new("RGB", (400, 360), "white")
        page.paste(garment.convert("RGB"), (60, 40))
        page.save(folder / f"{i:05d}.jpg", quality=90)
    output = tmp_path / "predictions.csv"
    predict = ["predict", "--ckpt_path=best", f"--trainer.default_root_dir={root}"]
    main([*predict, *data, f"--data.predict_images={folder}", f"--predictions.output={output}"])
    rows = list(csv.DictReader(output.open()))
    truth = [FashionMNISTDataModule.classes[labels[i]] for i in picked]
    accuracy = sum(row["predicted"] == name for row, name in zip(rows, truth, strict=True)) / len(rows)
    assert len(rows) == len(picked) and accuracy >= 0.80, f"{accuracy:.1%}"
