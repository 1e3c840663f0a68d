"""Image files of any size, mode or format as a model's input: uint8 ``[C, H, W]`` of its ``InputContract``.

Training images from a folder (``ImageFolder``) and the photos given to ``predict`` go through the same
functions, so that a photo reaches the model the way its training images did. Two ways to fit a
picture to the model's size (``InputContract.photos``):

- ``crop``: scale it to cover the size and cut the centre (Pillow's ``ImageOps.fit``);
- ``object``: as Fashion-MNIST was made from product photos (Xiao et al., 2017): negate a light
  background so the object is light on black, trim the edges of the background's colour, scale the
  longest side to fit and centre the result on a black canvas.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2.functional import pil_to_tensor

from fashion_lightning.data.contract import InputContract, PhotoFit

TRIM_THRESHOLD = 24  # grey levels away from the background that count as the object
MODES = {1: "L", 3: "RGB"}


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the files inside the folders named (sorted, hidden files left out)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither an image file nor a folder")
    return found


def read_image(path: Path, channels: int) -> Image.Image:
    """The image in ``path``, turned by its EXIF orientation, as grayscale (1 channel) or RGB (3);
    transparent parts become white (a product photo's background). Raises ``ValueError`` saying why
    the file cannot be used."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened).convert("RGBA")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"not a readable image ({err.__class__.__name__}: {err})") from None
    white = Image.new("RGBA", image.size, "white")
    return Image.alpha_composite(white, image).convert(MODES[channels])


def fit_image(image: Image.Image, size: tuple[int, int], how: PhotoFit) -> Image.Image:
    """``image`` at ``size`` (height, width), fitted as ``how`` says (see the module's docstring)."""
    height, width = size
    if how == "crop":
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    image = _object_on_black(image)
    scale = min(width / image.width, height / image.height)
    scaled = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(scaled, Image.Resampling.LANCZOS)
    canvas = Image.new(image.mode, (width, height), 0)
    canvas.paste(image, ((width - scaled[0]) // 2, (height - scaled[1]) // 2))
    return canvas


def _object_on_black(image: Image.Image) -> Image.Image:
    """The object light on black (a light background is negated), trimmed to the object."""
    gray = pil_to_tensor(image.convert("L"))[0].float()
    border = torch.cat([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.median() > 127:  # a light background: negate, as Fashion-MNIST did
        image, gray, border = ImageOps.invert(image), 255 - gray, 255 - border
    rows, cols = torch.nonzero((gray - border.median()).abs() > TRIM_THRESHOLD, as_tuple=True)
    if len(rows):  # trim to the object (a blank image is kept whole)
        image = image.crop(
            (cols.min().item(), rows.min().item(), cols.max().item() + 1, rows.max().item() + 1)
        )
    return image


def to_input(path: Path, contract: InputContract) -> torch.Tensor:
    """The image file as the model's input: uint8 ``[C, H, W]``. Raises ``ValueError`` if unreadable."""
    image = fit_image(read_image(path, contract.channels), contract.size, contract.photos)
    return pil_to_tensor(image)


def load_photos(
    paths: Iterable[str | Path], contract: InputContract
) -> tuple[torch.Tensor, list[Path], list[tuple[Path, str]]]:
    """``[N, C, H, W]`` uint8 inputs from files and folders, the files they came from, and the files
    skipped with the reason (unreadable, or not an image)."""
    images, used, skipped = [], [], []
    for path in find_images(paths):
        try:
            images.append(to_input(path, contract))
            used.append(path)
        except ValueError as err:
            skipped.append((path, str(err)))
    stacked = torch.stack(images) if images else torch.empty(0, *contract.shape, dtype=torch.uint8)
    return stacked, used, skipped
