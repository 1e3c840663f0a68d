"""The notes' pictures: TensorBoard images of real tiny runs (grayscale and RGB), and every
fashion-lightning-viz command, from a checkpoint alone or from a data set's config."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_idx import write_tiny_fashion_mnist
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets import FashionMNIST

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.data import MNIST, ImageSource, InputContract, LabelledImages
from fashion_lightning.data.from_config import data_module_from_configs
from fashion_lightning.models import ConvBNNet, DropoutNet, ImageClassifier
from fashion_lightning.runs import load_classifier
from fashion_lightning.viz import PictureLogger, figures
from fashion_lightning.viz.callback import first_layer_figure, predict
from fashion_lightning.viz.cli import confusion_figure, edge_filters_figure, parse_args, photo_figure
from fashion_lightning.viz.cli import main as viz
from fashion_lightning.viz.conv_stages import (
    edge_filter_layer,
    edge_filters,
    first_conv,
    normalises_before_relu,
)

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
VAL_PICTURES = {"val/predictions", "val/confusion_matrix", "val/class_accuracy", "filters/first_conv"}
CHECKPOINT_COMMANDS = ("predictions", "filters", "confusion")


class ColourSquares(ImageSource):
    """A tiny RGB data set of 20x20 images: a red, green or blue square (the class) on dark noise."""

    classes = ("red", "green", "blue")

    def load(self, train: bool) -> LabelledImages:
        count = 120 if train else 30
        images = torch.randint(0, 60, (count, 3, 20, 20), generator=torch.Generator().manual_seed(int(train)))
        labels = torch.arange(count) % 3
        for image, label in zip(images, labels.tolist(), strict=True):
            image[label, 5:15, 5:15] = 240
        return LabelledImages(images.to(torch.uint8), labels, self.classes)


COLOUR_SOURCE = f"{__name__}.ColourSquares"  # how a config names it: tests/ is on sys.path


def fit(root: Path, *extra: str, config: str = "fast") -> FashionLightningCLI:
    """A config (by default fast.yaml: ConvBNNet, flips) on a tiny data set given in ``extra``, with
    40 validation images and batches of 20."""
    args = [
        "fit",
        f"--config={REPO / 'configs' / config}.yaml",
        "--data.val_size=40",
        "--data.batch_size=20",
        "--trainer.precision=32-true",
        f"--trainer.default_root_dir={root}",
        *QUIET,
        *extra,
    ]
    return FashionLightningCLI(args=args)


def tiny_fashion(data_dir: Path) -> list[str]:
    """The options for the tiny Fashion-MNIST files in ``data_dir``: 200 training images, 10 steps/epoch."""
    return [f"--data.source.root={data_dir}", "--data.source.download=false"]


def data_config(path: Path, source: str | dict) -> Path:
    """A config file whose data section names ``source``, as viz's --config takes it."""
    path.write_text(yaml.safe_dump({"data": {"source": source}}))
    return path


def tiny_fashion_config(path: Path, data_dir: Path) -> Path:
    source = {
        "class_path": "fashion_lightning.data.FashionMNIST",
        "init_args": {"root": str(data_dir), "download": False},
    }
    return data_config(path, source)


def images_by_tag(run_dir: Path) -> dict[str, list]:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    return {tag: events.Images(tag) for tag in events.Tags()["images"]}


def rgb_pixels(png: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as opened:
        return np.asarray(opened.convert("RGB")).astype(int)


def colourful_share(pixels: np.ndarray) -> float:
    """The share of pixels whose red, green and blue differ by more than 60: 0 in a gray picture."""
    return float((np.ptp(pixels, axis=2) > 60).mean())


def blue_share(pixels: np.ndarray) -> float:
    """The share of clearly blue pixels: none in a gray picture, nor in red or green titles."""
    red, green, blue = np.moveaxis(pixels, 2, 0)
    return float(((blue > red + 60) & (blue > green + 60)).mean())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3-epoch fit drawing pictures every 2 epochs, then a test of its best checkpoint."""
    tmp = tmp_path_factory.mktemp("viz")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    root = tmp / "runs"
    cli = fit(root, *tiny_fashion(data_dir), "--trainer.max_epochs=3", "--pictures.every_n_epochs=2")
    (tested,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    best = cli.trainer.checkpoint_callback.best_model_path
    return {
        "data_dir": data_dir,
        "config": tiny_fashion_config(tmp / "tiny.yaml", data_dir),
        "root": root,
        "run_dir": root / "version_0",
        "best": best,
        "best_step": torch.load(best, weights_only=True)["global_step"],
        "test_acc": tested["test/acc"],
    }


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A 2-epoch fit of fast.yaml on the tiny RGB data set, named in the config like any other source."""
    tmp = tmp_path_factory.mktemp("colour")
    cli = fit(tmp / "runs", f"--data.source={COLOUR_SOURCE}", "--trainer.max_epochs=2")
    return {
        "run_dir": tmp / "runs" / "version_0",
        "best": cli.trainer.checkpoint_callback.best_model_path,
        "config": data_config(tmp / "colour.yaml", COLOUR_SOURCE),
    }


def test_tensorboard_shows_the_notes_pictures(run):
    images = images_by_tag(run["run_dir"])
    expected = {"data/train_images", "data/train_images_augmented", *VAL_PICTURES}
    expected |= {"test/predictions", "test/confusion_matrix", "test/class_accuracy"}
    assert expected <= set(images)
    for events in images.values():
        assert all(event.width >= 400 and event.height >= 300 for event in events)
    # every 2 epochs (after epoch 2, at step 20) and after the last validation (epoch 3, step 30)
    for tag in VAL_PICTURES:
        assert [event.step for event in images[tag]] == [20, 30], tag
    assert [event.step for event in images["data/train_images"]] == [0]
    # a test draws at the step of the checkpoint it tested, not at the loop's step
    assert [event.step for event in images["test/predictions"]] == [run["best_step"]]
    # a grayscale data set is drawn in gray
    for tag in ("data/train_images", "filters/first_conv"):
        assert colourful_share(rgb_pixels(images[tag][-1].encoded_image_string)) == 0, tag


def test_an_rgb_data_set_is_drawn_in_colour_in_tensorboard(colour_run):
    images = images_by_tag(colour_run["run_dir"])
    assert {"data/train_images", "data/train_images_augmented", *VAL_PICTURES} <= set(images)
    for tag in ("data/train_images", "data/train_images_augmented", "val/predictions"):
        assert blue_share(rgb_pixels(images[tag][-1].encoded_image_string)) > 0.005, tag
    # the input image, and the first convolution's 3-channel filters as colour pictures
    assert colourful_share(rgb_pixels(images["filters/first_conv"][-1].encoded_image_string)) > 0.01


def test_pictures_can_be_turned_off(tmp_path, tiny_data):
    fit(tmp_path, *tiny_fashion(tiny_data), "--trainer.max_epochs=1", "--pictures.every_n_epochs=0")
    assert images_by_tag(tmp_path / "version_0") == {}


@pytest.mark.parametrize("config, steps", [("baseline", [50, 60]), ("fast", [60])])
def test_pictures_every_5_epochs_by_default_10_in_fast_yaml_and_after_the_last(
    tmp_path, tiny_data, config, steps
):
    fit(tmp_path, *tiny_fashion(tiny_data), "--trainer.max_epochs=6", config=config)
    images = images_by_tag(tmp_path / "version_0")
    assert [event.step for event in images["val/predictions"]] == steps


def test_pictures_do_not_change_training(tmp_path, tiny_data):
    """Drawing uses no random numbers of the run's: the same seed trains the same weights, pictures or not."""
    weights = []
    for every in (1, 0):
        cli = fit(
            tmp_path / str(every),
            *tiny_fashion(tiny_data),
            "--trainer.max_epochs=2",
            f"--pictures.every_n_epochs={every}",
        )
        weights.append(cli.model.net.state_dict())
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


class OwnDataModule(LightningDataModule):
    """A user's data module: its splits are plain datasets, without ``first``."""

    def __init__(self, dataset: TensorDataset) -> None:
        super().__init__()
        self.train_set = self.val_set = dataset

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=40)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=40)


@pytest.mark.parametrize("data", ["own data module", "no data module"])
def test_pictures_leave_out_the_images_of_data_they_cannot_read(data, tmp_path):
    split = ColourSquares().load(train=True)
    dataset = TensorDataset(split.images, split.labels)
    contract = InputContract(
        ColourSquares.classes, channels=3, size=(20, 20), mean=(0.2,) * 3, std=(0.3,) * 3
    )
    trainer = Trainer(
        max_epochs=1,
        logger=TensorBoardLogger(tmp_path, name="", version="run"),
        callbacks=[PictureLogger(every_n_epochs=1)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = ImageClassifier(net=ConvBNNet, input_contract=contract)
    if data == "own data module":
        trainer.fit(model, datamodule=OwnDataModule(dataset))
    else:
        loader = DataLoader(dataset, batch_size=40)
        trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert set(images_by_tag(tmp_path / "run")) == {"val/confusion_matrix", "val/class_accuracy"}


def test_edge_filters_are_the_notes_four_and_match_functional_conv2d():
    weights = edge_filters()
    vertical = torch.tensor([-1.0, -1.0, 1.0, 1.0]).expand(4, 4)
    assert torch.equal(weights[:, 0], torch.stack([vertical, -vertical, vertical.T, -vertical.T]))
    layer = edge_filter_layer()
    assert isinstance(layer.conv, torch.nn.Conv2d) and layer.conv.bias is None
    image = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    stages = layer(image)
    expected = F.conv2d(image, weights)
    assert torch.allclose(stages["convolution"], expected, atol=1e-6)
    assert torch.allclose(stages["after ReLU"], expected.clamp(min=0), atol=1e-6)
    assert torch.allclose(stages["after max-pool 2x2"], F.max_pool2d(expected.clamp(min=0), 2), atol=1e-6)
    assert stages["after max-pool 2x2"].shape == (1, 4, 12, 12)


def test_feature_maps_say_when_the_net_normalises_before_relu():
    notes_net = DropoutNet(1, (28, 28), 10)
    contract = InputContract(tuple("0123456789"), channels=1, size=(28, 28), mean=(0.3,), std=(0.3,))
    model = ImageClassifier(net=ConvBNNet, input_contract=contract)
    assert normalises_before_relu(model.net, first_conv(model.net))
    assert not normalises_before_relu(notes_net, first_conv(notes_net))
    title = first_layer_figure(model, torch.zeros(1, 28, 28, dtype=torch.uint8))._suptitle.get_text()
    assert "ConvBNNet normalises first" in title


def test_pixel_values_are_written_in_contrasting_colours():
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 5, 7] = 255
    image[0, 6, 7] = 128
    texts = {(t.xy[1], t.xy[0]): t for t in figures.pixel_values(image, "test").axes[0].texts}
    assert len(texts) == 28 * 28
    assert (texts[5, 7].get_text(), texts[5, 7].get_color()) == ("1.00", "black")
    assert (texts[6, 7].get_text(), texts[6, 7].get_color()) == (".50", "black")
    assert (texts[0, 0].get_text(), texts[0, 0].get_color()) == ("0", "white")


@pytest.mark.parametrize(("shape", "kind"), [((3, 20, 20), "RGB, 20x20"), ((1, 28, 40), "grayscale, 28x40")])
def test_pixel_values_refuse_what_they_cannot_write_legibly(shape, kind):
    with pytest.raises(ValueError, match=f"at most 32x32 pixels, to stay legible; this one is {kind}"):
        figures.pixel_values(torch.zeros(shape, dtype=torch.uint8), "test")


def test_predictions_are_green_when_right_and_red_when_wrong():
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    fig = figures.predictions_grid(
        images, torch.tensor([0, 1, 2]), torch.tensor([0, 5, 2]), FashionMNIST.classes
    )
    titles = fig.axes[0].texts
    assert [t.get_text() for t in titles] == [
        "T-shirt/top\n(T-shirt/top)",
        "Trouser\n(Sandal)",
        "Pullover\n(Pullover)",
    ]
    assert [t.get_color() for t in titles] == ["green", "red", "green"]


def test_configs_layer_into_one_data_module_as_fit_layers_them(tmp_path):
    """fast.yaml, then mnist.yaml, then a file changing only the source's root: as fit would read them."""
    override = data_config(tmp_path / "root.yaml", {"init_args": {"root": str(tmp_path), "download": False}})
    datamodule = data_module_from_configs([REPO / "configs/fast.yaml", REPO / "configs/mnist.yaml", override])
    assert type(datamodule.source) is MNIST and datamodule.source.root == str(tmp_path)
    assert datamodule.batch_size == 128 and not datamodule.augment.hflip


def command_id(command: list[str]) -> str:
    """``confusion-ckpt_path-config``: the command and the options it is given."""
    return "-".join([command[0], *(arg.split("=")[0].lstrip("-") for arg in command[1:])])


def assert_legible_png(path: Path, min_size: tuple[int, int] = (600, 300)) -> None:
    with Image.open(path) as opened:
        assert opened.format == "PNG"
        assert opened.width >= min_size[0] and opened.height >= min_size[1], opened.size
        pixels = np.asarray(opened.convert("L"))
    assert pixels.std() > 10 and len(np.unique(pixels)) > 16, "a blank or near-blank picture"


@pytest.mark.parametrize(
    "command",
    [
        ["edge-filters", "--index=3", "--config={config}"],
        ["batch", "--start=20", "--config={config}"],
        ["pixels", "--index=2", "--config={config}"],
        # the test images of the data set the checkpoint records
        ["predictions", "--ckpt_path=best", "--root={root}"],
        ["filters", "--ckpt_path=last", "--root={root}", "--index=5"],
        ["confusion", "--ckpt_path={root}/version_0/checkpoints/last.ckpt"],
        # ... or of the data set --config describes
        ["confusion", "--ckpt_path=last", "--root={root}", "--config={config}"],
        ["curves", "--logdir={root}"],
        ["curves", "--logdir={root}/.."],  # a folder above the config's runs, as `tensorboard --logdir runs`
    ],
    ids=lambda command: command_id(command),
)
def test_each_viz_command_writes_a_legible_png(command, run, tmp_path, capsys):
    out = tmp_path / "picture.png"
    viz([*(arg.format(root=run["root"], config=run["config"]) for arg in command), f"--out={out}"])
    assert capsys.readouterr().out.strip() == str(out)
    assert_legible_png(out)


@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_an_rgb_checkpoint_alone_gives_each_checkpoint_picture(command, colour_run, tmp_path):
    """The checkpoint records its data module, so its own source (a class of this file) gives the images."""
    out = tmp_path / f"{command}.png"
    viz([command, f"--ckpt_path={colour_run['best']}", f"--out={out}"])
    assert_legible_png(out)
    if command != "confusion":  # the test images, and the 3-channel filters, in colour
        assert colourful_share(rgb_pixels(out)) > 0.01


def test_viz_data_commands_show_an_rgb_data_set(colour_run, tmp_path):
    viz(["batch", f"--config={colour_run['config']}", f"--out={tmp_path / 'batch.png'}"])
    assert_legible_png(tmp_path / "batch.png")
    assert blue_share(rgb_pixels(tmp_path / "batch.png")) > 0.005
    # the notes' edge filters take one channel: the image is made grayscale, and the title says so
    figure = edge_filters_figure(
        parse_args(["edge-filters", "--index=2", f"--config={colour_run['config']}"])
    )
    assert "training image 2 (blue) in grayscale" in figure._suptitle.get_text()


def test_edge_filters_on_an_image_file_of_any_size_and_mode(tmp_path, capsys):
    photo = tmp_path / "photo.jpg"
    rgb = np.zeros((600, 900, 3), dtype=np.uint8)
    rgb[100:500, 300:600] = (200, 30, 30)  # a red block: vertical and horizontal edges
    Image.fromarray(rgb).save(photo)
    viz(["edge-filters", f"--image={photo}", f"--out={tmp_path / 'edges.png'}"])
    assert_legible_png(tmp_path / "edges.png")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["edge-filters", "--image={tmp}/broken.png"], "cannot read {tmp}/broken.png as an image"),
        (["pixels", "--index=240"], "--index/--start 240 is out of range: pick 0 to 239"),
        (["batch", "--start=230"], "out of range: pick 0 to 220"),
        (["pixels", "--config={tmp}/colour.yaml"], "this one is RGB, 20x20; the batch command shows"),
        (["batch", "--config={tmp}/missing.yaml"], "cannot read the config {tmp}/missing.yaml"),
        (
            ["batch", "--config={tmp}/typo.yaml"],
            "the data: section of {tmp}/typo.yaml: Group 'data' does not",
        ),
        (["predictions", "--ckpt_path=best"], "--ckpt_path best needs --root"),
        (["confusion", "--ckpt_path=best", "--root={tmp}"], "no run with checkpoints directly under"),
        (["filters", "--ckpt_path={tmp}/broken.png"], "it is damaged or not a Lightning checkpoint"),
        (["curves", "--logdir={tmp}"], "no TensorBoard event files in"),
        (["edge-filters", "--image={tmp}/tiny.png"], "is 4x4 pixels; give an image of at least 8 pixels"),
        (["batch", "--out={tmp}/batch.jpg"], "--out {tmp}/batch.jpg: the pictures are PNG files"),
        (["photo", "--image={tmp}/tiny.png", "--out={tmp}/tiny.png"], "--out {tmp}/tiny.png is the image it"),
    ],
    ids=lambda value: (
        "-".join(arg.split("=")[0].lstrip("-") for arg in value) if isinstance(value, list) else ""
    ),
)
def test_bad_input_gets_a_clear_message(command, message, tmp_path, tiny_data):
    (tmp_path / "broken.png").write_bytes(b"not a PNG at all")
    Image.new("L", (4, 4)).save(tmp_path / "tiny.png")
    data_config(tmp_path / "colour.yaml", COLOUR_SOURCE)
    (tmp_path / "typo.yaml").write_text("data:\n  batchsize: 3\n")
    command = [arg.format(tmp=tmp_path) for arg in command]
    # a later --config or --out in `command` wins over these
    data = (
        []
        if command[0] in ("curves", "photo")
        else [f"--config={tiny_fashion_config(tmp_path / 'tiny.yaml', tiny_data)}"]
    )
    with pytest.raises(SystemExit) as exit_info:
        viz([command[0], f"--out={tmp_path / 'out.png'}", *data, *command[1:]])
    assert str(exit_info.value).startswith("error: ")
    assert message.format(tmp=tmp_path) in str(exit_info.value)
    assert not (tmp_path / "out.png").exists()
    assert Image.open(tmp_path / "tiny.png").size == (4, 4), "an input is never written over"


@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_a_checkpoint_is_refused_images_of_another_data_set(command, run, colour_run, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        viz(
            [
                command,
                f"--ckpt_path={run['best']}",
                f"--config={colour_run['config']}",
                f"--out={tmp_path / 'x.png'}",
            ]
        )
    message = str(exit_info.value)
    assert "the test images do not fit the model in" in message
    assert (
        "the model's classes are ['T-shirt/top', 'Trouser'" in message
        and "the data's ['red', 'green', 'blue']" in message
    )
    assert "give the config of the data set it was trained on with --config" in message


def test_a_checkpoint_that_does_not_record_its_data_set_asks_for_one(run, tmp_path):
    checkpoint = torch.load(run["best"], weights_only=True)
    del checkpoint["datamodule_hyper_parameters"]
    torch.save(checkpoint, tmp_path / "model.ckpt")
    with pytest.raises(SystemExit, match="does not record the data set it was trained on"):
        viz(["predictions", f"--ckpt_path={tmp_path / 'model.ckpt'}", f"--out={tmp_path / 'x.png'}"])
    viz(
        [
            "predictions",
            f"--ckpt_path={tmp_path / 'model.ckpt'}",
            f"--config={run['config']}",
            f"--out={tmp_path / 'x.png'}",
        ]
    )
    assert_legible_png(tmp_path / "x.png")


def test_checkpoint_pictures_classify_as_test_does_with_the_test_time_views(run):
    """fast.yaml classifies each test image with its mirror image: the pictures show those answers and
    the ``test`` command's accuracy, not the net's on the images alone."""
    figure = confusion_figure(parse_args(["confusion", f"--ckpt_path={run['best']}"]))
    overall = re.search(r"overall, ([\d.]+)%", " ".join(ax.get_title() for ax in figure.axes))
    assert overall and float(overall[1]) == pytest.approx(100 * run["test_acc"], abs=0.005)
    model = load_classifier(run["best"], None)[0]
    assert model.test_time_augmentation.hflip
    images = FashionMNIST(run["data_dir"], train=False).data[:, None]
    shown = predict(model, images)
    with torch.no_grad():
        torch.testing.assert_close(shown, model.evaluate(images).softmax(dim=1))
        assert not torch.allclose(shown, model(images).softmax(dim=1), atol=1e-3)


def test_photo_shows_each_step_of_the_conversion_and_the_answer(run, tmp_path):
    page = np.full((300, 400, 3), (200, 205, 190), dtype=np.uint8)  # a grey-green table
    page[60:240, 150:260] = (40, 30, 90)  # the object
    Image.fromarray(page).save(tmp_path / "photo.jpg")
    for extra in ([], [f"--ckpt_path={run['best']}"]):
        out = tmp_path / f"photo{len(extra)}.png"
        figure_args = ["photo", f"--image={tmp_path / 'photo.jpg'}", *extra]
        viz([*figure_args, f"--out={out}"])
        assert_legible_png(out)
    figure = photo_figure(parse_args(figure_args))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "the photo",
        "distance from the background",
        "the object's mask",
        "the object, upright, trimmed",
        "the model's input",
    ]
    assert "1x28x28 input: " in figure._suptitle.get_text()  # and the model's answer
