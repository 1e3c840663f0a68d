"""Your own pictures as Fashion-MNIST images, so a trained net can classify them.

Fashion-MNIST was made from product photos (Xiao et al., 2017, and the data set's README): trim the
edges that have the background's colour, scale the longest side to 28 pixels, centre the result on
a 28x28 canvas, and negate, so the garment is light on black. ``to_fashion_mnist`` does the same to
any image: PNG, JPEG, ..., any size, grayscale, RGB or RGBA, dark-on-light or light-on-dark.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

SIDE = 28
TRIM_THRESHOLD = 24  # grey levels away from the background that count as the object


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the files inside the folders named (sorted, hidden files left out)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither an image file nor a folder")
    return found


def read_image(path: Path) -> Image.Image:
    """The image in ``path`` as 8-bit grayscale; transparent parts become white (a product photo's
    background). Raises ``ValueError`` saying why the file cannot be used."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.convert("RGBA")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"not a readable image ({err.__class__.__name__}: {err})") from None
    white = Image.new("RGBA", image.size, "white")
    return Image.alpha_composite(white, image).convert("L")


def pixels(image: Image.Image) -> torch.Tensor:
    """A grayscale (mode ``L``) image as a uint8 tensor ``[H, W]``."""
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width)


def to_fashion_mnist(image: Image.Image) -> torch.Tensor:
    """A grayscale image as a ``[28, 28]`` uint8 tensor in Fashion-MNIST's style."""
    values = pixels(image)
    border = torch.cat([values[0], values[-1], values[:, 0], values[:, -1]])
    if border.float().median() > 127:  # a light background: negate, as Fashion-MNIST did
        image, values = ImageOps.invert(image), 255 - values
        border = 255 - border
    background = border.float().median()
    rows, cols = torch.nonzero((values.float() - background).abs() > TRIM_THRESHOLD, as_tuple=True)
    if len(rows):  # trim to the object (a blank image is kept whole)
        image = image.crop(
            (cols.min().item(), rows.min().item(), cols.max().item() + 1, rows.max().item() + 1)
        )
    scale = SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS)
    canvas = Image.new("L", (SIDE, SIDE), 0)
    canvas.paste(image, ((SIDE - size[0]) // 2, (SIDE - size[1]) // 2))
    return pixels(canvas).clone()


def load_images(paths: Iterable[str | Path]) -> tuple[torch.Tensor, list[Path], list[tuple[Path, str]]]:
    """``[N, 1, 28, 28]`` uint8 images from files and folders, the files they came from, and the
    files skipped with the reason (unreadable, or not an image)."""
    images, used, skipped = [], [], []
    for path in find_images(paths):
        try:
            images.append(to_fashion_mnist(read_image(path)))
            used.append(path)
        except ValueError as err:
            skipped.append((path, str(err)))
    stacked = torch.stack(images).unsqueeze(1) if images else torch.empty(0, 1, SIDE, SIDE, dtype=torch.uint8)
    return stacked, used, skipped
