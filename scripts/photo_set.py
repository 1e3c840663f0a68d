"""Photos as people take them, made from Fashion-MNIST test images, and the model's accuracy on each kind.

    python scripts/photo_set.py --ckpt runs/fast/version_0/checkpoints/last.ckpt   # make the set, measure
    python scripts/photo_set.py --out photo_set --every 10                          # only make the set

Each test image becomes a photo of a garment: the image's intensity is how much of the garment's colour
covers the background there (so a dark garment on a white page gives back the image, as Fashion-MNIST
was made). One folder per variation, the same test images in each, the true class in each file's name:

- ``white_page``: a dark garment on a clean white page (what ``predict`` handled before);
- ``tinted_card``: on an off-white, tinted card that lies, a little turned, on a white page;
- ``gradient``: on a grey-to-cream gradient, a garment of some colour;
- ``shadow``: a soft shadow falls beside the garment;
- ``table_edge``: the garment lies on a table whose edge, and the floor beyond it, are in the picture;
- ``coloured_background``: a garment of one colour on a background of another;
- ``dark_background``: a light garment on a dark background;
- ``grayscale``: a gradient background, saved as a grayscale photo;
- ``rotated``: the garment turned by 3 to 8 degrees either way;
- ``jpeg``: saved at JPEG quality 10 to 50;
- ``sizes``: photos from 100 to 2000 pixels on their longer side;
- ``exif``: stored turned, with an EXIF orientation that turns it upright;
- ``product_photo``: the issue's product photo on a table, all at once: gradient, soft shadow, colour,
  rotation, JPEG, any size.

With ``--ckpt``, every folder goes through ``fashion-lightning predict`` once, as a user would run it, and
a markdown table gives the accuracy per variation next to the model's accuracy on the same test images
unchanged (the 28x28 images themselves, as ``test`` sees them).
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from fashion_lightning.data import FashionMNIST
from fashion_lightning.models import ImageClassifier

VARIATIONS = (
    "white_page",
    "tinted_card",
    "gradient",
    "shadow",
    "table_edge",
    "coloured_background",
    "dark_background",
    "grayscale",
    "rotated",
    "jpeg",
    "sizes",
    "exif",
    "product_photo",
)


def hsv(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    """A colour of any hue, RGB in 0..255."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value))
    return np.array(rgb) * 255


def gradient(height: int, width: int, start: np.ndarray, end: np.ndarray, rng: np.random.Generator):
    """A linear gradient from ``start`` to ``end`` in a random direction, ``[H, W, 3]``."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width]
    along = x * np.cos(angle) + y * np.sin(angle)
    t = (along - along.min()) / max(np.ptp(along), 1)
    return start * (1 - t[..., None]) + end * t[..., None]


def cream_to_grey(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    grey = np.full(3, rng.uniform(150, 200))
    cream = np.array([rng.uniform(235, 250), rng.uniform(225, 240), rng.uniform(195, 215)])
    return gradient(height, width, grey, cream, rng)


def table_edge(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The floor beyond the table's edge along one side: 10-25% of the picture, the edge a little slanted."""
    height, width = background.shape[:2]
    floor = np.array([rng.uniform(60, 130), rng.uniform(45, 95), rng.uniform(30, 70)])  # wood or a dark floor
    side = rng.integers(4)
    y, x = np.mgrid[0:height, 0:width].astype(float)
    across = [y / height, 1 - y / height, x / width, 1 - x / width][side]  # 0 at that side
    along = [x / width, x / width, y / height, y / height][side]
    edge = rng.uniform(0.10, 0.25) + np.tan(np.radians(rng.uniform(-4, 4))) * (along - 0.5)
    beyond = (across < edge)[..., None]
    return np.where(beyond, floor + rng.normal(0, 4, background.shape), background)


def garment_cover(image: np.ndarray, box: int, angle: float) -> Image.Image:
    """The 28x28 image scaled to ``box`` pixels (bicubic, as a photo is smooth) and turned ``angle``."""
    cover = Image.fromarray(image).resize((box, box), Image.Resampling.BICUBIC)
    return cover.rotate(angle, Image.Resampling.BICUBIC, expand=True) if angle else cover


def make_photo(image: np.ndarray, variation: str, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """A photo of the 28x28 uint8 ``image`` as ``variation`` says, and how to save it (``quality``,
    ``exif``)."""
    product = variation == "product_photo"
    side = (
        int(rng.choice([100, 200, 500, 1000, 2000])) if variation == "sizes" else int(rng.integers(300, 900))
    )
    if product:
        side = int(rng.integers(300, 1600))
    height, width = (side, int(side * rng.uniform(0.75, 1.0)))[:: 1 if rng.uniform() < 0.5 else -1]
    angle = rng.uniform(3, 8) * rng.choice([-1, 1]) if variation in ("rotated", "product_photo") else 0.0
    box = int(min(height, width) * rng.uniform(0.5, 0.75))
    cover = garment_cover(image, box, angle)
    top = (height - cover.height) // 2 + int(rng.integers(-1, 2) * 0.05 * height)
    left = (width - cover.width) // 2 + int(rng.integers(-1, 2) * 0.05 * width)

    paper = np.full(3, rng.uniform(243, 255))
    garment = hsv(rng, (0.0, 0.3), (0.0, 0.15))  # nearly black: the page case is Fashion-MNIST's own
    background = np.broadcast_to(paper, (height, width, 3)).astype(float)
    if variation == "tinted_card":
        card = Image.new("L", (width, height), 0)
        margin = [int(rng.uniform(0.06, 0.15) * box) for _ in range(4)]
        corners = [
            (left - margin[0], top - margin[1]),
            (left + cover.width + margin[2], top - margin[1]),
            (left + cover.width + margin[2], top + cover.height + margin[3]),
            (left - margin[0], top + cover.height + margin[3]),
        ]
        ImageDraw.Draw(card).polygon(corners, fill=255)
        card = card.rotate(rng.uniform(-4, 4), Image.Resampling.BICUBIC, center=(width / 2, height / 2))
        tint = paper - np.array([rng.uniform(5, 20), rng.uniform(5, 25), rng.uniform(10, 40)])
        inside = np.asarray(card, dtype=float)[..., None] / 255
        background = background * (1 - inside) + tint * inside
        garment = hsv(rng, (0.0, 0.6), (0.0, 0.45))
    elif variation in ("gradient", "grayscale", "shadow", "product_photo"):
        background = cream_to_grey(height, width, rng)
        garment = hsv(rng, (0.0, 0.8), (0.0, 0.45))
    elif variation == "coloured_background":
        background = np.broadcast_to(hsv(rng, (0.3, 0.8), (0.5, 0.9)), (height, width, 3)).astype(float)
        garment = hsv(rng, (0.3, 1.0), (0.0, 0.3)) if rng.uniform() < 0.5 else hsv(rng, (0.0, 0.2), (0.9, 1))
    elif variation == "dark_background":
        background = np.broadcast_to(hsv(rng, (0.0, 0.5), (0.05, 0.25)), (height, width, 3)).astype(float)
        garment = hsv(rng, (0.0, 0.3), (0.85, 1.0))
    if variation == "table_edge":
        background = table_edge(background, rng)

    photo = background
    if variation in ("shadow", "product_photo"):  # soft, offset, darker where the garment is dense
        shadow = Image.new("L", (width, height), 0)
        offset = (rng.uniform(0.02, 0.05) * side * rng.choice([-1, 1]), rng.uniform(0.02, 0.05) * side)
        shadow.paste(
            cover.point(lambda v: 255 if v > 20 else 0), (left + int(offset[0]), top + int(offset[1]))
        )
        shadow = shadow.filter(ImageFilter.GaussianBlur(rng.uniform(0.01, 0.03) * side))
        photo = photo * (1 - rng.uniform(0.25, 0.45) * np.asarray(shadow, dtype=float)[..., None] / 255)
    alpha = Image.new("L", (width, height), 0)
    alpha.paste(cover, (left, top))
    a = np.asarray(alpha, dtype=float)[..., None] / 255
    photo = photo * (1 - a) + garment * a
    photo = Image.fromarray(np.clip(photo + rng.normal(0, 1.5, photo.shape), 0, 255).astype(np.uint8))
    if variation == "grayscale":
        photo = photo.convert("L")
    save = {"quality": int(rng.integers(10, 51)) if variation == "jpeg" else int(rng.integers(60, 96))}
    if variation == "exif":  # the pixels as a camera held sideways stores them, the tag to right them
        orientation = int(rng.choice([3, 6, 8]))
        undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
        photo = photo.transpose(undo[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif
    return photo, save


def write_set(images: torch.Tensor, labels: list[str], indices: list[int], out: Path, seed: int) -> None:
    """One folder per variation: ``<variation>/<test index>_<class>.jpg``."""
    for variation in VARIATIONS:
        folder = out / variation
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, VARIATIONS.index(variation)])
        for index in indices:
            photo, save = make_photo(images[index, 0].numpy(), variation, rng)
            photo.save(folder / f"{index:05d}_{labels[index].replace('/', '-')}.jpg", **save)


def unchanged_accuracy(checkpoint: Path, images: torch.Tensor, labels: torch.Tensor) -> float:
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    with torch.no_grad():
        predicted = torch.cat([model(batch).argmax(1) for batch in images.split(500)])
    return (predicted == labels).float().mean().item()


def measure(checkpoint: Path, out: Path) -> dict[str, tuple[int, int]]:
    """``fashion-lightning predict`` on the whole set: (right, images) per variation."""
    from fashion_lightning.cli import main

    output = Path(tempfile.mkdtemp()) / "predictions.csv"
    main(
        [
            "predict",
            f"--ckpt_path={checkpoint}",
            f"--data.predict_images={out}",
            f"--predictions.output={output}",
            f"--trainer.default_root_dir={output.parent}",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=false",
        ]
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with output.open() as file:
        for row in csv.DictReader(file):
            path = Path(row["path"])
            truth = re.fullmatch(r"\d+_(.+)", path.stem)[1]
            counts[path.parent.name][0] += row["predicted"].replace("/", "-") == truth
            counts[path.parent.name][1] += 1
    shutil.rmtree(output.parent)
    return {variation: tuple(counts[variation]) for variation in VARIATIONS if variation in counts}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", type=Path, help="a checkpoint to measure; without it, only make the set")
    parser.add_argument(
        "--out", type=Path, default=Path("photo_set"), help="the set's folder (reused if there)"
    )
    parser.add_argument("--data-dir", default="data", help="where Fashion-MNIST is (as data.source.root)")
    parser.add_argument("--every", type=int, default=10, help="every N-th test image (10: 1,000 of them)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    test = FashionMNIST(root=args.data_dir).load(train=False)
    indices = list(range(0, len(test.labels), args.every))
    if not args.out.exists():
        names = [test.classes[label] for label in test.labels.tolist()]
        write_set(test.images, names, indices, args.out, args.seed)
        print(f"wrote {len(indices)} photos per variation to {args.out}/", file=sys.stderr)
    if args.ckpt is None:
        return
    unchanged = unchanged_accuracy(args.ckpt, test.images[indices], test.labels[indices])
    results = measure(args.ckpt, args.out)
    right = sum(r for r, _ in results.values())
    total = sum(n for _, n in results.values())
    print(f"\n{args.ckpt}, every {args.every}th test image ({len(indices)}), set seed {args.seed}\n")
    print("| photos | images | accuracy |\n|---|---|---|")
    print(f"| unchanged 28x28 test images | {len(indices)} | {unchanged:.2%} |")
    for variation, (r, n) in results.items():
        print(f"| {variation} | {n} | {r / n:.2%} |")
    print(f"| all photos | {total} | {right / total:.2%} |")


if __name__ == "__main__":
    main()
