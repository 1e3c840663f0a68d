"""The object in a photo, apart from its background: how far each pixel is from the background, and a mask.

Fashion-MNIST was made from product photos on white: its images are the object's darkness on that white,
light on black. A user's photo has a background of its own (grey, coloured, a gradient, a card on a page,
a table and the floor beyond its edge, a shadow), so the darkness on white is generalised to the colour
distance from the background *at each pixel*:

1. the background is modelled from the picture's border: a smooth surface of colour (a plane, then
   second order in x and y, fitted by least squares that leave out the border pixels that do not fit
   it, such as an object touching the edge), so a gradient or uneven light is background too; where
   the border pixels it leaves out are one smooth surface of their own running in from the edge (the
   floor beyond a table's edge), that region is modelled by a second surface;
2. a threshold on the distance from it is chosen for this picture alone (Otsu's), and the mask's pieces
   are joined (closing) and filled;
3. pieces that run along the picture's edge are background; of the rest, the largest and the pieces
   near it are the object (a sandal's straps are several pieces);
4. an object that is a flat, nearly convex plate holding another object, such as a card the garment
   lies on, is background too: the background is modelled again from the plate's rim, and the object
   inside it is taken;
5. the object is turned upright (by the few degrees that make its upright box smallest) and trimmed,
   at the photo's own resolution: the separation itself runs on a small copy, for speed.

The image operations (Otsu's threshold, labelling, closing, hole filling, convex hulls) are
scikit-image's and SciPy's: maintained, vectorised, and exactly the standard operations named here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import binary_fill_holes
from scipy.spatial import ConvexHull
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops
from skimage.morphology import closing, dilation, disk, erosion

WORK_SIDE = 256  # pixels: the separation runs on the photo shrunk to this longest side (area averaging)
BORDER = 0.03  # of the shorter side: the picture's border, where the background is modelled
MIN_CONTRAST = 12.0  # grey levels: a picture whose every pixel is closer to its background is blank
EDGE_RUN = 0.2  # of the picture's edge: a piece that covers more of it is background (a table edge)
NEAR = 0.15  # of the object's size: pieces this close to the largest are part of the object
SECOND_SURFACE = 0.1  # of the border: so many pixels off the first surface are looked at as a second
PLATE_SOLIDITY = 0.95  # a card: nearly convex...
PLATE_RIM_SPREAD = 10.0  # ...of one colour along its rim (grey levels, 90th percentile from its model)
PLATE_INNER = 0.08  # ...holding an object of at least this share of it
TRIM_LEVEL = 0.1  # of the object's strongest: the faintest edge kept when the object is trimmed
MAX_TURN, TURN_STEP = 10.0, 0.5  # degrees: how far, and how finely, an askew object is turned upright
MIN_GAIN = 0.02  # ...if that makes its upright box this much smaller


@dataclass(frozen=True)
class Separation:
    """A photo at the working size, taken apart: ``background``, the background's colour at each pixel
    ``[H, W, C]``; ``distance``, each pixel's distance from it in grey levels ``[H, W]``; ``mask``, the
    object's pixels ``[H, W]``."""

    background: np.ndarray
    distance: np.ndarray
    mask: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) of the object, or None for a blank picture."""
        return _box(self.mask)

    def levels(self) -> tuple[float, float]:
        """The distances drawn black (the background's own, its median) and white (the object's
        strongest, its 99.5th percentile): Fashion-MNIST's images are stretched to the full range."""
        floor = np.median(self.distance[~self.mask]) if (~self.mask).any() else 0.0
        return float(floor), max(float(np.percentile(self.distance[self.mask], 99.5)), floor + 1e-6)


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return None
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def working_copy(image: Image.Image) -> Image.Image:
    """``image`` shrunk by area averaging to ``WORK_SIDE`` on its longest side (which also evens out
    noise and JPEG blocks); a smaller one as it is."""
    scale = WORK_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def separate(image: Image.Image) -> Separation:
    """The object in ``image`` (grayscale or RGB, at ``working_copy``'s size) and its background."""
    pixels = _pixels(image)
    height, width = pixels.shape[:2]
    border = np.zeros((height, width), dtype=bool)
    band = max(1, round(BORDER * min(height, width)))
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    background, fitted, _ = _fit_surface(pixels, border)
    beyond = _second_surface(pixels, border, fitted)
    if beyond is not None:
        region, surface = beyond
        background[region] = surface[region]
        edge = dilation(region, disk(2)) & ~region  # the edge itself, a blend of the two: background
        background[edge] = pixels[edge]
    mask = _object_mask(pixels, background, edge_pieces_are_background=True)
    plate = _inner_object_of_plate(pixels, mask)
    if plate is not None:
        background, mask = plate
    return Separation(background, _grey(pixels - background), mask)


def object_on_black(image: Image.Image, separation: Separation, channels: int) -> np.ndarray | None:
    """The object of ``image`` (as ``separation`` of its ``working_copy`` found it) as Fashion-MNIST
    draws one: its distance from the background, 0 (black) to 1, turned upright and trimmed, at the
    image's own resolution, ``[H, W, channels]``: one channel, the distance in grey levels; three,
    each colour's own. None for a blank picture."""
    if separation.box is None:
        return None
    pixels = _pixels(image)
    background = _resized(separation.background, image.size)
    # the mask, a working pixel wider: the trim is made at full resolution, on the distance itself
    wider = dilation(separation.mask, disk(1)).astype(np.float32)[..., None]
    mask = _resized(wider, image.size)[..., 0] > 0.5
    floor, top = separation.levels()
    distance = np.abs(pixels - background)
    distance = _grey(distance)[..., None] if channels == 1 else np.broadcast_to(distance, (*mask.shape, 3))
    strength = np.clip((distance - floor) / (top - floor), 0, 1) * mask[..., None]
    angle = upright_angle(separation.mask)
    if angle:
        strength = np.stack([_turned(plane, -angle) for plane in strength.transpose(2, 0, 1)], axis=-1)
    left, top_row, right, bottom = _box(strength.max(axis=-1) > TRIM_LEVEL) or (0, 0, *image.size)
    return strength[top_row:bottom, left:right]


def upright_angle(mask: np.ndarray) -> float:
    """The turn, in degrees within ``MAX_TURN``, that fits the object in the smallest upright box: a
    garment or a shoe photographed a little askew is turned back, as Fashion-MNIST's stand upright."""
    rows, cols = np.nonzero(mask)
    if len(rows) < 3 or np.ptp(rows) == 0 or np.ptp(cols) == 0:
        return 0.0
    points = np.stack([cols, rows], axis=1).astype(np.float64)
    hull = points[ConvexHull(points).vertices]
    angles = np.arange(-MAX_TURN, MAX_TURN + 1e-9, TURN_STEP)
    radians = np.radians(angles)[:, None]
    x = hull[:, 0] * np.cos(radians) - hull[:, 1] * np.sin(radians)
    y = hull[:, 0] * np.sin(radians) + hull[:, 1] * np.cos(radians)
    areas = np.ptp(x, axis=1) * np.ptp(y, axis=1)
    best = angles[np.argmin(areas)]
    return float(best) if areas.min() < (1 - MIN_GAIN) * areas[len(angles) // 2] else 0.0


def _pixels(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.float32)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _resized(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[H, W, C]`` float planes resized (bilinear) to ``size`` (width, height)."""
    if array.shape[1::-1] == tuple(size):
        return array
    planes = [
        Image.fromarray(np.ascontiguousarray(plane)).resize(size, Image.Resampling.BILINEAR)
        for plane in array.transpose(2, 0, 1)
    ]
    return np.stack([np.asarray(plane) for plane in planes], axis=-1)


def _turned(plane: np.ndarray, degrees: float) -> np.ndarray:
    """A float plane turned counter-clockwise, enlarged to hold all of it, black filling the corners."""
    turned = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)).rotate(
        degrees, Image.Resampling.BICUBIC, expand=True
    )
    return np.asarray(turned)


def _grey(colour_distance: np.ndarray) -> np.ndarray:
    """Colour distance in grey levels: a grey object on white is as far as its darkness."""
    return np.linalg.norm(colour_distance, axis=-1) / np.sqrt(colour_distance.shape[-1])


def _fit_surface(pixels: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A smooth colour surface ``[H, W, C]`` fitted to the pixels ``where``, robustly: from their median
    colour, each round refits to the pixels near the last fit, first as a plane (which cannot bend to
    take in a strip of another colour along one side), then to second order. Also which of the pixels
    it fits, and their spread around it (90th percentile, grey levels)."""
    height, width, _ = pixels.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / max(height - 1, 1) - 0.5, x / max(width - 1, 1) - 0.5
    terms = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)
    design, values = terms[where], pixels[where]
    fit = np.broadcast_to(np.median(values, axis=0), values.shape)
    for order in (3, 3, 3, 3, 6, 6, 6, 6):  # terms: constant, x, y (a plane); then x², xy, y²
        keep = _near_the_fit(values, fit)
        coefficients, *_ = np.linalg.lstsq(design[keep, :order], values[keep], rcond=None)
        fit = design[:, :order] @ coefficients
    keep = _near_the_fit(values, fit)
    fitted = np.zeros_like(where)
    fitted[where] = keep
    spread = float(np.percentile(_grey(values - fit)[keep], 90))
    return terms @ coefficients, fitted, spread


def _near_the_fit(values: np.ndarray, fit: np.ndarray) -> np.ndarray:
    residual = _grey(values - fit)
    return residual <= max(2.5 * np.median(residual), 4.0)


def _second_surface(
    pixels: np.ndarray, border: np.ndarray, fitted: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Where a second, smooth surface runs in from the picture's edge (the floor beyond a table's edge,
    a wall behind it), found from the border pixels the first surface does not fit: that region, and
    that surface's colours. None when those pixels are too few, not one smooth surface,
    or do not run along the edge (an object that touches it)."""
    misfits = border & ~fitted
    if misfits.sum() < SECOND_SURFACE * border.sum():
        return None
    surface, _, spread = _fit_surface(pixels, misfits)
    if spread > PLATE_RIM_SPREAD:
        return None
    near = label(_grey(pixels - surface) < max(3 * spread, MIN_CONTRAST))
    region = np.isin(near, np.unique(near[misfits & (near > 0)]))
    if _edge_run(region) <= EDGE_RUN:
        return None
    return region, surface


def _object_mask(pixels: np.ndarray, background: np.ndarray, edge_pieces_are_background: bool) -> np.ndarray:
    distance = _grey(pixels - background)
    if distance.max() < MIN_CONTRAST:
        return np.zeros(distance.shape, dtype=bool)
    threshold = max(threshold_otsu(distance), MIN_CONTRAST / 2)
    radius = max(1, round(0.015 * max(distance.shape)))
    pieces = label(closing(distance > threshold, disk(radius)))
    regions = regionprops(pieces)
    if edge_pieces_are_background:
        inner = [region for region in regions if _edge_run(pieces == region.label) <= EDGE_RUN]
        regions = inner or regions  # a close-up of an object that fills the picture keeps it
    main = max(regions, key=lambda region: region.area)
    top, left, bottom, right = main.bbox
    margin = NEAR * max(bottom - top, right - left)
    kept = np.zeros(distance.shape, dtype=bool)
    for region in regions:
        r_top, r_left, r_bottom, r_right = region.bbox
        near = (
            r_top < bottom + margin
            and r_bottom > top - margin
            and r_left < right + margin
            and r_right > left - margin
        )
        if near and region.area >= 0.01 * main.area:
            kept |= pieces == region.label
    return binary_fill_holes(kept)


def _edge_run(piece: np.ndarray) -> float:
    """The share of the picture's edge pixels that ``piece`` covers."""
    edge = np.concatenate([piece[0], piece[-1], piece[1:-1, 0], piece[1:-1, -1]])
    return float(edge.mean())


def _inner_object_of_plate(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """If the object is a plate (a card) with an object lying on it: the background, the plate's colours
    on it and the picture's own around it, and the object on the plate's mask; else None."""
    if not mask.any():
        return None
    plate = regionprops(mask.astype(np.uint8))[0]
    if plate.solidity < PLATE_SOLIDITY:
        return None
    band = max(1, round(BORDER * min(mask.shape)))
    inside = erosion(mask, disk(2))  # its own edge is a blend of it and what it lies on
    rim = inside & ~erosion(inside, disk(band))
    if rim.sum() < 20:
        return None
    surface, _, spread = _fit_surface(pixels, rim)
    if spread > PLATE_RIM_SPREAD:
        return None
    background = np.where(inside[..., None], surface, pixels)
    inner = _object_mask(pixels, background, edge_pieces_are_background=False)
    if inner.sum() < PLATE_INNER * mask.sum() or (inner & rim).any():
        return None
    return background, inner
