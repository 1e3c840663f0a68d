"""`predict` on your own images: Fashion-MNIST-style conversion, the CSV, skipped files, clear errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from tiny_idx import write_tiny_fashion_mnist

from fashion_lightning.cli import FashionLightningCLI, main
from fashion_lightning.data import FashionMNIST
from fashion_lightning.data.photos import find_images, fit_image, read_image
from fashion_lightning.predictions import COLUMNS

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def to_fashion_mnist(image: Image.Image) -> torch.Tensor:
    """A photo as a Fashion-MNIST model's input, ``[28, 28]``."""
    return torch.from_numpy(np.asarray(fit_image(image, (28, 28), "object")).copy())


def garment() -> np.ndarray:
    """A 28x28 Fashion-MNIST-like image: a light, shaded shape on black, touching the top and bottom."""
    image = np.zeros((28, 28), dtype=np.uint8)
    for row in range(28):
        half = 4 + row // 4
        image[row, 14 - half : 14 + half] = 120 + 4 * row
    return image


def photo_like(image: np.ndarray, mode: str) -> Image.Image:
    """A copy as a photo would give it: 12x larger, dark garment on a white page with margins."""
    big = ImageOps.invert(Image.fromarray(image)).resize((336, 336), Image.Resampling.BICUBIC)
    page = Image.new("L", (500, 420), 255)
    page.paste(big, (70, 40))
    if mode == "RGBA":  # a cut-out: the page is transparent instead of white
        rgba = Image.merge("RGBA", [page, page, page, ImageOps.invert(page).point(lambda v: 255 if v else 0)])
        return rgba
    return page.convert(mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_photo_like_copies_come_back_as_the_original(mode, tmp_path):
    path = tmp_path / f"copy.{'png' if mode == 'RGBA' else 'jpg'}"
    photo_like(garment(), mode).save(path)
    converted = to_fashion_mnist(read_image(path, channels=1))
    assert converted.shape == (28, 28) and converted.dtype == torch.uint8
    difference = (converted.float() - torch.from_numpy(garment()).float()).abs().mean()
    assert difference < 12, f"mean difference {difference:.1f} grey levels"


def test_light_on_dark_images_are_not_inverted():
    image = np.zeros((100, 60), dtype=np.uint8)
    image[10:90, 20:40] = 200
    converted = to_fashion_mnist(Image.fromarray(image))
    # light on black, stretched to the full range as Fashion-MNIST's images are
    assert converted[14, 14] == 255 and converted[14, 0] == 0, "object light, background black"
    # the object (80x20) is scaled to fill the 28 rows, centred, aspect kept: 7 columns wide
    assert (converted[14] > 100).sum() == 7


def test_find_images_reads_folders_in_order_and_rejects_missing_paths(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(b"")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert find_images([tmp_path])[0] == [tmp_path / "b.png", tmp_path / "sub" / "a.jpg"]
    with pytest.raises(FileNotFoundError, match="neither an image file nor a folder"):
        find_images([tmp_path / "missing"])


def test_find_images_expands_a_home_folder(tmp_path, monkeypatch):
    """``--data.predict_images=~/photos``: the shell leaves a ``~`` after ``=`` as it is."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_images(["~/photos"])[0] == [tmp_path / "photos" / "a.png"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("predict")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    args = ["fit", f"--config={REPO / 'configs/baseline.yaml'}", f"--data.source.root={data_dir}"]
    args += ["--data.val_size=40", "--trainer.max_epochs=2", f"--trainer.default_root_dir={tmp / 'runs'}"]
    FashionLightningCLI(args=[*args, *QUIET, "--pictures.every_n_epochs=0"])
    return {"data_dir": data_dir, "ckpt": tmp / "runs" / "version_0" / "checkpoints" / "last.ckpt"}


def predict(checkpoint: dict, tmp_path: Path, *extra: str) -> None:
    """`fashion-lightning predict --ckpt_path X` as a user types it: no config, only the checkpoint."""
    args = ["predict", f"--ckpt_path={checkpoint['ckpt']}", f"--data.source.root={checkpoint['data_dir']}"]
    main([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}", *QUIET, *extra])


def test_predict_a_folder_writes_the_csv_and_skips_broken_files(checkpoint, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    images = FashionMNIST(str(checkpoint["data_dir"])).load(train=False).images[:, 0]
    for i in range(5):
        Image.fromarray(images[i].numpy()).resize((140, 140)).convert("RGB").save(folder / f"{i}.png")
    photo_like(garment(), "RGBA").save(folder / "more" / "cutout.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (folder / "notes.txt").write_text("not an image")
    output = tmp_path / "out" / "predictions.csv"
    with pytest.warns(UserWarning) as warned:
        predict(checkpoint, tmp_path, f"--data.predict_images={folder}", f"--predictions.output={output}")
    skipped = sorted(str(w.message) for w in warned if str(w.message).startswith("skipped"))
    assert [message.split(":")[0] for message in skipped] == [
        f"skipped {folder / 'broken.jpg'}",
        f"skipped {folder / 'notes.txt'}",
    ]
    rows = list(csv.DictReader(output.open()))
    assert [row["path"] for row in rows] == [str(folder / f"{i}.png") for i in range(5)] + [
        str(folder / "more" / "cutout.png")
    ]
    assert tuple(rows[0]) == COLUMNS
    for row in rows:
        probabilities = [
            float(row[key]) for key in ("probability", "second_probability", "third_probability")
        ]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001
        assert len({row["predicted"], row["second"], row["third"]}) == 3
    assert f"Predicted 6 images; wrote {output}" in capsys.readouterr().out
    assert not list(output.parent.glob(".*partial")), "written whole, then renamed"


def test_predict_without_images_labels_the_test_set(checkpoint, tmp_path, capsys):
    output = tmp_path / "test.csv"
    predict(checkpoint, tmp_path, f"--predictions.output={output}")
    rows = list(csv.DictReader(output.open()))
    test = FashionMNIST(str(checkpoint["data_dir"])).load(train=False)
    labels, classes = test.labels, test.classes
    assert [row["path"] for row in rows] == [f"test image {i}" for i in range(len(labels))]
    assert [row["true"] for row in rows] == [classes[label] for label in labels.tolist()]
    right = sum(row["predicted"] == row["true"] for row in rows)
    assert f"Accuracy: {right / len(rows):.2%} ({right}/{len(rows)})" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: None, "holds no readable image (0 files skipped)"),
        (lambda folder: (folder / "a.txt").write_text("x"), "holds no readable image (1 files skipped)"),
    ],
    ids=["empty folder", "no image in it"],
)
def test_predict_on_a_folder_without_images_is_a_clear_error(make, message, checkpoint, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    make(folder)
    with pytest.raises(SystemExit, match=re.escape(message)):
        predict(checkpoint, tmp_path, f"--data.predict_images={folder}")


def test_predict_on_a_missing_path_is_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(SystemExit, match="is neither an image file nor a folder"):
        predict(checkpoint, tmp_path, f"--data.predict_images={tmp_path / 'nowhere'}")


def test_predict_on_photos_needs_only_the_checkpoint(
    checkpoint, tmp_path, monkeypatch, no_system_copies, capsys
):
    """No config, no data set anywhere (no data folder, no copy, no network): the checkpoint suffices."""
    monkeypatch.setattr("torchvision.datasets.FashionMNIST.mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.chdir(tmp_path)
    photo_like(garment(), "RGB").save(tmp_path / "garment.jpg")
    main(["predict", f"--ckpt_path={checkpoint['ckpt']}", "--data.predict_images=garment.jpg", *QUIET])
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert [row["path"] for row in rows] == ["garment.jpg"]
    assert "Predicted 1 image;" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garment.jpg", "predictions.csv"], (
        "nothing else written"
    )


def test_predict_overwrites_an_earlier_csv_and_no_other_file(checkpoint, tmp_path):
    output = tmp_path / "predictions.csv"
    predict(checkpoint, tmp_path, f"--predictions.output={output}", "--trainer.limit_predict_batches=1")
    predict(checkpoint, tmp_path, f"--predictions.output={output}")  # an earlier CSV: written again
    assert len(output.read_text().splitlines()) == 61
    kept = tmp_path / "kept.ckpt"
    kept.write_bytes(checkpoint["ckpt"].read_bytes())
    for other in (kept, checkpoint["ckpt"]):
        with pytest.raises(
            SystemExit, match=f"predictions.output: {other} exists and is no earlier predictions"
        ):
            predict(checkpoint, tmp_path, f"--predictions.output={other}")
    assert kept.read_bytes() == checkpoint["ckpt"].read_bytes(), "the checkpoint is left as it was"
