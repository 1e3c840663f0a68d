"""Photos as people take them (scripts/photo_set.py's variations) come back as the object on black.

Each variation of the photo set is made here from two drawn objects, not Fashion-MNIST: an upright one
(a garment) and a wide one (a shoe), and must convert to the same shape: the object's pixels overlap the
original's, and nothing of the background (a card, a gradient, a table edge, a shadow) is left."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from scipy.ndimage import binary_dilation
from test_predict import garment

from fashion_lightning.data.object_separation import separate, working_copy
from fashion_lightning.data.photos import fit_image

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("photo_set", REPO / "scripts/photo_set.py")
photo_set = importlib.util.module_from_spec(spec)
spec.loader.exec_module(photo_set)


def shoe() -> np.ndarray:
    """A 28x28 wide object, light on black, with a brighter sole: a sneaker as Fashion-MNIST draws it."""
    image = np.zeros((28, 28), dtype=np.uint8)
    for col in range(28):
        top = 6 + max(0, 10 - col // 2)
        image[top:19, col] = 110 + 3 * col
    image[19:22] = 230  # rows 6 to 21: centred, as the conversion centres it
    return image


def as_saved(photo: Image.Image, save: dict) -> Image.Image:
    """The photo as a file gives it back: JPEG at the variation's quality, turned upright by its EXIF."""
    data = io.BytesIO()
    photo.save(data, "JPEG", **save)
    data.seek(0)
    return ImageOps.exif_transpose(Image.open(data)).convert("RGB")


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of the two images' object pixels."""
    a, b = a > 40, b > 40
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("variation", photo_set.VARIATIONS)
def test_each_variation_converts_back_to_the_object(variation):
    rng = np.random.default_rng(7)
    for original in (garment(), shoe()):
        for _ in range(2):
            photo, save = photo_set.make_photo(original, variation, rng)
            converted = np.asarray(fit_image(as_saved(photo, save), (28, 28), "object", 1))
            turned = variation in ("rotated", "product_photo")  # the object is turned a few degrees
            assert overlap(converted, original) > (0.6 if turned else 0.75), overlap(converted, original)
            outside = ~binary_dilation(original > 0, iterations=2)
            assert converted[outside].mean() < 10, "background left around the object"


def test_a_table_edge_along_the_side_is_background():
    photo = np.full((300, 400, 3), (235, 225, 205), dtype=np.uint8)  # a cream table
    photo[:, 340:] = (90, 60, 40)  # the floor beyond its edge, along the right side
    photo[100:200, 150:250] = (20, 20, 60)  # the object
    separation = separate(working_copy(Image.fromarray(photo)))
    left, top, right, bottom = separation.box
    scale = separation.mask.shape[1] / 400
    assert abs(left - 150 * scale) <= 2 and abs(right - 250 * scale) <= 2 and abs(top - 100 * scale) <= 2


def test_an_object_on_a_card_on_a_page_is_the_object_not_the_card():
    photo = np.full((400, 400, 3), 250, dtype=np.uint8)  # a white page
    photo[60:340, 80:320] = (230, 225, 200)  # an off-white, tinted card
    photo[120:280, 150:250] = (60, 60, 60)  # the object
    separation = separate(Image.fromarray(photo))
    scale = separation.mask.shape[0] / 400
    left, top, right, bottom = separation.box
    assert abs(left - 150 * scale) <= 2 and abs(top - 120 * scale) <= 2 and abs(bottom - 280 * scale) <= 2


def test_a_blank_photo_gives_a_black_input():
    photo = Image.new("RGB", (300, 200), (120, 140, 160))
    assert not np.asarray(fit_image(photo, (28, 28), "object", 1)).any()


def test_a_colour_model_gets_the_object_in_colour():
    photo = np.full((200, 200, 3), 255, dtype=np.uint8)
    photo[50:150, 60:140] = (255, 40, 40)  # red: far from white in green and blue only
    converted = np.asarray(fit_image(Image.fromarray(photo), (28, 28), "object", 3)).astype(int)
    red, green, blue = converted[14, 14]
    assert green > 200 and blue > 200 and red < 30
