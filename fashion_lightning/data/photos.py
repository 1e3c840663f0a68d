"""Image files of any size, mode or format as a model's input: uint8 ``[C, H, W]`` of its ``InputContract``.

Training images from a folder (``ImageFolder``) and the photos given to ``predict`` go through the same
functions, so that a photo reaches the model the way its training images did. Two ways to fit a
picture to the model's size (``InputContract.photos``):

- ``crop``: scale it to cover the size and cut the centre (Pillow's ``ImageOps.fit``);
- ``object``: as Fashion-MNIST was made from product photos (Xiao et al., 2017): negate a light
  background so the object is light on black, trim the edges of the background's colour, scale the
  longest side to fit, centre the result on a black canvas and sharpen it.

A file that cannot be used is refused with the reason (``ValueError``), so that a folder's other images
are still read: empty, truncated or damaged, not an image, or over Pillow's decompression-bomb limit
(``Image.MAX_IMAGE_PIXELS``, checked before anything is decoded, on the pixels that would be: a JPEG's
at the scale it is decoded at). A truncated file is refused, not padded (Pillow's
``LOAD_TRUNCATED_IMAGES`` is left as it is): a part-grey picture would get a confident wrong label. A
large JPEG is shrunk as it is decoded, any other large image right after (``DECODE_SIDE``).
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2.functional import pil_to_tensor

from fashion_lightning.data.contract import InputContract, PhotoFit
from fashion_lightning.data.object_separation import object_on_black, separate, working_copy

MODES = {1: "L", 3: "RGB"}
# pixels: an image larger on its shorter side is shrunk by a whole factor, to no less, before it is
# converted, so that memory does not grow with the file's pixels; still 4x an input of up to 256 pixels
DECODE_SIDE = 1024
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
# modes ``reduce`` refuses, or would average wrongly (palette indices), and what they become first
REDUCIBLE = {"1": "L", "P": "RGBA", "PA": "RGBA", **dict.fromkeys(SIXTEEN_BIT, "I")}
# Fashion-MNIST's conversion sharpened each scaled image with a Gaussian operator of radius and standard
# deviation 1.0 (Xiao et al., 2017): a photo scaled down to a few pixels is as blurred as theirs were
SHARPEN = ImageFilter.UnsharpMask(radius=1, percent=100, threshold=0)
# what Pillow raises on a file it cannot decode; anything else is a bug, not a bad file
BAD_FILE = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


def find_images(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files named, and the files inside the folders named (sorted, hidden files left out); and
    what in the folders was left out with the reason: links to folders (not followed: one may loop,
    ``a/b -> a``, or lead out of the folder) and folders that cannot be listed. Every other entry is
    kept, dangling links and special files too, so that reading it says why not."""
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []

    def unlisted(err: OSError) -> None:
        skipped.append((Path(err.filename), f"a folder that cannot be listed ({err.strerror})"))

    for path in (Path(named).expanduser() for named in paths):  # ~ too, as in --data.predict_images=~/x
        if path.is_dir():
            files = []
            for folder, folders, names in os.walk(path, onerror=unlisted):
                visible = [Path(folder, name) for name in folders if not name.startswith(".")]
                folders[:] = [sub.name for sub in visible if not sub.is_symlink()]
                skipped += [(sub, "a link to a folder, not followed") for sub in visible if sub.is_symlink()]
                files += [Path(folder, name) for name in names if not name.startswith(".")]
            found += sorted(files)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither an image file nor a folder")
    return found, sorted(skipped)


def read_image(path: Path, channels: int) -> Image.Image:
    """The image in ``path``, turned by its EXIF orientation, as grayscale (1 channel) or RGB (3);
    transparent parts become white (a product photo's background), 16-bit levels are scaled to 8 bits,
    a multi-frame file gives its first frame. Raises ``ValueError`` saying why the file cannot be used."""
    _check_file(path)
    try:
        with _open(path) as opened:
            sixteen_bit = opened.mode in SIXTEEN_BIT
            image = _decoded(opened)
    except BAD_FILE as err:
        raise ValueError(_why_unreadable(err)) from None
    if image.mode in ("I", "F"):
        image = _eight_bit(image, sixteen_bit)
    if image.has_transparency_data:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    mode = MODES[channels]
    return image if image.mode == mode else image.convert("RGB").convert(mode)  # colours as RGB sees them


def _check_file(path: Path) -> None:
    """Raises ``ValueError`` for what is no image file, before opening it: opening a FIFO would wait."""
    try:
        status = path.stat()
    except OSError as err:
        link = f"; a symlink to {os.readlink(path)}" if path.is_symlink() else ""
        raise ValueError(f"not a readable file ({err.strerror}{link})") from None
    if not stat.S_ISREG(status.st_mode):
        raise ValueError("not a regular file")
    if status.st_size == 0:
        raise ValueError("an empty file (0 bytes)")


_PILLOW_LIMIT_OFF = threading.Lock()


def _open(path: Path) -> Image.Image:
    """Pillow's lazy image of ``path``, set to decode no more pixels than it needs (a JPEG at 1/2, 1/4
    or 1/8 scale, ``draft``), refused if that is still past the decompression-bomb limit. Pillow's own
    check, at open, counts a JPEG's full size: it would refuse a phone's 108-megapixel photo, which
    decodes at 1/8 scale to 1.7 megapixels (a JPEG's sides of at most 65,535 pixels always decode under
    the limit); and it only warns up to twice the limit, where other formats are decoded whole."""
    with _PILLOW_LIMIT_OFF:  # a process-wide setting: threads opening at once must not keep it off
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # Pillow's check off while opening; this one counts what is decoded
        try:
            opened = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    opened.draft(None, (DECODE_SIDE, DECODE_SIDE))
    if limit and opened.width * opened.height > limit:
        opened.close()
        raise Image.DecompressionBombError(
            f"too large an image: {opened.width * opened.height:,} pixels to decode, over Pillow's "
            f"decompression-bomb limit of {limit:,}; shrink it, or save it as JPEG (decoded at as little "
            "as 1/8 of its size)"
        )
    return opened


def _decoded(opened: Image.Image) -> Image.Image:
    """The first frame, upright, shrunk by a whole factor if it is over ``DECODE_SIDE`` twice on its
    shorter side (a JPEG already is, as it is decoded: ``_open``)."""
    opened.load()
    ImageOps.exif_transpose(opened, in_place=True)  # before ``reduce``, whose copy loses a TIFF's tags
    image = opened.convert(REDUCIBLE[opened.mode]) if opened.mode in REDUCIBLE else opened
    factor = min(image.size) // DECODE_SIDE
    if factor > 1:
        return image.reduce(factor)
    return image.copy() if image is opened else image


def _eight_bit(image: Image.Image, sixteen_bit: bool) -> Image.Image:
    """Grayscale of wider levels (16 or 32-bit integers, floats) on 0..255: Pillow's own conversion
    would clip them. 16-bit levels are scaled by their full range; others by the range they use (floats
    up to 1 as fractions of white, levels up to 255 as they are, up to 65535 as 16-bit ones)."""
    low, high = image.getextrema()
    if sixteen_bit or (low >= 0 and 255 < high <= 65535):
        scale, offset = 1 / 257, 0.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0
    elif low >= 0 and high <= 255:
        scale, offset = 1.0, 0.0
    else:
        scale = 255 / (high - low) if high > low else 1.0
        offset = -low * scale
    return image.point(lambda level: level * scale + offset + 0.5).convert("L")  # + 0.5: rounded, not cut


def _why_unreadable(err: Exception) -> str:
    """Why Pillow could not decode a file, as a phrase that follows "<path> is"."""
    if isinstance(err, Image.DecompressionBombError):
        return str(err)  # _open's own words
    if isinstance(err, UnidentifiedImageError):
        why = "in no format Pillow reads"
    elif isinstance(err, OSError) and err.errno is not None:
        why = err.strerror
    else:
        why = f"truncated or damaged: {err.__class__.__name__}: {err}"
    return f"not a readable image ({why})"


def fit_image(
    image: Image.Image, size: tuple[int, int], how: PhotoFit, channels: int | None = None
) -> Image.Image:
    """``image`` at ``size`` (height, width), fitted as ``how`` says (see the module's docstring), with
    ``channels`` (by default the image's own: 1 for grayscale, 3 for RGB)."""
    height, width = size
    mode = MODES[channels] if channels else image.mode
    if how == "crop":
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS).convert(mode)
    return _centred(object_on_black(image, separate(working_copy(image)), len(mode)), size, mode)


def _centred(strength: np.ndarray | None, size: tuple[int, int], mode: str) -> Image.Image:
    """``[H, W, C]`` values in 0..1, scaled (Lanczos) so that the longer side fits ``size`` (height,
    width), centred on black and sharpened as Fashion-MNIST's images were (``SHARPEN``); None (nothing
    stands out from the background): all black."""
    height, width = size
    if strength is None:
        return Image.new(mode, (width, height), 0)
    scale = min(width / strength.shape[1], height / strength.shape[0])
    scaled = (max(1, round(strength.shape[1] * scale)), max(1, round(strength.shape[0] * scale)))
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(plane * 255)).resize(scaled, Image.Resampling.LANCZOS)
        )
        for plane in strength.transpose(2, 0, 1)
    ]
    canvas = np.zeros((height, width, len(mode)), dtype=np.uint8)
    row, col = (height - scaled[1]) // 2, (width - scaled[0]) // 2
    canvas[row : row + scaled[1], col : col + scaled[0]] = np.clip(np.stack(planes, axis=-1), 0, 255).round()
    return Image.fromarray(canvas[..., 0] if mode == "L" else canvas, mode).filter(SHARPEN)


def conversion_steps(
    image: Image.Image, size: tuple[int, int], how: PhotoFit, channels: int
) -> list[tuple[str, torch.Tensor]]:
    """``fit_image``'s steps, named, as uint8 ``[C, H, W]`` pictures: for ``object``, the photo, its
    distance from the background, the object's mask and the object trimmed; then the model's input."""
    if how == "crop":
        return [
            ("the photo", pil_to_tensor(image)),
            ("the model's input", pil_to_tensor(fit_image(image, size, how, channels))),
        ]
    work = working_copy(image)
    separation = separate(work)
    distance = separation.distance / max(separation.distance.max(), 1e-6) * 255
    upright = object_on_black(image, separation, channels)
    trimmed = np.zeros((1, 1, channels)) if upright is None else upright * 255
    fitted = ("the model's input", pil_to_tensor(_centred(upright, size, MODES[channels])))

    def picture(array: np.ndarray) -> torch.Tensor:
        array = array[..., None] if array.ndim == 2 else array
        return torch.from_numpy(np.ascontiguousarray(array.round().astype(np.uint8))).movedim(-1, 0)

    return [
        ("the photo", pil_to_tensor(work)),
        ("distance from the background", picture(distance)),
        ("the object's mask", picture(separation.mask * 255.0)),
        ("the object, upright, trimmed", picture(trimmed)),
        fitted,
    ]


def to_input(path: Path, contract: InputContract) -> torch.Tensor:
    """The image file as the model's input: uint8 ``[C, H, W]``. Raises ``ValueError`` if unreadable.
    An object is told from its background in colour, whatever channels the model takes."""
    how, channels = contract.photos, contract.channels
    image = fit_image(read_image(path, 3 if how == "object" else channels), contract.size, how, channels)
    if how == "object" and image.getbbox() is None:  # all black: any class would be a guess
        raise ValueError("a photo in which no object stands out from its background (blank or even)")
    return pil_to_tensor(image)


def load_photos(
    paths: Iterable[str | Path], contract: InputContract
) -> tuple[torch.Tensor, list[Path], list[tuple[Path, str]]]:
    """``[N, C, H, W]`` uint8 inputs from files and folders, the files they came from, and what was
    skipped with the reason (a file that is not a usable image, a folder not followed or not listable)."""
    found, skipped = find_images(paths)
    images, used = [], []
    for path in found:
        try:
            images.append(to_input(path, contract))
            used.append(path)
        except ValueError as err:
            skipped.append((path, str(err)))
    stacked = torch.stack(images) if images else torch.empty(0, *contract.shape, dtype=torch.uint8)
    return stacked, used, sorted(skipped)
