"""Batched augmentation: shapes, dtypes, label alignment, per-image randomness, and off means off."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer

from fashion_lightning.data import Augmentation, FashionMNIST, ImageDataModule
from fashion_lightning.data.augmentation import random_crop, random_erase, random_hflip, random_shadow


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randint(
        0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


@pytest.mark.parametrize(
    "augment",
    [
        Augmentation(crop_padding=3),
        Augmentation(hflip=True),
        Augmentation(erase_prob=1.0),
        Augmentation(shadow_prob=1.0),
        Augmentation(crop_padding=2, hflip=True, erase_prob=0.5, shadow_prob=0.5),
    ],  # fmt: skip
)
def test_augmentation_keeps_shape_and_dtype(batch, augment):
    out = augment(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype and out.device == batch.device
    assert not torch.equal(out, batch)


def test_crop_is_a_translation_per_image_within_the_padding(batch):
    torch.manual_seed(1)
    out = random_crop(batch, padding=2)
    shifts = set()
    for original, moved in zip(batch, out, strict=True):
        padded = torch.nn.functional.pad(original, (2, 2, 2, 2))
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[:, dy : dy + 28, dx : dx + 28], moved)
        ]
        assert found, "every output is a window of its own padded input"
        shifts.add(found[0])
    assert len(shifts) > 5, "offsets are drawn per image, not once per batch"


def test_hflip_mirrors_about_half_of_the_images(batch):
    torch.manual_seed(2)
    out = random_hflip(batch)
    flipped = [torch.equal(o, b.flip(-1)) for o, b in zip(out, batch, strict=True)]
    kept = [torch.equal(o, b) for o, b in zip(out, batch, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48


def test_erasing_replaces_one_rectangle_in_the_chosen_images():
    torch.manual_seed(3)
    zeros = torch.zeros(200, 1, 28, 28, dtype=torch.uint8)
    out = random_erase(zeros, prob=0.5)
    changed = out.ne(0).flatten(1).any(dim=1)
    assert 60 < changed.sum() < 140
    for image in out[changed]:
        rows, cols = image[0].ne(0).nonzero(as_tuple=True)
        box = image[0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        area = box.numel()
        assert 0.01 * 784 <= area <= 0.4 * 784
        assert box.ne(0).float().mean() > 0.9, "the changed pixels fill one rectangle"


def test_a_shadow_lies_on_one_side_of_the_object_and_under_none_of_it():
    torch.manual_seed(4)
    squares = torch.zeros(200, 1, 28, 28, dtype=torch.uint8)
    squares[:, :, 9:19, 9:19] = 255
    out = random_shadow(squares, prob=0.5)
    changed = out.ne(squares).flatten(1).any(dim=1)
    assert 60 < changed.sum() < 140
    assert out[:, :, 9:19, 9:19].eq(255).all(), "a solid object hides its shadow"
    sides = set()
    for image in out[changed, 0].float():
        rows, cols = image.nonzero(as_tuple=True)
        weights = image[rows, cols] * (image[rows, cols] < 255)  # the shadow alone
        row, col = (rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum()
        assert image.max() == 255 and 0.1 * 255 < image[image < 255].max() < 0.6 * 255
        assert max(abs(row - 13.5), abs(col - 13.5)) > 1.5, "the shadow is moved off the object's centre"
        sides.add((bool(row > 13.5), bool(col > 13.5)))
    assert len(sides) == 4, "each image's shadow falls its own way"


def test_bad_settings_are_refused_with_the_setting_named():
    with pytest.raises(ValueError, match="crop_padding"):
        Augmentation(crop_padding=-1)
    with pytest.raises(ValueError, match="erase_prob"):
        Augmentation(erase_prob=1.5)
    with pytest.raises(ValueError, match="shadow_prob"):
        Augmentation(shadow_prob=-0.1)


def test_the_data_module_augments_training_batches_only_and_keeps_labels(tiny_data):
    augment = Augmentation(crop_padding=2, hflip=True)
    source = FashionMNIST(str(tiny_data), download=False)
    dm = ImageDataModule(source, val_size=40, batch_size=50, augment=augment)
    dm.prepare_data()
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    dm.trainer = trainer
    torch.manual_seed(0)
    trainer.training = True
    train_out, train_labels = dm.on_after_batch_transfer((images, labels), 0)
    trainer.validating = True
    eval_out, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert train_labels is labels
    assert eval_out is images, "evaluation batches are never augmented"
    assert not torch.equal(train_out, eval_out) and train_out.dtype == torch.uint8
    # the tiny classes are bright horizontal bands: a shift of <= 2 rows and a mirror keep the band
    # near its label's height, so the label still describes the image
    band_rows = (train_out[:, 0] > 200).float().mean(dim=2).argmax(dim=1)
    assert ((band_rows - (2 + 2 * labels)).abs() <= 4).all()


def test_augmentation_off_is_a_no_op(tiny_data):
    dm = ImageDataModule(FashionMNIST(str(tiny_data), download=False), val_size=40)
    assert not dm.augment.enabled and not Augmentation().enabled
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(Augmentation()(images), images)
