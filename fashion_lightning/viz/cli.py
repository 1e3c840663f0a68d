"""``fashion-lightning-viz``: the notes' pictures as PNG files, for the data set and for any checkpoint.

    fashion-lightning-viz edge-filters --index 3         # or --image photo.jpg
    fashion-lightning-viz batch
    fashion-lightning-viz pixels --index 2
    fashion-lightning-viz predictions --ckpt_path best --root runs/dropout
    fashion-lightning-viz filters --ckpt_path runs/dropout/version_0/checkpoints/last.ckpt
    fashion-lightning-viz confusion --ckpt_path best --root runs/dropout
    fashion-lightning-viz curves --logdir runs/dropout

Each command writes one PNG (``--out``, by default ``pictures/<command>.png``) and prints its path.
``--index`` counts from 0 in the official files: training images for edge-filters, batch and pixels,
test images for the commands that take a checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import multiclass_confusion_matrix

from fashion_lightning.data.datamodule import FashionMNISTDataModule
from fashion_lightning.data.files import DataError, ensure_files, load_split
from fashion_lightning.data.images import pixels, read_image
from fashion_lightning.errors import exit_with
from fashion_lightning.models import FashionClassifier
from fashion_lightning.runs import CheckpointError, load_classifier
from fashion_lightning.viz import figures
from fashion_lightning.viz.callback import first_layer_figure, predict
from fashion_lightning.viz.conv_stages import edge_filter_layer, edge_filters
from fashion_lightning.viz.events import EventsError, read_scalars

CLASSES = FashionMNISTDataModule.classes
PHOTO_MAX_SIDE = 512  # larger photos are scaled down: the filters' outputs stay legible, and quick
PHOTO_MIN_SIDE = 8  # a 4x4 filter and a 2x2 pool need a few pixels to show anything


class VizError(RuntimeError):
    """A bad argument or file; the message says what is wrong and what to do."""


def _images(args: argparse.Namespace, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    folder = ensure_files(args.data_dir)
    images, labels = load_split(folder, train=train)
    return images.unsqueeze(1), labels


def _pick(images: torch.Tensor, labels: torch.Tensor, start: int, count: int = 1):
    if not 0 <= start <= len(images) - count:
        raise VizError(f"--index/--start {start} is out of range: pick 0 to {len(images) - count}")
    return images[start : start + count], labels[start : start + count]


def _model(args: argparse.Namespace) -> FashionClassifier:
    return load_classifier(args.ckpt_path, args.root)[0]


def edge_filters_figure(args: argparse.Namespace) -> Figure:
    if args.image:
        image, name = _photo(Path(args.image)), Path(args.image).name
    else:
        images, labels = _pick(*_images(args, train=True), args.index)
        image, name = images[0].float() / 255, f"training image {args.index} ({CLASSES[labels[0]]})"
    stages = edge_filter_layer()(image[None])
    return figures.conv_stages(image, edge_filters(), stages, f"the notes' four edge filters on {name}")


def _photo(path: Path) -> torch.Tensor:
    """Any image file as a grayscale ``[1, H, W]`` tensor in [0, 1], as the notes read theirs."""
    try:
        image = read_image(path)
    except ValueError as err:
        raise VizError(f"cannot read {path} as an image ({err}); give a PNG or JPEG file") from None
    if min(image.size) < PHOTO_MIN_SIDE:
        raise VizError(
            f"{path} is {image.width}x{image.height} pixels; "
            f"give an image of at least {PHOTO_MIN_SIDE} pixels each way"
        )
    image.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
    return pixels(image)[None] / 255


def batch_figure(args: argparse.Namespace) -> Figure:
    images, labels = _pick(*_images(args, train=True), args.start, 20)
    return figures.labelled_batch(
        images, labels, CLASSES, suptitle=f"training images {args.start}-{args.start + 19}"
    )


def pixels_figure(args: argparse.Namespace) -> Figure:
    images, labels = _pick(*_images(args, train=True), args.index)
    return figures.pixel_values(images[0], f"training image {args.index}: {CLASSES[labels[0]]}, pixel values")


def predictions_figure(args: argparse.Namespace) -> Figure:
    model = _model(args)
    images, labels = _pick(*_images(args, train=False), args.start, 20)
    predicted = predict(model, FashionMNISTDataModule.normalize(images)).argmax(dim=1)
    return figures.predictions_grid(images, predicted, labels, model.class_names)


def filters_figure(args: argparse.Namespace) -> Figure:
    model = _model(args)
    images, _ = _pick(*_images(args, train=False), args.index)
    try:
        return first_layer_figure(model.net, images[0])
    except ValueError as err:  # a net without a convolution: nothing to show
        raise VizError(str(err)) from None


def confusion_figure(args: argparse.Namespace) -> Figure:
    model = _model(args)
    images, labels = _images(args, train=False)
    predicted = torch.cat(
        [predict(model, FashionMNISTDataModule.normalize(chunk)) for chunk in images.split(1000)]
    )
    confusion = multiclass_confusion_matrix(predicted, labels, len(model.class_names))
    return figures.confusion_report(confusion, model.class_names, f"{len(labels):,} test images")


def curves_figure(args: argparse.Namespace) -> Figure:
    logdir, scalars = read_scalars(Path(args.logdir))
    return figures.curves(scalars, f"training curves of {logdir}")


COMMANDS = {
    "edge-filters": (edge_filters_figure, "the notes' 4 edge filters: conv, ReLU and max-pooled outputs"),
    "batch": (batch_figure, "20 training images in a 2x10 grid with their class names"),
    "pixels": (pixels_figure, "one training image with the value of each pixel written in it"),
    "predictions": (predictions_figure, "20 test images titled 'predicted (true)', green/red"),
    "filters": (filters_figure, "a checkpoint's first-layer filters and their feature maps"),
    "confusion": (confusion_figure, "a checkpoint's confusion matrix and per-class accuracy on the test set"),
    "curves": (curves_figure, "loss and accuracy curves from a run's TensorBoard event files"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fashion-lightning-viz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument(
            "--out", type=Path, default=Path("pictures") / f"{name}.png", help="PNG to write"
        )
        command.add_argument("--verbose", action="store_true", help="show a traceback on errors")
        if name != "curves":
            command.add_argument(
                "--data_dir",
                "--data.data_dir",
                dest="data_dir",
                default="data",
                help="the data folder (default: data)",
            )
        if name in ("predictions", "filters", "confusion"):
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
        figure = COMMANDS[args.command][0](args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.out, dpi=100)
    except (VizError, DataError, CheckpointError, EventsError, OSError) as err:
        exit_with(err, args.verbose)
    print(args.out)


if __name__ == "__main__":
    main()
