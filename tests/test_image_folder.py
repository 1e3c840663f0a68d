"""``ImageFolder``: a folder of one's own images, one subfolder per class, decoded once into a cache or
streamed from disk, and trained on from the CLI. The images are drawn by the tests (coloured shapes of
mixed sizes, formats and modes), or are scikit-learn's real 8x8 digits written out as PNG and JPEG."""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from fashion_lightning.cli import FashionLightningCLI, main
from fashion_lightning.data import DataError, ImageDataModule, ImageFolder, InputContract, LabelledImages
from fashion_lightning.data.batches import usable_cpus
from fashion_lightning.data.image_folder import ImageFiles, decode
from fashion_lightning.data.photos import to_input
from fashion_lightning.errors import ConfigError, from_worker
from fashion_lightning.export import main as export
from fashion_lightning.models import ImageClassifier

REPO = Path(__file__).resolve().parents[1]
QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--pictures.every_n_epochs=0",
]
SHAPES = ("circle", "square", "triangle")  # the classes, sorted; each one the same when mirrored
SIZES = [(40, 30), (64, 64), (50, 80), (33, 47)]  # (width, height)


def draw_shape(shape: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A coloured shape on a light background, at a random place and scale."""
    width, height = size
    background = tuple(rng.randint(200, 255) for _ in range(3))
    image = Image.new("RGB", size, background)
    radius = min(width, height) * rng.uniform(0.25, 0.4)
    x = width / 2 + rng.uniform(-0.1, 0.1) * width
    y = height / 2 + rng.uniform(-0.1, 0.1) * height
    colour = {"circle": (220, 40, 40), "square": (40, 60, 220)}.get(shape, (30, 170, 60))
    pen = ImageDraw.Draw(image)
    if shape == "circle":
        pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    elif shape == "square":
        pen.rectangle((x - radius, y - radius, x + radius, y + radius), fill=colour)
    else:
        pen.polygon([(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)], fill=colour)
    return image


def write_shapes(folder: Path, per_class: int = 12, seed: int = 0, classes=SHAPES) -> Path:
    """``folder/<shape>/<n>.png|jpg``: mixed sizes, PNG and JPEG, every third grayscale, and one RGBA
    PNG whose background is transparent."""
    rng = random.Random(seed)
    for shape in classes:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            image = draw_shape(shape, SIZES[n % len(SIZES)], rng)
            if n % 3 == 2:
                image = image.convert("L")
            if shape == "circle" and n == 0:
                image = image.convert("RGBA")
                image.putalpha(Image.eval(image.convert("L"), lambda v: 0 if v > 190 else 255))
            image.save(folder / shape / (f"{n:02d}.jpg" if n % 2 else f"{n:02d}.png"))
    return folder


def folder_source(root: Path, tmp_path: Path, **settings) -> ImageFolder:
    settings = {"size": 16, "cache_dir": str(tmp_path / "cache"), "workers": 0, **settings}
    return ImageFolder(str(root), **settings)


def class_of(path: Path) -> str:
    return path.parent.name


def test_classes_from_subfolders_and_a_seeded_hold_out(tmp_path):
    root = write_shapes(tmp_path / "photos", per_class=10)
    source = folder_source(root, tmp_path)
    source.prepare()
    train, test = source.load(train=True), source.load(train=False)
    assert list(train.classes) == list(test.classes) == list(SHAPES)

    train_paths, test_paths = source.image_paths(train=True), source.image_paths(train=False)
    assert set(train_paths).isdisjoint(test_paths)
    assert sorted(train_paths + test_paths) == sorted(root.glob("*/*"))
    assert 0 < len(test_paths) < 12  # about 20% of 30
    for images, paths in ((train, train_paths), (test, test_paths)):
        assert images.labels.tolist() == [SHAPES.index(class_of(path)) for path in paths]

    # the same seed holds out the same files, decoded afresh; another seed others
    assert folder_source(root, tmp_path, cache_dir=str(tmp_path / "other")).image_paths(False) == test_paths
    assert folder_source(root, tmp_path, split_seed=1).image_paths(False) != test_paths
    # adding images moves none of the others between the splits
    write_shapes(tmp_path / "more", per_class=5, seed=1)
    for path in (tmp_path / "more").glob("*/*"):
        path.rename(root / class_of(path) / f"new-{path.name}")
    grown = source.image_paths(train=False)
    assert set(grown) - set(root.glob("*/new-*")) == set(test_paths)
    # whatever the draw, every class keeps a training image
    assert set(folder_source(root, tmp_path, test_size=0.99).load(train=True).labels.tolist()) == {0, 1, 2}


def test_train_and_test_subfolders(tmp_path):
    root = tmp_path / "photos"
    write_shapes(root / "train", per_class=4)
    write_shapes(root / "test", per_class=3, seed=1, classes=SHAPES[1:])  # no circles to test
    (root / "test" / ".hidden").mkdir()  # not a class
    source = folder_source(root, tmp_path)
    train, test = source.load(train=True), source.load(train=False)
    assert list(train.classes) == list(test.classes) == list(SHAPES)
    assert len(train) == 12 and len(test) == 6
    assert test.labels.tolist() == [1, 1, 1, 2, 2, 2]  # the training classes' numbers
    assert all(path.parts[-3] == "test" for path in source.image_paths(train=False))

    write_shapes(root / "test", per_class=1, classes=["hexagon"])
    with pytest.raises(DataError, match=r"has class folders that .*train lacks \(hexagon\)"):
        source.load(train=False)


@pytest.mark.parametrize("channels", [1, 3])
def test_images_fitted_to_the_size_and_channels_as_predict_fits_a_photo(tmp_path, channels):
    root = write_shapes(tmp_path / "photos", per_class=4)
    source = folder_source(root, tmp_path, size=(12, 20), channels=channels)
    contract = InputContract(tuple(SHAPES), channels, (12, 20), (0.5,) * channels, (0.2,) * channels, "crop")
    decoded = {}
    for train in (True, False):
        images = source.load(train)
        assert isinstance(images, LabelledImages)
        assert images.images.dtype == torch.uint8 and images.image_shape == (channels, 12, 20)
        decoded |= dict(zip(source.image_paths(train), images.images, strict=True))
    assert len(decoded) == 12
    for path, image in decoded.items():
        assert torch.equal(image, to_input(path, contract))
    # the RGBA image's transparent background is white, as predict reads such a photo
    assert decoded[root / "circle" / "00.png"][:, 0, 0].tolist() == [255] * channels


def test_the_cache_is_written_once_reused_and_rebuilt_when_the_folder_changes(tmp_path, capsys):
    root = write_shapes(tmp_path / "photos", per_class=6)
    cache = tmp_path / "cache"
    folder_source(root, tmp_path).prepare()
    assert capsys.readouterr().out.count("decoding") == 2  # train and test
    files = sorted(cache.glob("*.pt"))
    assert len(files) == 2
    written = {file: (file.stat().st_mtime_ns, file.stat().st_ino) for file in files}

    again = folder_source(root, tmp_path)  # a second run
    again.prepare()
    assert torch.equal(again.load(train=True).images, folder_source(root, tmp_path).load(True).images)
    assert "decoding" not in capsys.readouterr().out
    assert {file: (file.stat().st_mtime_ns, file.stat().st_ino) for file in files} == written

    added = root / "square" / "added.png"
    draw_shape("square", (70, 70), random.Random(5)).save(added)
    changed = root / "circle" / "01.jpg"
    draw_shape("circle", (90, 20), random.Random(6)).save(changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    again.prepare()
    assert "decoding" in capsys.readouterr().out
    assert sorted(cache.glob("*.pt")) == files  # replaced, not added to
    for train in (True, False):
        images, paths = again.load(train), again.image_paths(train)
        for path in {added, changed} & set(paths):
            assert torch.equal(images.images[paths.index(path)], decode(path, 3, (16, 16)))
    assert sum(len(again.load(train)) for train in (True, False)) == 3 * 6 + 1

    folder_source(root, tmp_path, size=24).prepare()  # another setting: files of its own
    assert len(list(cache.glob("*.pt"))) == 4


def test_unreadable_and_hidden_files(tmp_path):
    root = tmp_path / "photos"
    write_shapes(root / "train", per_class=3)
    write_shapes(root / "test", per_class=1)
    (root / "train" / "square" / "notes.txt").write_text("not an image")
    png = (root / "train" / "square" / "00.png").read_bytes()
    (root / "train" / "square" / "broken.png").write_bytes(png[: len(png) // 2])
    (root / "train" / "square" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "train" / "square" / ".thumbnails").mkdir()
    (root / "train" / "square" / ".thumbnails" / "x.png").write_bytes(b"junk")
    (root / "train" / ".Trash").mkdir()  # a hidden folder is no class
    (root / "train" / ".Trash" / "x.png").write_bytes(b"junk")
    (root / "train" / "square" / "moved.png").symlink_to(tmp_path / "gone.png")  # a dangling link
    source = folder_source(root, tmp_path)
    source.prepare()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = source.load(train=True)
    messages = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(messages) == 1
    assert "3 train files" in messages[0]
    assert "square/broken.png" in messages[0] and "square/notes.txt" in messages[0]
    assert (
        f"square/moved.png: not a readable file (No such file or directory; a symlink to {tmp_path}"
        in messages[0]
    )
    assert ".DS_Store" not in messages[0] and "x.png" not in messages[0]
    assert len(images) == 9 and list(images.classes) == list(SHAPES)


def test_a_class_of_unreadable_files_is_an_error(tmp_path):
    root = write_shapes(tmp_path / "photos", per_class=3)
    for path in (root / "triangle").iterdir():
        path.write_bytes(b"junk")
    with pytest.raises(DataError, match="no training image of class triangle is readable"):
        folder_source(root, tmp_path).prepare()


def test_unusable_folders_are_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(f"{missing} does not exist; give a folder with one")):
        folder_source(missing, tmp_path).prepare()

    root = write_shapes(tmp_path / "photos", per_class=2)
    (root / "empty").mkdir()
    (root / "empty" / ".hidden.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=re.escape(f"{root / 'empty'} holds no image files")):
        folder_source(root, tmp_path).prepare()

    flat = tmp_path / "flat"
    flat.mkdir()
    draw_shape("circle", (20, 20), random.Random(0)).save(flat / "a.png")
    with pytest.raises(DataError, match=re.escape(f"{flat} has no class folders")):
        folder_source(flat, tmp_path).prepare()

    one = write_shapes(tmp_path / "one", per_class=3, classes=["circle"])
    with pytest.raises(DataError, match=r"one class folder \(circle\): a classifier needs two or more"):
        folder_source(one, tmp_path).prepare()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("channels", 2),
        ("size", 0),
        ("size", (16,)),
        ("test_size", 0.0),
        ("test_size", 1.5),
        ("max_memory_mb", -1),
        ("workers", -1),
    ],
)
def test_bad_settings(tmp_path, setting, value):
    with pytest.raises(ConfigError, match=f"data.source.{setting} must be"):
        folder_source(tmp_path, tmp_path, **{setting: value})


def test_streamed_images_equal_the_cached_ones(tmp_path):
    root = write_shapes(tmp_path / "photos", per_class=8)
    cached = folder_source(root, tmp_path)
    streamed = folder_source(root, tmp_path, max_memory_mb=0.001, workers=2)  # 1 KiB: every split streams
    streamed.prepare()  # checks every file, with 2 decoding workers
    for train in (True, False):
        in_memory, files = cached.load(train), streamed.load(train)
        assert isinstance(in_memory, LabelledImages) and isinstance(files, ImageFiles)
        assert files.image_shape == in_memory.image_shape and list(files.classes) == list(in_memory.classes)
        assert torch.equal(files.labels, in_memory.labels)
        assert torch.equal(torch.stack([files[i][0] for i in range(len(files))]), in_memory.images)
        index = torch.tensor([3, 0, 2])
        for got, want in zip(files.subset(index).first(2), in_memory.subset(index).first(2), strict=True):
            assert torch.equal(got, want)
    # as the data module streams them: a DataLoader with worker processes
    loaded = DataLoader(files, batch_size=5, num_workers=2)
    images, labels = (torch.cat(parts) for parts in zip(*loaded, strict=True))
    assert torch.equal(images, in_memory.images) and torch.equal(labels, in_memory.labels)
    # a streamed split's cache holds which files are readable, not their pixels
    assert all(file.stat().st_size < 10_000 for file in (tmp_path / "cache").glob("*-files.pt"))

    damaged = root / files.paths[0]
    damaged.write_bytes(b"junk")
    with pytest.raises(DataError, match=re.escape(f"{damaged} is not a readable image")):
        files[0]


def cli_fit(work: Path, name: str, *extra: str) -> FashionLightningCLI:
    """Two epochs of the fast recipe with the image-folder layer on ``work/photos``, 16x16 images, in
    fp32 (seeded CPU training in fp32 is deterministic)."""
    args = [
        "fit",
        *("--config", str(REPO / "configs" / "fast.yaml")),
        *("--config", str(REPO / "configs" / "image_folder.yaml")),
        f"--data.source.root={work / 'photos'}",
        "--data.source.size=16",
        f"--data.source.cache_dir={work / 'cache'}",
        "--data.source.workers=0",
        "--data.val_size=0.2",
        "--data.batch_size=8",
        "--trainer.max_epochs=2",
        "--trainer.precision=32-true",
        f"--trainer.default_root_dir={work / name}",
        *QUIET,
        *extra,
    ]
    return FashionLightningCLI(args=args)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, FashionLightningCLI]:
    """A fit on 36 shapes held in memory (the first run: it decodes them)."""
    work = tmp_path_factory.mktemp("fit")
    write_shapes(work / "photos", per_class=12)
    return work, cli_fit(work, "first")


def assert_same_training(run: FashionLightningCLI, other: FashionLightningCLI) -> None:
    assert run.trainer.current_epoch == other.trainer.current_epoch == 2
    contract, other_contract = run.model.input_contract, other.model.input_contract
    for name in ("classes", "channels", "size", "photos"):
        assert getattr(other_contract, name) == getattr(contract, name)
    for name in ("mean", "std"):  # measured in float64, used in float32
        assert torch.equal(torch.tensor(getattr(other_contract, name)), torch.tensor(getattr(contract, name)))
    weights, other_weights = run.model.state_dict(), other.model.state_dict()
    assert weights.keys() == other_weights.keys()
    differing = [key for key in weights if not torch.equal(weights[key], other_weights[key])]
    assert not differing, f"{len(differing)} of {len(weights)} tensors differ, as {differing[:3]}"


def test_a_fit_from_the_cli_and_a_second_fit_from_the_cache_train_the_same(fitted):
    work, first = fitted
    assert isinstance(first.datamodule.train_set, LabelledImages)
    contract = first.model.input_contract
    assert contract.classes == SHAPES and contract.shape == (3, 16, 16) and contract.photos == "crop"
    cache = sorted((work / "cache").glob("*.pt"))
    written = [file.stat().st_mtime_ns for file in cache]
    second = cli_fit(work, "second")
    assert [file.stat().st_mtime_ns for file in cache] == written  # read, not decoded again
    assert_same_training(first, second)


def test_a_streamed_fit_trains_as_one_in_memory(fitted):
    work, in_memory = fitted
    # 1 KiB for decoded images: every split is read from its files, here in the main process; the
    # pictures take their images from the files too
    streaming = ["--data.source.max_memory_mb=0.001", "--data.num_workers=0", "--pictures.every_n_epochs=1"]
    streamed = cli_fit(work, "streamed", *streaming)
    assert isinstance(streamed.datamodule.train_set, ImageFiles)
    assert_same_training(in_memory, streamed)
    pictures = EventAccumulator(str(work / "streamed" / "version_0")).Reload().Tags()["images"]
    assert "data/train_images" in pictures and "val/predictions" in pictures


def test_a_folders_checkpoint_tested_without_a_config_scores_that_folder(fitted, tmp_path, monkeypatch):
    """The data settings come from the checkpoint, as the model's do: not Fashion-MNIST, the default,
    which is not here to be found (and would then be refused as another data set)."""
    work, first = fitted
    monkeypatch.chdir(tmp_path)
    checkpoint = work / "first" / "version_0" / "checkpoints" / "last.ckpt"
    run = FashionLightningCLI(args=["test", f"--ckpt_path={checkpoint}", *QUIET])
    assert isinstance(run.datamodule.source, ImageFolder)
    assert run.datamodule.source.root == str(work / "photos")
    assert tuple(run.datamodule.test_set.classes) == SHAPES and "test/acc" in run.trainer.callback_metrics


def test_a_folders_checkpoint_tested_with_some_data_settings_keeps_the_others(fitted, tmp_path, monkeypatch):
    """The command's data settings apply over the checkpoint's, not over the defaults: a batch size
    alone leaves the folder as it was, and another folder of the same classes is read as the first."""
    work, first = fitted
    monkeypatch.chdir(tmp_path)
    checkpoint = work / "first" / "version_0" / "checkpoints" / "last.ckpt"
    run = FashionLightningCLI(args=["test", f"--ckpt_path={checkpoint}", "--data.eval_batch_size=7", *QUIET])
    assert run.datamodule.hparams.eval_batch_size == 7 and run.datamodule.source.root == str(work / "photos")
    assert run.datamodule.source.size == first.datamodule.source.size
    shutil.copytree(work / "photos", tmp_path / "copy")
    run = FashionLightningCLI(args=["test", f"--ckpt_path={checkpoint}", "--data.source.root=copy", *QUIET])
    assert isinstance(run.datamodule.source, ImageFolder) and run.datamodule.source.root == "copy"
    assert run.datamodule.source.size == first.datamodule.source.size
    assert tuple(run.datamodule.test_set.classes) == SHAPES and "test/acc" in run.trainer.callback_metrics


def test_predict_reads_a_photo_as_the_training_read_it(fitted):
    """``predict`` with only the checkpoint, on the folder's files, gives the model's answers for the
    cached images: the same pixels reach the model."""
    work, first = fitted
    checkpoint = work / "first" / "version_0" / "checkpoints" / "last.ckpt"
    output = work / "predictions.csv"
    args = ["predict", f"--ckpt_path={checkpoint}", f"--data.predict_images={work / 'photos'}"]
    run = FashionLightningCLI(args=[*args, f"--predictions.output={output}", *QUIET])
    rows = {row["path"]: row for row in csv.DictReader(output.open())}
    source = ImageFolder(str(work / "photos"), size=16, cache_dir=str(work / "cache"))
    test = source.load(train=False)
    with torch.no_grad():
        probabilities = run.model.eval()(test.images).softmax(dim=1)
    for path, image_probabilities in zip(source.image_paths(train=False), probabilities, strict=True):
        row = rows[str(path)]
        assert row["predicted"] == SHAPES[image_probabilities.argmax()]
        assert float(row["probability"]) == pytest.approx(image_probabilities.max().item(), abs=1e-4)


def test_predict_on_the_folders_test_split_names_each_row_by_its_file(fitted, tmp_path):
    work, first = fitted
    saved = work / "first" / "version_0"
    output = tmp_path / "predictions.csv"
    args = [
        "predict",
        f"--config={saved / 'config.yaml'}",
        f"--ckpt_path={saved / 'checkpoints' / 'last.ckpt'}",
    ]
    FashionLightningCLI(args=[*args, f"--predictions.output={output}", *QUIET])
    rows = list(csv.DictReader(output.open()))
    source = ImageFolder(str(work / "photos"), size=16, cache_dir=str(work / "cache"))
    assert [row["path"] for row in rows] == [str(path) for path in source.image_paths(train=False)]
    assert [row["true"] for row in rows] == [path.parent.name for path in source.image_paths(train=False)]
    streamed = ImageFolder(str(work / "photos"), size=16, cache_dir=str(work / "cache"), max_memory_mb=0)
    files = source.image_paths(train=False)
    assert [path.resolve() for path in streamed.load(train=False).files] == [path.resolve() for path in files]
    assert source.load(train=False).subset(torch.tensor([2, 0])).files == [files[2], files[0]]


def write_digits(folder: Path, rgb: bool) -> Path:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) upscaled to 32x32, in one folder per
    digit: grayscale PNG, or coloured JPEG (a random dark ink on a random light paper)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = random.Random(0)
    for n, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        ink = torch.from_numpy(pixels).float().div(16).unsqueeze(-1)  # [8, 8, 1], 1 where the pen was
        if rgb:
            paper = torch.tensor([rng.randint(180, 255) for _ in range(3)], dtype=torch.float)
            pen = torch.tensor([rng.randint(0, 90) for _ in range(3)], dtype=torch.float)
            image = Image.fromarray((paper * (1 - ink) + pen * ink).round().byte().numpy(), "RGB")
        else:
            image = Image.fromarray(ink.mul(255).round().byte().squeeze(-1).numpy(), "L")
        image = image.resize((32, 32), Image.Resampling.BILINEAR)
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        image.save(folder / str(label) / (f"{n:04d}.jpg" if rgb else f"{n:04d}.png"), quality=90)
    return folder


@pytest.mark.parametrize("channels", [1, 3], ids=["grayscale-png", "rgb-jpeg"])
def test_real_digits_trained_tested_predicted_and_exported_from_the_cli(tmp_path, channels):
    root = write_digits(tmp_path / "digits", rgb=channels == 3)
    args = [
        *("--config", str(REPO / "configs" / "fast.yaml")),
        "--data.source=fashion_lightning.data.ImageFolder",
        f"--data.source.root={root}",
        f"--data.source.channels={channels}",
        "--data.source.size=16",
        f"--data.source.cache_dir={tmp_path / 'cache'}",
        "--data.source.workers=2",
        "--data.val_size=0.1",
        "--data.augment.hflip=false",  # a mirrored digit is not that digit: trained on none,
        "--model.test_time_augmentation.hflip=false",  # and tested on none
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        *QUIET,
    ]
    FashionLightningCLI(args=["fit", *args])
    run = FashionLightningCLI(args=["test", *args, "--ckpt_path=best"])
    assert run.model.input_contract.shape == (channels, 16, 16)
    assert 0.15 < len(run.datamodule.test_set) / 1797 < 0.25
    accuracy = run.trainer.callback_metrics["test/acc"].item()
    print(f"digits, {channels} channel(s): test accuracy {accuracy:.4f}")
    assert accuracy >= 0.95

    # predict and export need the checkpoint alone: the data's folder and cache are gone
    checkpoint = Path(run.config["test"]["ckpt_path"])
    source = ImageFolder(str(root), size=16, channels=channels, cache_dir=str(tmp_path / "cache"))
    photos = source.image_paths(train=False)[:40]
    kept = tmp_path / "photos"
    kept.mkdir()
    for photo in photos:
        (kept / f"{class_of(photo)}-{photo.name}").write_bytes(photo.read_bytes())
    shutil.rmtree(root)
    shutil.rmtree(tmp_path / "cache")
    output = tmp_path / "predictions.csv"
    main(
        [
            "predict",
            f"--ckpt_path={checkpoint}",
            f"--data.predict_images={kept}",
            f"--predictions.output={output}",
        ]
    )
    rows = list(csv.DictReader(output.open()))
    right = sum(row["predicted"] == Path(row["path"]).name.split("-")[0] for row in rows)
    assert len(rows) == 40 and right >= 36, f"{right} of 40 photos right"

    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    images = run.datamodule.test_set.images[:64]
    with torch.no_grad():
        expected = model(images).softmax(dim=1)
    pixels = images.float() / 255
    export([f"--ckpt_path={checkpoint}", "--format=torchscript", f"--out={tmp_path / 'model.pt'}"])
    torch.testing.assert_close(
        torch.jit.load(str(tmp_path / "model.pt"))(pixels), expected, atol=1e-4, rtol=0
    )
    onnxruntime = pytest.importorskip("onnxruntime")
    export([f"--ckpt_path={checkpoint}", "--format=onnx", f"--out={tmp_path / 'model.onnx'}"])
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"images": pixels.numpy()})
    torch.testing.assert_close(torch.from_numpy(probabilities), expected, atol=1e-4, rtol=0)


def test_a_link_loop_in_a_class_folder_lists_each_image_once_and_says_so(tmp_path):
    root = write_shapes(tmp_path / "photos", per_class=4)
    (root / "circle" / "loop").symlink_to(root / "circle")  # circle/loop -> circle
    source = folder_source(root, tmp_path)
    with pytest.warns(
        UserWarning, match=re.escape(f"{root}: not read: circle/loop: a link to a folder, not")
    ):
        paths = source.image_paths(train=True) + source.image_paths(train=False)
    assert len(paths) == len(set(paths)) == 12


def test_a_class_folder_of_links_to_folders_says_they_are_not_followed(tmp_path):
    elsewhere = write_shapes(tmp_path / "elsewhere", per_class=2)
    root = tmp_path / "photos"
    for shape in SHAPES:
        (root / shape).mkdir(parents=True)
        (root / shape / "images").symlink_to(elsewhere / shape)
    with pytest.raises(DataError) as refused:
        folder_source(root, tmp_path).prepare()
    assert str(refused.value).startswith(
        f"{root / SHAPES[0]} holds no image files (not read: {root / SHAPES[0] / 'images'}: a link to a "
        "folder, not followed): "
    ), refused.value


def test_a_two_class_model_predicts_both_classes_a_row(tmp_path):
    write_shapes(tmp_path / "photos", per_class=6, classes=SHAPES[:2])
    cli_fit(tmp_path, "runs", "--trainer.max_epochs=1")
    output = tmp_path / "predictions.csv"
    checkpoint = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    predict = ["predict", f"--ckpt_path={checkpoint}", f"--data.predict_images={tmp_path / 'photos'}"]
    main([*predict, f"--predictions.output={output}", *QUIET])
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 12 and list(rows[0]) == [
        "path",
        "predicted",
        "probability",
        "second",
        "second_probability",
    ]
    assert all({row["predicted"], row["second"]} == set(SHAPES[:2]) for row in rows)


def test_split_folders_other_than_train_and_test_are_not_taken_for_classes(tmp_path):
    root = tmp_path / "photos"
    write_shapes(root / "Train", per_class=2)
    with pytest.raises(DataError, match=r"has Train/ but no test/ \(or val/\) beside it"):
        folder_source(root, tmp_path).prepare()
    (root / "Train").rename(tmp_path / "Train")
    write_shapes(root / "Test", per_class=1)
    write_shapes(root / "val", per_class=1)
    with pytest.raises(DataError, match=r"has Test/, val/ but no train/ beside it"):
        folder_source(root, tmp_path).prepare()
    (tmp_path / "Train").rename(root / "Train")
    with pytest.warns(UserWarning, match=r"only Train/ and Test/ are read, not val/"):
        source = folder_source(root, tmp_path)
        assert (len(source.load(train=True)), len(source.load(train=False))) == (6, 3)


@pytest.mark.parametrize("held_out", ["val", "Valid", "validation"])
def test_a_set_shipped_as_train_and_val_folders_is_tested_on_val(held_out, tmp_path):
    """Many sets come as train/ and val/: val/ is then what ``test`` scores, and validation during
    training is held out of train/ (they were refused as folders that would be taken for classes)."""
    root = tmp_path / "photos"
    write_shapes(root / "train", per_class=2)
    write_shapes(root / held_out, per_class=1, seed=1)
    source = folder_source(root, tmp_path)
    assert (len(source.load(train=True)), len(source.load(train=False))) == (6, 3)
    assert {path.parent.parent.name for path in source.image_paths(train=False)} == {held_out}
    assert {path.parent.parent.name for path in source.image_paths(train=True)} == {"train"}


def test_a_cache_inside_the_image_folder_is_not_a_class(tmp_path):
    root = write_shapes(tmp_path / "data", per_class=3)
    source = folder_source(root, tmp_path, cache_dir=str(root / "cache"))
    source.prepare()
    assert any((root / "cache").iterdir())
    assert list(
        folder_source(root, tmp_path, cache_dir=str(root / "cache")).load(train=True).classes
    ) == list(SHAPES)


def test_a_file_name_that_is_no_utf8_is_trained_on_and_predicted_by_its_own_name(tmp_path):
    root = write_shapes(tmp_path / "photos", per_class=6)
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1, as an old camera or archive may name it
    (root / "circle" / "00.png").rename(root / "circle" / odd)
    source = folder_source(root, tmp_path)
    source.prepare()
    assert root / "circle" / odd in source.image_paths(train=True) + source.image_paths(train=False)
    cli_fit(tmp_path, "runs", "--trainer.max_epochs=1")
    output = tmp_path / "predictions.csv"
    checkpoint = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    predict = ["predict", f"--ckpt_path={checkpoint}", f"--data.predict_images={root / 'circle'}"]
    main([*predict, f"--predictions.output={output}", *QUIET])
    assert os.fsencode(root / "circle" / odd) in output.read_bytes()


def test_a_file_that_breaks_while_streamed_is_named_in_one_line(tmp_path):
    """Read by a DataLoader worker process, whose error torch raises again with the worker's traceback."""
    root = write_shapes(tmp_path / "photos", per_class=2)
    paths = ["circle/00.png", "square/01.jpg"]
    files = ImageFiles(str(root), paths, torch.tensor([0, 1]), SHAPES, 3, (16, 16))
    (root / "square" / "01.jpg").write_bytes(b"cut short by a failing disk")
    batches = DataLoader(files, batch_size=2, num_workers=1)
    with pytest.raises(DataError) as raised:
        next(iter(batches))
    said = str(from_worker(raised.value))
    assert "Traceback" in str(raised.value) and "Traceback" not in said
    assert len(said.splitlines()) == 1 and "01.jpg" in said


def test_a_streamed_folder_starts_no_more_reading_workers_than_cores(tmp_path):
    """``data.num_workers`` (4 by default) over the cores this process may use: the extra workers would
    only wait for a core, and the DataLoader would warn of them."""
    root = write_shapes(tmp_path / "photos", per_class=4)
    source = folder_source(root, tmp_path, max_memory_mb=0.001)
    data = ImageDataModule(source, batch_size=4, val_size=2, num_workers=usable_cpus() + 2)
    data.setup("fit")
    batches = data.train_dataloader()
    assert isinstance(data.train_set, ImageFiles) and batches.num_workers == usable_cpus()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images, _ = next(iter(batches))
    assert images.shape == (4, 3, 16, 16)


def test_files_beside_the_class_folders_are_named_as_unread(tmp_path):
    root = write_shapes(tmp_path / "photos", per_class=2)
    (root / "README.txt").write_text("my photos")
    Image.new("RGB", (16, 16), "red").save(root / "stray.png")
    with pytest.warns(
        UserWarning, match=r"files beside the class folders are not read \(README.txt, stray.png\)"
    ):
        source = folder_source(root, tmp_path)
        source.prepare()
    assert len(source.load(train=True)) + len(source.load(train=False)) == 2 * len(SHAPES)


def test_a_checkpoint_names_which_files_validation_held_out(tmp_path):
    """A renamed file moves others between training and validation: what a checkpoint saves of the
    split tells the two apart, so that a resume cannot train on the checkpoint's validation images."""
    root = write_shapes(tmp_path / "photos", per_class=6)

    def held_out() -> dict:
        data = ImageDataModule(folder_source(root, tmp_path), val_size=4)
        data.setup("fit")
        return data.state_dict()["validation_split"]

    before = held_out()
    first = sorted((root / SHAPES[0]).iterdir())[0]
    first.rename(first.with_name("zz" + first.name))  # now last of its class
    after = held_out()
    assert {key: after[key] for key in ("images", "of")} == {key: before[key] for key in ("images", "of")}
    assert after["digest"] != before["digest"]
