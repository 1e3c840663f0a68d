"""Hostile and unusual image files: each is converted correctly or refused with the reason, in bounded
memory, and ``predict`` on a folder of them predicts the others."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import struct
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageDraw, ImageFile, ImageOps
from test_predict import checkpoint, predict  # noqa: F401 (checkpoint: the fixture that trains a tiny model)

from fashion_lightning.data.contract import InputContract
from fashion_lightning.data.photos import DECODE_SIDE, MODES, find_images, fit_image, load_photos, read_image

CONTRACT = InputContract(classes=("a", "b"), channels=1, size=(28, 28), mean=(0.5,), std=(0.5,))


def read_as_before(path: Path, channels: int) -> Image.Image:
    """``read_image`` as it was before hostile files were handled: the reference for ordinary images."""
    with Image.open(path) as opened:
        opened.load()
        image = ImageOps.exif_transpose(opened).convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert(MODES[channels])


def page(size: tuple[int, int] = (120, 90)) -> Image.Image:
    """A product photo in miniature: a patch of colour noise on a white page."""
    image = Image.new("RGB", size, "white")
    noise = np.random.default_rng(0).integers(0, 256, (size[1] // 2, size[0] // 3, 3), dtype=np.uint8)
    image.paste(Image.fromarray(noise), (size[0] // 3, size[1] // 4))
    return image


def with_alpha(image: Image.Image) -> Image.Image:
    """``image`` with an alpha channel of every level, transparent on the left, opaque on the right."""
    alpha = Image.linear_gradient("L").rotate(90).resize(image.size)
    return Image.merge("RGBA", [*image.convert("RGB").split(), alpha])


def as_palette(image: Image.Image, transparent: bool) -> Image.Image:
    """``image`` in 16 colours; the first of them transparent if ``transparent``."""
    image = image.quantize(16)
    if transparent:
        image.info["transparency"] = 0
    return image


ORDINARY = {  # file name: the picture in it
    "L.png": lambda: page().convert("L"),
    "L.jpg": lambda: page().convert("L"),
    "RGB.png": page,
    "RGB.jpg": page,
    "RGBA.png": lambda: with_alpha(page()),
    "LA.png": lambda: with_alpha(page()).convert("LA"),
    "P.png": lambda: as_palette(page(), transparent=False),
    "P-transparent.png": lambda: as_palette(page(), transparent=True),
    "P.gif": lambda: as_palette(page(), transparent=False),
    "1.png": lambda: page().convert("1"),
    "CMYK.jpg": lambda: page().convert("CMYK"),
    "large.jpg": lambda: page((1900, 1400)),  # large, yet under twice DECODE_SIDE: not shrunk
}


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_images_decode_exactly_as_before(name, tmp_path):
    """Bit for bit, so that the image-folder caches made before stay valid."""
    path = tmp_path / name
    ORDINARY[name]().save(path)
    for channels in (1, 3):
        assert np.array_equal(
            np.asarray(read_image(path, channels)), np.asarray(read_as_before(path, channels))
        )


def write_16_bit(path: Path) -> np.ndarray:
    """A 16-bit grayscale ramp over the full range, 0 to 65535; its levels."""
    levels = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    Image.fromarray(levels).save(path)
    return levels


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_16_bit_image_keeps_its_full_range_in_8_bits(suffix, tmp_path):
    levels = write_16_bit(tmp_path / f"ramp{suffix}")
    assert Image.open(tmp_path / f"ramp{suffix}").mode == "I;16"
    gray = np.asarray(read_image(tmp_path / f"ramp{suffix}", channels=1))
    assert np.array_equal(gray, (levels / 257).round().astype(np.uint8)), "scaled, not clipped to white"
    assert gray.min() == 0 and gray.max() == 255 and len(np.unique(gray)) == 256
    rgb = np.asarray(read_image(tmp_path / f"ramp{suffix}", channels=3))
    assert all(np.array_equal(rgb[..., band], gray) for band in range(3))


@pytest.mark.parametrize("mode", ["1", "P", "I;16"])
def test_a_large_image_of_any_mode_is_shrunk_as_it_is_read(mode, tmp_path):
    """Past ``DECODE_SIDE`` an image is reduced, though Pillow's ``reduce`` takes no 1-bit, palette or
    16-bit image."""
    side = 3 * DECODE_SIDE
    white = {"1": 1, "P": 1, "I;16": 65535}[mode]
    image = Image.new(mode, (side, side), 0)
    if mode == "P":
        image.putpalette([0, 0, 0, 255, 255, 255])
    ImageDraw.Draw(image).rectangle((0, 0, side // 2 - 1, side - 1), fill=white)  # left half white
    image.save(tmp_path / "big.png")
    gray = np.asarray(read_image(tmp_path / "big.png", channels=1))
    assert gray.shape == (side // 3, side // 3)
    assert (gray[:, : DECODE_SIDE // 2] == 255).all() and (gray[:, DECODE_SIDE // 2 :] == 0).all()


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),  # floats as fractions of white
        (np.array([[0, 128, 255]], dtype=np.int32), [0, 128, 255]),  # 8-bit levels in 32 bits
        (np.array([[-1000, 0, 1000]], dtype=np.int32), [0, 128, 255]),  # any other range: stretched
    ],
)
def test_32_bit_and_float_images_keep_their_range_in_8_bits(levels, expected, tmp_path):
    Image.fromarray(levels).save(tmp_path / "levels.tif")
    gray = np.asarray(read_image(tmp_path / "levels.tif", channels=1))
    assert gray[0].tolist() == expected


CMYK_TO_RGB = {
    (0, 255, 255, 0): (255, 0, 0),
    (255, 0, 255, 0): (0, 255, 0),
    (255, 255, 0, 0): (0, 0, 255),
    (0, 0, 0, 0): (255, 255, 255),
    (0, 0, 0, 255): (0, 0, 0),
}


def write_cmyk(path: Path) -> None:
    """A CMYK JPEG, as print workflows make them: a band of each of ``CMYK_TO_RGB``'s inks."""
    image = Image.new("CMYK", (16 * len(CMYK_TO_RGB), 16))
    for band, ink in enumerate(CMYK_TO_RGB):
        image.paste(ink, (16 * band, 0, 16 * band + 16, 16))
    image.save(path, quality=95)


def test_a_cmyk_jpeg_gives_its_rgb_colours(tmp_path):
    write_cmyk(tmp_path / "print.jpg")
    assert Image.open(tmp_path / "print.jpg").mode == "CMYK"
    rgb = np.asarray(read_image(tmp_path / "print.jpg", channels=3)).astype(int)
    for band, colour in enumerate(CMYK_TO_RGB.values()):
        assert np.abs(rgb[8, 16 * band + 8] - colour).max() <= 8, f"{rgb[8, 16 * band + 8]} for {colour}"


def write_frames(path: Path) -> None:
    """Three frames, red, blue and green."""
    red, *others = (Image.new("RGB", (32, 32), colour) for colour in ("red", "blue", "lime"))
    red.save(path, save_all=True, append_images=others)


@pytest.mark.parametrize("suffix", [".gif", ".tif", ".png", ".webp"])
def test_an_animated_or_multi_page_file_gives_its_first_frame(suffix, tmp_path):
    write_frames(tmp_path / f"frames{suffix}")
    assert Image.open(tmp_path / f"frames{suffix}").n_frames == 3
    rgb = np.asarray(read_image(tmp_path / f"frames{suffix}", channels=3)).astype(int)
    assert np.abs(rgb[16, 16] - (255, 0, 0)).max() <= 8


def write_rotated(path: Path) -> None:
    """A 60x30 JPEG with a red top-left corner, and EXIF saying: turn it 90 degrees clockwise to show it."""
    stored = Image.new("RGB", (60, 30), "white")
    stored.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    stored.save(path, exif=exif, quality=95)


def test_an_exif_rotated_photo_is_upright(tmp_path):
    write_rotated(tmp_path / "rotated.jpg")
    image = read_image(tmp_path / "rotated.jpg", channels=3)
    assert image.size == (30, 60)
    rgb = np.asarray(image).astype(int)
    assert np.abs(rgb[5, 25] - (255, 0, 0)).max() <= 8, "the stored top-left is now top-right"
    assert np.abs(rgb[5, 5] - (255, 255, 255)).max() <= 8


def transparent(mode: str) -> Image.Image:
    """Dark grey (40) on the right half, transparent on the left, in ``mode``."""
    image = Image.new("P", (20, 10), 0)
    image.putpalette([40, 40, 40, 200, 0, 0])
    image.paste(1, (0, 0, 10, 10))
    image.info["transparency"] = 1
    return image if mode == "P" else image.convert(mode)


@pytest.mark.parametrize("mode", ["P", "LA", "RGBA"])
def test_transparent_parts_are_white(mode, tmp_path):
    transparent(mode).save(tmp_path / "cutout.png")
    gray = np.asarray(read_image(tmp_path / "cutout.png", channels=1))
    assert (gray[:, :10] == 255).all() and (gray[:, 10:] == 40).all()


def write_truncated(path: Path) -> None:
    """The first half of an image file in the format of ``path``'s suffix."""
    whole = io.BytesIO()
    page().save(whole, Image.registered_extensions()[path.suffix])
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])


def write_png_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` pixels: only the header is read before refusing it."""
    whole = io.BytesIO()
    Image.new("L", (1, 1)).save(whole, "PNG")
    data = bytearray(whole.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(data[12:29]))  # and its checksum
    path.write_bytes(data)


LIMIT = f"over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,}"
SHRINK = "; shrink it, or save it as JPEG (decoded at as little as 1/8 of its size)"
UNUSABLE = {  # file name: (how to make it, how the reason it is refused begins)
    "empty.png": (lambda path: path.write_bytes(b""), "an empty file (0 bytes)"),
    "truncated.jpg": (
        write_truncated,
        "not a readable image (truncated or damaged: OSError: image file is trunc",
    ),
    "truncated.png": (
        write_truncated,
        "not a readable image (truncated or damaged: OSError: image file is trunc",
    ),
    "notes.txt": (
        lambda path: path.write_text("a shopping list"),
        "not a readable image (in no format Pillow",
    ),
    "bomb.png": (
        lambda path: write_png_claiming(path, 100_000, 100_000),
        f"too large an image: 10,000,000,000 pixels to decode, {LIMIT}{SHRINK}",
    ),
    "dangling.png": (
        lambda path: path.symlink_to(path.with_name("gone.png")),
        "not a readable file (No such file or directory; a symlink to ",
    ),
    "loop.png": (
        lambda path: path.symlink_to(path),
        "not a readable file (Too many levels of symbolic links",
    ),
    "fifo.png": (os.mkfifo, "not a regular file"),
}


@pytest.mark.parametrize("name", UNUSABLE)
def test_an_unusable_file_is_refused_with_the_reason(name, tmp_path):
    make, reason = UNUSABLE[name]
    make(tmp_path / name)
    with pytest.raises(ValueError, match="^" + re.escape(reason)):
        read_image(tmp_path / name, channels=1)


@pytest.mark.parametrize(
    ("width", "height"),
    [(10_000, 10_000), (100_000, 100_000)],
    ids=["over the limit, where Pillow warns", "over twice the limit, where Pillow raises"],
)
def test_a_decompression_bomb_is_refused_before_it_is_decoded(width, height, tmp_path):
    write_png_claiming(tmp_path / "bomb.png", width, height)
    filters = list(warnings.filters)
    with warnings.catch_warnings(), pytest.raises(ValueError) as refused:
        warnings.simplefilter("error")  # Pillow's warning must not escape either
        read_image(tmp_path / "bomb.png", channels=1)
    assert str(refused.value) == f"too large an image: {width * height:,} pixels to decode, {LIMIT}{SHRINK}"
    assert warnings.filters == filters, "the process's warning filters are left as they were"
    assert LIMIT.endswith(f"{Image.MAX_IMAGE_PIXELS:,}"), "and Pillow's limit as it was"


def test_images_read_in_threads_leave_pillows_limit_as_it_was(tmp_path, monkeypatch):
    """Reading turns Pillow's own check off for a moment (a process-wide setting): threads that read
    at once must not leave it off."""
    Image.new("L", (8, 8)).save(tmp_path / "small.png")
    limit = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)  # put back after the test, even if it fails
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: read_image(tmp_path / "small.png", channels=1), range(2_000)))
    finally:
        sys.setswitchinterval(interval)
    assert limit == Image.MAX_IMAGE_PIXELS, "Pillow's limit is as it was"


@pytest.fixture
def decoded_at(monkeypatch) -> list[tuple[int, int]]:
    """The size of each image Pillow decodes, as it decodes it."""
    sizes = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: sizes.append(image.size) or load(image))
    return sizes


def test_a_phone_photo_over_the_limit_is_read_at_the_scale_it_is_decoded_at(tmp_path, decoded_at):
    """A 108-megapixel JPEG, past Pillow's limit at full size, decodes at 1/8 scale (1.7 megapixels)."""
    big = Image.new("RGB", (12_000, 9_000), "white")
    ImageDraw.Draw(big).ellipse((3_000, 2_000, 9_000, 7_000), fill=(60, 20, 20))
    big.save(tmp_path / "phone.jpg", quality=50)
    assert Image.MAX_IMAGE_PIXELS < 12_000 * 9_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor does Pillow's warning escape
        image = read_image(tmp_path / "phone.jpg", channels=3)
    assert set(decoded_at) == {(1_500, 1_125)} and image.size == (1_500, 1_125)
    assert image.getpixel((750, 562)) == pytest.approx((60, 20, 20), abs=8)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_large_image_is_shrunk_as_it_is_decoded(suffix, tmp_path, decoded_at):
    """3000x2100: a JPEG is decoded at half scale, a PNG halved once decoded; the model's input is as
    from the full-size image."""
    big = Image.new("L", (3000, 2100), 255)
    ImageDraw.Draw(big).ellipse((700, 300, 2300, 1800), fill=60, outline=0, width=40)
    big.save(tmp_path / f"big{suffix}")
    image = read_image(tmp_path / f"big{suffix}", channels=1)
    assert decoded_at[0] == ((1500, 1050) if suffix == ".jpg" else (3000, 2100)) and image.size == (
        1500,
        1050,
    )
    full = Image.open(tmp_path / f"big{suffix}").convert("L")
    for how in ("crop", "object"):
        small, reference = (np.asarray(fit_image(i, (28, 28), how)).astype(int) for i in (image, full))
        assert np.abs(small - reference).mean() < 1.5, how


def test_links_in_a_folder_neither_loop_nor_stop_the_rest(tmp_path):
    """A link to a folder is not followed (``a/b -> a`` would loop); a link to a file is read through."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("a.png", "sub/b.png"):
        page().save(folder / name)
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)
    (folder / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (folder / "alias.png").symlink_to(folder / "a.png")
    UNUSABLE["dangling.png"][0](folder / "dangling.png")
    UNUSABLE["loop.png"][0](folder / "sub" / "loop.png")
    assert find_images([folder])[0] == [
        folder / name for name in ("a.png", "alias.png", "dangling.png", "sub/b.png", "sub/loop.png")
    ]
    images, used, skipped = load_photos([folder], CONTRACT)
    assert used == [folder / "a.png", folder / "alias.png", folder / "sub" / "b.png"] and len(images) == 3
    assert [(path, reason.split(" (")[0]) for path, reason in skipped] == [
        (folder / "dangling.png", "not a readable file"),
        (folder / "out", "a link to a folder, not followed"),
        (folder / "sub" / "back", "a link to a folder, not followed"),
        (folder / "sub" / "loop.png", "not a readable file"),
    ]


def test_a_folder_that_cannot_be_listed_is_skipped_with_the_reason(tmp_path, monkeypatch):
    """Tests run as root, whom no permission stops: the refusal is made where ``os.walk`` lists."""
    folder = tmp_path / "photos"
    (folder / "locked").mkdir(parents=True)
    page().save(folder / "a.png")
    page().save(folder / "locked" / "b.png")
    scandir = os.scandir

    def refusing(path):
        if Path(path) == folder / "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    _, used, skipped = load_photos([folder], CONTRACT)
    assert used == [folder / "a.png"]
    assert skipped == [(folder / "locked", "a folder that cannot be listed (Permission denied)")]


USABLE = {  # file name: how to make it, for predict on a folder that mixes them with the unusable files
    # each with an object that stands out: a flat or blank photo is skipped (the last test)
    "16-bit.png": lambda path: Image.fromarray(np.asarray(page().convert("L")).astype(np.uint16) * 257).save(
        path
    ),
    "cmyk.jpg": write_cmyk,
    "animated.gif": lambda path: page().save(
        path, save_all=True, append_images=[Image.new("RGB", (120, 90))]
    ),
    "rotated.jpg": write_rotated,
    "palette.png": lambda path: transparent("P").save(path),
    "photo.jpg": lambda path: page((2400, 3000)).save(path),
}


def test_predict_on_a_folder_of_hostile_files_predicts_the_others(checkpoint, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name, make in USABLE.items():
        make(folder / name)
    for name, (make, _) in UNUSABLE.items():
        make(folder / "sub" / name)
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)
    output = tmp_path / "predictions.csv"
    with pytest.warns(UserWarning) as warned:
        predict(checkpoint, tmp_path, f"--data.predict_images={folder}", f"--predictions.output={output}")
    messages = [
        str(w.message).removeprefix("skipped ") for w in warned if str(w.message).startswith("skipped ")
    ]
    skipped = dict(message.split(": ", 1) for message in messages)
    expected = {folder / "sub" / "back": "a link to a folder, not followed"}
    expected |= {folder / "sub" / name: reason for name, (_, reason) in UNUSABLE.items()}
    assert sorted(skipped) == sorted(map(str, expected)) and len(messages) == len(expected)
    for path, reason in expected.items():
        assert skipped[str(path)].startswith(reason), skipped[str(path)]
    assert [row["path"] for row in csv.DictReader(output.open())] == sorted(str(folder / n) for n in USABLE)
    out, err = capsys.readouterr()
    assert f"Predicted {len(USABLE)} images" in out and "Traceback" not in out + err


def test_a_photo_in_which_nothing_stands_out_is_skipped_with_the_reason(tmp_path):
    """As the MNIST family is read (``object``), a blank photo would become an all-black input."""
    page().save(tmp_path / "garment.png")
    Image.new("RGB", (300, 200), (120, 140, 160)).save(tmp_path / "blank.png")
    images, used, skipped = load_photos([tmp_path], dataclasses.replace(CONTRACT, photos="object"))
    assert used == [tmp_path / "garment.png"] and images.shape == (1, 1, 28, 28)
    assert skipped == [
        (tmp_path / "blank.png", "a photo in which no object stands out from its background (blank or even)")
    ]
