"""``fashion-lightning-viz``: the notes' pictures as PNG files, for any data set and any checkpoint.

    fashion-lightning-viz edge-filters --index 3         # or --image photo.jpg
    fashion-lightning-viz batch --config configs/mnist.yaml
    fashion-lightning-viz pixels --index 2
    fashion-lightning-viz predictions --ckpt_path best --root runs/fast
    fashion-lightning-viz filters --ckpt_path runs/fast/version_0/checkpoints/last.ckpt
    fashion-lightning-viz confusion --ckpt_path best --root runs/fast
    fashion-lightning-viz curves --logdir runs/fast
    fashion-lightning-viz photo --image photo.jpg --ckpt_path best --root runs/fast

Each command writes one PNG (``--out``, by default ``pictures/<command>.png``) and prints its path.
edge-filters, batch and pixels show training images of the data set that ``--config`` describes: the
config files ``fit`` takes, in the same order, of which only the ``data:`` sections are read; without
it, Fashion-MNIST in ``data/``. predictions, filters and confusion take the model from the checkpoint
and the test images from the data set the checkpoint was trained on, or from ``--config``.
``--index`` and ``--start`` count from 0 in the data set's own order (the training images before the
validation split is taken out of them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import multiclass_confusion_matrix
from torchvision.transforms.v2.functional import pil_to_tensor, rgb_to_grayscale

from fashion_lightning.checkpoint_io import DiskFullError, explained, replaced_whole
from fashion_lightning.data import DataError, ImageDataModule, LabelledImages
from fashion_lightning.data.from_config import data_module_from_configs
from fashion_lightning.data.photos import conversion_steps, read_image
from fashion_lightning.errors import ConfigError, exit_with
from fashion_lightning.models import ImageClassifier
from fashion_lightning.runs import CheckpointError, load_classifier, read_checkpoint
from fashion_lightning.viz import figures
from fashion_lightning.viz.callback import first_layer_figure, predict
from fashion_lightning.viz.conv_stages import edge_filter_layer, edge_filters
from fashion_lightning.viz.events import EventsError, read_scalars

PHOTO_MAX_SIDE = 512  # larger photos are scaled down: the filters' outputs stay legible, and quick
PHOTO_MIN_SIDE = 8  # a 4x4 filter and a 2x2 pool need a few pixels to show anything
GRID = 20  # images in the batch and predictions pictures: the notes' 2x10


class VizError(RuntimeError):
    """A bad argument or file; the message says what is wrong and what to do."""


def _images(datamodule: ImageDataModule, train: bool) -> LabelledImages:
    """The data set's training or test images, in its source's order."""
    datamodule.prepare_data()
    return datamodule.source.load(train=train)


def _training_images(args: argparse.Namespace) -> LabelledImages:
    return _images(data_module_from_configs(args.config), train=True)


def _pick(split: LabelledImages, start: int, count: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    count = min(count, len(split))
    if not 0 <= start <= len(split) - count:
        raise VizError(f"--index/--start {start} is out of range: pick 0 to {len(split) - count}")
    images, labels = split.first(start + count)
    return images[start:], labels[start:]


def _model_and_test_images(args: argparse.Namespace) -> tuple[ImageClassifier, LabelledImages]:
    """The checkpoint's model, and the test images of ``--config``'s data set or else of the
    checkpoint's own; refused if the model was not trained on images of that kind."""
    model, path = load_classifier(args.ckpt_path, args.root)
    datamodule = data_module_from_configs(args.config) if args.config else _checkpoint_data_module(path)
    test = _images(datamodule, train=False)
    why = model.input_contract.mismatch(test.classes, test.image_shape)
    if why:
        raise VizError(
            f"the test images do not fit the model in {path}: {why}; give the config of the data set it "
            "was trained on with --config"
        )
    return model, test


def _checkpoint_data_module(path: Path) -> ImageDataModule:
    """The data module a checkpoint was trained with, rebuilt from the settings ``fit`` saved in it."""
    if ImageDataModule.CHECKPOINT_HYPER_PARAMS_KEY not in read_checkpoint(path):
        raise VizError(
            f"{path} does not record the data set it was trained on (it was not written by "
            "fashion-lightning fit); give the data set's config with --config"
        )
    try:
        return ImageDataModule.load_from_checkpoint(path)
    except Exception as err:  # an unimportable source, settings this version does not take, ...
        reason = " ".join(str(err).split())
        raise CheckpointError(
            f"cannot rebuild the data set recorded in {path} ({type(err).__name__}: {reason}); "
            "give the data set's config with --config"
        ) from None


def edge_filters_figure(args: argparse.Namespace) -> Figure:
    if args.image:
        image, name = _photo(Path(args.image)), Path(args.image).name
    else:
        train = _training_images(args)
        images, labels = _pick(train, args.index)
        image, name = images[0], f"training image {args.index} ({train.classes[labels[0]]})"
        if len(image) == 3:
            image, name = rgb_to_grayscale(image), f"{name} in grayscale, as the filters have one channel"
        image = image.float() / 255
    stages = edge_filter_layer()(image[None])
    return figures.conv_stages(image, edge_filters(), stages, f"the notes' four edge filters on {name}")


def _photo(path: Path) -> torch.Tensor:
    """Any image file as a grayscale ``[1, H, W]`` tensor in [0, 1], as the notes read theirs."""
    try:
        image = read_image(path, channels=1)
    except ValueError as err:
        raise VizError(f"cannot read {path} as an image: {err}; give a PNG or JPEG file") from None
    if min(image.size) < PHOTO_MIN_SIDE:
        raise VizError(
            f"{path} is {image.width}x{image.height} pixels; "
            f"give an image of at least {PHOTO_MIN_SIDE} pixels each way"
        )
    image.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
    return pil_to_tensor(image) / 255


def batch_figure(args: argparse.Namespace) -> Figure:
    train = _training_images(args)
    images, labels = _pick(train, args.start, GRID)
    title = f"training images {args.start}-{args.start + len(images) - 1}"
    return figures.labelled_batch(images, labels, train.classes, suptitle=title)


def pixels_figure(args: argparse.Namespace) -> Figure:
    train = _training_images(args)
    images, labels = _pick(train, args.index)
    try:
        return figures.pixel_values(
            images[0], f"training image {args.index}: {train.classes[labels[0]]}, pixel values"
        )
    except ValueError as err:  # a colour or large image
        raise VizError(f"{err}; the batch command shows the images themselves") from None


def predictions_figure(args: argparse.Namespace) -> Figure:
    model, test = _model_and_test_images(args)
    images, labels = _pick(test, args.start, GRID)
    predicted = predict(model, images).argmax(dim=1)
    return figures.predictions_grid(images, predicted, labels, model.class_names)


def filters_figure(args: argparse.Namespace) -> Figure:
    model, test = _model_and_test_images(args)
    images, _ = _pick(test, args.index)
    try:
        return first_layer_figure(model, images[0])
    except ValueError as err:  # a net without a convolution: nothing to show
        raise VizError(str(err)) from None


def confusion_figure(args: argparse.Namespace) -> Figure:
    model, test = _model_and_test_images(args)
    images, labels = test.first(len(test))
    predicted = torch.cat([predict(model, chunk) for chunk in images.split(1000)])
    confusion = multiclass_confusion_matrix(predicted, labels, len(model.class_names))
    return figures.confusion_report(confusion, model.class_names, f"{len(labels):,} test images")


def photo_figure(args: argparse.Namespace) -> Figure:
    """Each step of ``predict``'s conversion of one photo, so that a misread photo shows why: as
    Fashion-MNIST's input (28x28, grayscale), or as the checkpoint's model takes it, with its answer."""
    model = load_classifier(args.ckpt_path, args.root)[0] if args.ckpt_path else None
    size, channels, how = (28, 28), 1, "object"  # Fashion-MNIST's
    if model is not None:
        size, channels, how = (
            model.input_contract.size,
            model.input_contract.channels,
            model.input_contract.photos,
        )
    path = Path(args.image)
    try:
        photo = read_image(path, channels=3 if how == "object" else channels)
    except ValueError as err:
        raise VizError(f"cannot read {path} as an image: {err}; give a PNG or JPEG file") from None
    steps = conversion_steps(photo, size, how, channels)
    title = f"{path.name} as a {channels}x{size[0]}x{size[1]} input"
    if model is not None:
        probabilities = predict(model, steps[-1][1][None])[0]
        best = int(probabilities.argmax())
        title += f": {model.class_names[best]} ({probabilities[best]:.0%})"
    return figures.steps(steps, title)


def curves_figure(args: argparse.Namespace) -> Figure:
    logdir, scalars = read_scalars(Path(args.logdir))
    return figures.curves(scalars, f"training curves of {logdir}")


COMMANDS = {
    "edge-filters": (edge_filters_figure, "the notes' 4 edge filters: conv, ReLU and max-pooled outputs"),
    "batch": (batch_figure, "20 training images in a 2x10 grid with their class names"),
    "pixels": (pixels_figure, "a small grayscale training image with the value of each pixel written in it"),
    "predictions": (predictions_figure, "20 test images titled 'predicted (true)', green/red"),
    "filters": (filters_figure, "a checkpoint's first-layer filters and their feature maps"),
    "confusion": (confusion_figure, "a checkpoint's confusion matrix and per-class accuracy on the test set"),
    "curves": (curves_figure, "loss and accuracy curves from a run's TensorBoard event files"),
    "photo": (photo_figure, "each step of predict's conversion of a photo: background, mask, trimmed, input"),
}
CHECKPOINT_COMMANDS = ("predictions", "filters", "confusion")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fashion-lightning-viz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a mistyped flag's prefix is refused, not taken for the flag it begins
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary, allow_abbrev=False)
        command.add_argument(
            "--out", type=Path, default=Path("pictures") / f"{name}.png", help="PNG to write"
        )
        command.add_argument("--verbose", action="store_true", help="show a traceback on errors")
        if name not in ("curves", "photo"):
            default = (
                "the data set the checkpoint was trained on"
                if name in CHECKPOINT_COMMANDS
                else "Fashion-MNIST in data/"
            )
            command.add_argument(
                "--config",
                action="append",
                type=Path,
                default=[],
                metavar="FILE",
                help="the data set: a config file as fit takes (only its data: section is read); "
                f"repeat it to layer configs as fit does (default: {default})",
            )
        if name in CHECKPOINT_COMMANDS:
            command.add_argument("--ckpt_path", required=True, help="a .ckpt file, or best/last with --root")
            command.add_argument(
                "--root", help="for best/last: the folder of the run folders, e.g. runs/fast"
            )
        if name in ("edge-filters", "pixels", "filters"):
            command.add_argument("--index", type=int, default=0, help="which image (default: 0)")
        if name in ("batch", "predictions"):
            command.add_argument("--start", type=int, default=0, help="first of the 20 images (default: 0)")
        if name == "edge-filters":
            command.add_argument("--image", help="an image file (PNG, JPEG, ...) instead of a training image")
        if name == "photo":
            command.add_argument("--image", required=True, help="the photo (PNG, JPEG, ...)")
            command.add_argument(
                "--ckpt_path", help="convert as this model takes its input (default: Fashion-MNIST's 28x28)"
            )
            command.add_argument(
                "--root", help="for best/last: the folder of the run folders, e.g. runs/fast"
            )
        if name == "curves":
            command.add_argument(
                "--logdir", required=True, help="a run folder (version_N) or the folder of runs"
            )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.out.suffix.lower() != ".png":
            raise VizError(f"--out {args.out}: the pictures are PNG files, give a name ending in .png")
        image = getattr(args, "image", None)
        if image and args.out.resolve() == Path(image).expanduser().resolve():
            raise VizError(f"--out {args.out} is the image it shows: give another file name")
        figure = COMMANDS[args.command][0](args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with replaced_whole(args.out) as partial:
            figure.savefig(partial, dpi=100, format="png")
    except (VizError, DataError, CheckpointError, ConfigError, EventsError, DiskFullError, OSError) as err:
        exit_with(explained(err, args.out) if isinstance(err, OSError) else err, args.verbose)
    print(args.out)


if __name__ == "__main__":
    main()
