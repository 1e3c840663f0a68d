"""The notes' pictures: TensorBoard images of a real tiny run, and every fashion-lightning-viz command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_idx import write_tiny_fashion_mnist
from torchvision.datasets import FashionMNIST

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.models import ConvBNNet, DropoutNet
from fashion_lightning.viz import figures
from fashion_lightning.viz.callback import first_layer_figure
from fashion_lightning.viz.cli import main as viz
from fashion_lightning.viz.conv_stages import edge_filter_layer, edge_filters, first_conv, relu_follows

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
VAL_PICTURES = {"val/predictions", "val/confusion_matrix", "val/class_accuracy", "filters/first_conv"}


def fit(data_dir: Path, root: Path, *extra: str, config: str = "fast") -> FashionLightningCLI:
    """A config (by default fast.yaml: ConvBNNet, flips) on 200 tiny training images: 10 steps an epoch."""
    args = [
        "fit",
        f"--config={REPO / 'configs' / config}.yaml",
        f"--data.data_dir={data_dir}",
        "--data.download=false",
        "--data.val_size=40",
        "--data.batch_size=20",
        "--trainer.precision=32-true",
        f"--trainer.default_root_dir={root}",
        *QUIET,
        *extra,
    ]
    return FashionLightningCLI(args=args)


def images_by_tag(run_dir: Path) -> dict[str, list]:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    return {tag: events.Images(tag) for tag in events.Tags()["images"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3-epoch fit drawing pictures every 2 epochs, then a test of its best checkpoint."""
    tmp = tmp_path_factory.mktemp("viz")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    root = tmp / "runs"
    cli = fit(data_dir, root, "--trainer.max_epochs=3", "--pictures.every_n_epochs=2")
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    best_step = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=True)["global_step"]
    return {"data_dir": data_dir, "root": root, "run_dir": root / "version_0", "best_step": best_step}


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


def test_pictures_can_be_turned_off(tmp_path, tiny_data):
    fit(tiny_data, tmp_path, "--trainer.max_epochs=1", "--pictures.every_n_epochs=0")
    assert images_by_tag(tmp_path / "version_0") == {}


def test_pictures_every_5_epochs_and_after_the_last_by_default(tmp_path, tiny_data):
    fit(tiny_data, tmp_path, "--trainer.max_epochs=6")
    images = images_by_tag(tmp_path / "version_0")
    assert [event.step for event in images["val/predictions"]] == [50, 60]


def test_pictures_do_not_change_training(tmp_path, tiny_data):
    """Drawing uses no random numbers of the run's: the same seed trains the same weights, pictures or not."""
    weights = []
    for every in (1, 0):
        cli = fit(
            tiny_data, tmp_path / str(every), "--trainer.max_epochs=2", f"--pictures.every_n_epochs={every}"
        )
        weights.append(cli.model.net.state_dict())
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


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
    net, notes_net = ConvBNNet(), DropoutNet()
    assert relu_follows(notes_net, first_conv(notes_net)) and not relu_follows(net, first_conv(net))
    title = first_layer_figure(net, torch.zeros(1, 28, 28, dtype=torch.uint8))._suptitle.get_text()
    assert "ConvBNNet normalises first" in title


def test_pixel_values_are_written_in_contrasting_colours():
    image = torch.zeros(28, 28, dtype=torch.uint8)
    image[5, 7] = 255
    image[6, 7] = 128
    texts = {(t.xy[1], t.xy[0]): t for t in figures.pixel_values(image, "test").axes[0].texts}
    assert len(texts) == 28 * 28
    assert (texts[5, 7].get_text(), texts[5, 7].get_color()) == ("1.00", "black")
    assert (texts[6, 7].get_text(), texts[6, 7].get_color()) == (".50", "black")
    assert (texts[0, 0].get_text(), texts[0, 0].get_color()) == ("0", "white")


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


def assert_legible_png(path: Path, min_size: tuple[int, int] = (600, 300)) -> None:
    with Image.open(path) as opened:
        assert opened.format == "PNG"
        assert opened.width >= min_size[0] and opened.height >= min_size[1], opened.size
        pixels = np.asarray(opened.convert("L"))
    assert pixels.std() > 10 and len(np.unique(pixels)) > 16, "a blank or near-blank picture"


@pytest.mark.parametrize(
    "command",
    [
        ["edge-filters", "--index=3"],
        ["batch", "--start=20"],
        ["pixels", "--index=2"],
        ["predictions", "--ckpt_path=best", "--root={root}"],
        ["filters", "--ckpt_path=last", "--root={root}", "--index=5"],
        ["confusion", "--ckpt_path={root}/version_0/checkpoints/last.ckpt"],
        ["curves", "--logdir={root}"],
        ["curves", "--logdir={root}/.."],  # a folder above the config's runs, as `tensorboard --logdir runs`
    ],
    ids=lambda command: command[0],
)
def test_each_viz_command_writes_a_legible_png(command, run, tmp_path, capsys):
    out = tmp_path / "picture.png"
    args = [arg.format(root=run["root"]) for arg in command]
    data = [] if command[0] == "curves" else [f"--data_dir={run['data_dir']}"]
    viz([*args, *data, f"--out={out}"])
    assert capsys.readouterr().out.strip() == str(out)
    assert_legible_png(out)


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
        (["predictions", "--ckpt_path=best"], "--ckpt_path best needs --root"),
        (["confusion", "--ckpt_path=best", "--root={tmp}"], "no run with checkpoints directly under"),
        (["filters", "--ckpt_path={tmp}/broken.png"], "as a fashion-lightning checkpoint"),
        (["curves", "--logdir={tmp}"], "no TensorBoard event files in"),
        (["edge-filters", "--image={tmp}/tiny.png"], "is 4x4 pixels; give an image of at least 8 pixels"),
        (["batch", "--out={tmp}/batch.jpg"], "--out {tmp}/batch.jpg: the pictures are PNG files"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_bad_input_gets_a_clear_message(command, message, tmp_path, tiny_data):
    (tmp_path / "broken.png").write_bytes(b"not a PNG at all")
    Image.new("L", (4, 4)).save(tmp_path / "tiny.png")
    command = [arg.format(tmp=tmp_path) for arg in command]
    data = [] if command[0] == "curves" else [f"--data.data_dir={tiny_data}"]
    with pytest.raises(SystemExit) as exit_info:  # a later --out in `command` wins over this one
        viz([command[0], f"--out={tmp_path / 'out.png'}", *data, *command[1:]])
    assert str(exit_info.value).startswith("error: ")
    assert message.format(tmp=tmp_path) in str(exit_info.value)
    assert not (tmp_path / "out.png").exists()
