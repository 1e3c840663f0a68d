"""The notes' pictures as matplotlib figures: tensors in, a ``Figure`` out, nothing saved or logged.

The callback logs these to TensorBoard and ``fashion-lightning-viz`` saves them as PNG files, so
both show the same pictures. Figures are made with matplotlib's object API, not pyplot: no window,
no display needed, no global state to clean up, whatever backend the user's matplotlib has.
Images are ``[N, C, H, W]`` tensors (one image ``[C, H, W]``) of any size, uint8 or float: one
channel is drawn in gray, three in colour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix

RIGHT, WRONG = "green", "red"
PIXELS_MAX_SIDE = 32  # pixel_values writes one number per pixel: legible up to about 32x32 in 12 inches


def _channels_last(images: torch.Tensor) -> torch.Tensor:
    """Images ``[..., C, H, W]`` as float ``[..., H, W, C]`` CPU tensors, the layout matplotlib draws."""
    return images.detach().float().cpu().movedim(-3, -1)


def _show(ax, picture: torch.Tensor, low: float | None = None, high: float | None = None, **kwargs):
    """Draw a ``[H, W, C]`` picture: one channel in gray, three in colour, both scaled from ``low``
    (black) to ``high`` (white), by default the picture's own darkest and lightest values; NaN pixels
    are transparent."""
    if picture.shape[-1] == 1:
        return ax.imshow(picture[..., 0].numpy(), cmap="gray", vmin=low, vmax=high, **kwargs)
    drawn = picture.isfinite().all(dim=-1, keepdim=True)
    low = picture[drawn.expand_as(picture)].min().item() if low is None else low
    high = picture[drawn.expand_as(picture)].max().item() if high is None else high
    scaled = ((picture - low) / ((high - low) or 1.0)).nan_to_num(0.0).clamp(0.0, 1.0)
    return ax.imshow(torch.cat([scaled, drawn.float()], dim=-1).numpy(), **kwargs)  # RGBA


def _write_values(ax, values: torch.Tensor, text: Callable[[float], str], threshold: float, fontsize: float):
    """Write each cell's value in it: white on cells below ``threshold`` (dark), black on the rest."""
    for y, row in enumerate(values.tolist()):
        for x, value in enumerate(row):
            color = "white" if value < threshold else "black"
            ax.annotate(text(value), xy=(x, y), ha="center", va="center", fontsize=fontsize, color=color)


def _margins(
    fig: Figure,
    top: float,
    left: float = 0.1,
    right: float = 0.1,
    bottom: float = 0.1,
    wspace: float = 0.1,
    hspace: float = 0.2,
) -> None:
    """Fixed margins in inches. Matplotlib's automatic layouts would find them too, but they double
    the time to draw a grid, and these figures are drawn during training."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
        wspace=wspace, hspace=hspace,
    )  # fmt: skip


def _hide_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(
    images: torch.Tensor,
    titles: Sequence[str],
    colors: Sequence[str] | None = None,
    columns: int = 10,
    suptitle: str | None = None,
) -> Figure:
    """Images in rows of ``columns``, each titled (the notes' 2x10 batch of 20), all on one scale from
    the darkest to the lightest pixel.

    The images are laid out in one picture: one matplotlib axes instead of one per image, as axes are
    slow to create and draw, and this is drawn during training."""
    pixels = _channels_last(images)
    columns = min(columns, len(pixels))
    height, width = pixels.shape[1:3]
    # room for a two-line title above each image; in units of the width, which sets the figure's scale
    gap = (round(0.45 * width), round(0.12 * width))
    canvas = _mosaic(pixels, columns, gap)
    top = 0.3 if suptitle else 0.05
    fig_width = 1.9 * columns
    fig_height = fig_width * canvas.shape[0] / canvas.shape[1] + top
    fig = Figure(figsize=(fig_width, fig_height))
    ax = fig.add_axes((0.005, 0.005, 0.99, 1 - top / fig_height - 0.005))
    _show(ax, canvas, pixels.min().item(), pixels.max().item())
    ax.set_axis_off()
    for i, title in enumerate(titles):
        row, column = divmod(i, columns)
        x, y = column * (width + gap[1]) + width / 2 - 0.5, row * (height + gap[0]) + gap[0] - 1
        color = colors[i] if colors else "black"
        ax.text(x, y, title, ha="center", va="bottom", fontsize=9, color=color, linespacing=1.1)
    if suptitle:
        fig.suptitle(suptitle, y=1 - 0.08 / fig_height, va="top")
    return fig


def _mosaic(images: torch.Tensor, columns: int, gap: tuple[int, int]) -> torch.Tensor:
    """Images ``[N, H, W, C]`` in rows of ``columns``, as one ``[H', W', C]`` picture whose blank parts
    are NaN (drawn transparent): ``gap[0]`` blank rows above each image, ``gap[1]`` blank columns
    between them."""
    count, height, width, channels = images.shape
    rows = math.ceil(count / columns)
    shape = (rows * (height + gap[0]), columns * (width + gap[1]) - gap[1], channels)
    canvas = torch.full(shape, float("nan"))
    for i, image in enumerate(images):
        row, column = divmod(i, columns)
        top, left = row * (height + gap[0]) + gap[0], column * (width + gap[1])
        canvas[top : top + height, left : left + width] = image
    return canvas


def labelled_batch(
    images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], **kwargs
) -> Figure:
    return image_grid(images, [class_names[label] for label in labels.tolist()], **kwargs)


def predictions_grid(
    images: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> Figure:
    """The notes' "predicted (true)" titles: green when right, red when wrong."""
    pairs = list(zip(predicted.tolist(), labels.tolist(), strict=True))
    titles = [f"{class_names[p]}\n({class_names[t]})" for p, t in pairs]
    colors = [RIGHT if p == t else WRONG for p, t in pairs]
    right = sum(p == t for p, t in pairs)
    return image_grid(images, titles, colors, suptitle=f"predicted (true): {right} of {len(pairs)} right")


def pixel_values(image: torch.Tensor, title: str) -> Figure:
    """One grayscale image ``[1, H, W]`` with each pixel's value (scaled to 0-1, as the notes' ToTensor)
    written in its cell; the text is white on dark pixels and black on light ones.

    Raises ``ValueError`` for a colour image (three numbers a cell) or one larger than
    ``PIXELS_MAX_SIDE`` (too many cells): neither would be legible."""
    channels, height, width = image.shape
    if channels != 1 or max(height, width) > PIXELS_MAX_SIDE:
        kind = {1: "grayscale", 3: "RGB"}.get(channels, f"{channels} channels")
        raise ValueError(
            f"pixel values are written only on grayscale images of at most {PIXELS_MAX_SIDE}x"
            f"{PIXELS_MAX_SIDE} pixels, to stay legible; this one is {kind}, {height}x{width}"
        )
    values = image[0].detach().float().cpu()
    if values.max() > 1:
        values = values / 255
    fig = Figure(figsize=(12, 12), layout="constrained")
    ax = fig.subplots()
    ax.imshow(values.numpy(), cmap="gray", vmin=0, vmax=1)
    threshold = values.max().item() / 2.5
    _write_values(
        ax, values, lambda v: f"{v:.2f}".lstrip("0") if round(v, 2) else "0", threshold, fontsize=6.5
    )
    _hide_ticks(ax)
    ax.set_title(title)
    return fig


def conv_stages(
    image: torch.Tensor,
    weights: torch.Tensor,
    stages: Mapping[str, torch.Tensor],
    title: str,
    max_channels: int = 8,
) -> Figure:
    """The notes' filter pictures in one figure: the input image; a row of filters; then one row per
    stage (conv output, after ReLU, after pooling), one column per filter, each row on one gray scale
    with its colour bar.

    Filters of a grayscale input share one scale, so they compare, and small ones have their values
    written on them; filters of an RGB input are colour pictures, each scaled to its own largest
    weight. Zero is mid-gray in both."""
    channels = min(len(weights), max_channels)
    map_height, map_width = image.shape[-2:]
    # the filters' row is square; the stages' rows keep the image's shape, but leave room for their names
    row_heights = [1.0] + [max(map_height / map_width, 0.9)] * len(stages)
    fig = Figure(figsize=(1.6 * (channels + 1) + 0.8, 1.8 * sum(row_heights) + 0.6))
    top = 0.5 + 0.25 * title.count("\n") + 0.25
    width, height = fig.get_size_inches()
    wspace = 0.12
    # the last, narrow column holds each row's colour bar
    grid = fig.add_gridspec(
        len(row_heights), channels + 2, width_ratios=[1] * (channels + 1) + [0.08], height_ratios=row_heights,
        wspace=wspace, hspace=0.25, left=0.1 / width, right=1 - 0.6 / width, bottom=0.25 / height,
        top=1 - top / height,
    )  # fmt: skip
    ax = fig.add_subplot(grid[0, 0])
    _show(ax, _channels_last(image))
    ax.set_title("input", fontsize=9)
    _hide_ticks(ax)
    filters = weights[:channels].detach().float().cpu()
    colour = filters.shape[1] == 3
    if colour:
        filters = filters / filters.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
    limit = filters.abs().max().item() or 1.0
    pictures = _channels_last(filters if colour else filters[:, :1])
    for c in range(channels):
        ax = fig.add_subplot(grid[0, c + 1])
        _show(ax, pictures[c], -limit, limit)
        ax.set_title(f"filter {c + 1}", fontsize=9)
        _hide_ticks(ax)
        if not colour and filters.shape[-1] <= 5:
            _write_values(ax, filters[c, 0], lambda v: f"{v:.2g}", threshold=0.0, fontsize=7)
    for row, (name, maps) in enumerate(stages.items(), start=1):
        # one picture per row, its maps spaced like the filters above them (one axes, not `channels`)
        maps = _channels_last(maps.reshape(-1, 1, *maps.shape[-2:])[:channels])
        ax = fig.add_subplot(grid[row, 1 : channels + 1])
        canvas = _mosaic(maps, channels, (0, round(wspace * maps.shape[2])))
        shown = _show(ax, canvas, aspect="auto", interpolation="nearest")
        ax.set_axis_off()
        ax.text(-1.5, maps.shape[1] / 2, name, rotation=90, ha="right", va="center", fontsize=9)
        fig.colorbar(shown, cax=fig.add_subplot(grid[row, -1]))
    if len(weights) > channels:
        first_line, *rest = title.split("\n")
        title = "\n".join([f"{first_line} (first {channels} of {len(weights)} filters)", *rest])
    fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return fig


def confusion_matrix(confusion: torch.Tensor, class_names: Sequence[str], title: str, ax=None) -> Figure:
    """torchmetrics' own confusion-matrix plot, sized so the class names do not overlap."""
    if ax is None:
        ax = Figure(figsize=(8, 8)).subplots()
        _margins(ax.figure, top=0.4, left=1.5, bottom=1.3, right=0.2)
    fig, ax = MulticlassConfusionMatrix(len(class_names)).plot(
        confusion.cpu(), ax=ax, labels=list(class_names)
    )
    ax.set_title(title)
    return fig


def class_accuracy(confusion: torch.Tensor, class_names: Sequence[str], title: str, ax=None) -> Figure:
    """The notes' per-class accuracy (recall) as a bar chart, each bar labelled with its value."""
    confusion = confusion.cpu()
    images = confusion.sum(dim=1)
    accuracy = (confusion.diag() / images.clamp(min=1)).tolist()
    overall = (confusion.diag().sum() / confusion.sum().clamp(min=1)).item()
    if ax is None:
        ax = Figure(figsize=(8, 5), layout="constrained").subplots()
    positions = range(len(class_names))
    ax.barh(positions, accuracy, color="tab:blue")
    ax.set_yticks(list(positions), labels=list(class_names))
    ax.invert_yaxis()  # first class at the top, as in the notes' table
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("accuracy (share of the class's images given that class)")
    for position, (value, count) in enumerate(zip(accuracy, images.tolist(), strict=True)):
        label = f"{value:.1%}" if count else "N/A (no images)"
        ax.text(value + 0.01, position, label, va="center", fontsize=9)
    ax.axvline(overall, color="gray", linestyle="--")
    ax.set_title(f"{title} (dashed: overall, {overall:.2%})")
    return ax.figure


def confusion_report(confusion: torch.Tensor, class_names: Sequence[str], title: str) -> Figure:
    """The confusion matrix and the per-class accuracy side by side."""
    fig = Figure(figsize=(17, 7.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    confusion_matrix(confusion, class_names, "confusion matrix (rows: true class)", ax=left)
    class_accuracy(confusion, class_names, "accuracy per class", ax=right)
    fig.suptitle(title)
    return fig


def steps(pictures: Sequence[tuple[str, torch.Tensor]], title: str) -> Figure:
    """Pictures ``[C, H, W]`` of any sizes side by side, each under its name."""
    fig = Figure(figsize=(3 * len(pictures), 3.6))
    for ax, (name, picture) in zip(fig.subplots(1, len(pictures)), pictures, strict=True):
        _show(ax, _channels_last(picture), 0, 255)
        ax.set_title(name, fontsize=10)
        _hide_ticks(ax)
    fig.suptitle(title)
    return fig


def curves(scalars: Mapping[str, Sequence[tuple[int, float]]], title: str) -> Figure:
    """Loss curves on the left, accuracy curves on the right, against the training step."""
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        for tag, points in scalars.items():
            training = tag.startswith(("train/", "val/"))  # a test's scalars are one point, not a curve
            if training and (tag.endswith(f"/{metric}") or tag.endswith(f"/{metric}_step")):
                steps, values = zip(*sorted(points), strict=True)  # a resumed run may append earlier steps
                ax.plot(steps, values, marker="." if len(points) < 50 else None, label=tag)
        ax.set_xlabel("training step")
        ax.set_ylabel(metric if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    return fig
