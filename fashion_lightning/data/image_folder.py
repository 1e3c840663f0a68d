"""A folder of one's own images as a source: one subfolder per class, any format Pillow reads, any size,
grayscale or colour.

The images are decoded once, by worker processes, with the functions ``predict`` applies to a photo
(``photos.read_image`` and ``photos.fit_image``, ``crop``), and kept in a cache file; a later run reads
that file instead. The cache is keyed by each file's path, size and modification time and by the
settings, so a changed folder or setting is decoded afresh. A split too large for ``max_memory_mb``
is not cached: ``load`` gives ``ImageFiles``, which the data module streams from disk with workers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import PIL
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import find_classes
from torchvision.transforms.v2.functional import pil_to_tensor

from fashion_lightning.checkpoint_io import DiskFullError, torch_save_whole
from fashion_lightning.data.batches import usable_cpus
from fashion_lightning.data.photos import find_images, fit_image, read_image
from fashion_lightning.data.source import DataError, ImageSource, LabelledImages
from fashion_lightning.errors import ConfigError
from fashion_lightning.stop_signals import own_process_group, raise_if_stopped, stops_between_batches

CACHE_VERSION = 3  # raise it when the cache's content or the decoding changes
DECODE_BATCH = 32  # images a decoding worker hands back at a time
# folders of a split, not of a class; without test/, the first of the others present is the test split
SPLIT_NAMES = ("train", "test", "val", "valid", "validation")
NAMED_SKIPS = 10  # skipped files a warning names; the rest are counted
LAYOUT = (
    "one subfolder of images per class (<root>/<class>/<image>), or train/ and test/ (or val/) folders of "
    "those (<root>/train/<class>/<image>, <root>/test/<class>/<image>)"
)


def decode(path: str | Path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """One image file as uint8 ``[channels, *size]``, as ``predict`` reads a photo. Raises ``ValueError``."""
    return pil_to_tensor(fit_image(read_image(Path(path), channels), size, "crop"))


@dataclass
class _Split:
    """One split's files as listed: paths relative to the root, and their labels."""

    name: str  # "train" or "test"
    paths: list[str]
    labels: list[int]
    classes: list[str]


class ImageFiles(Dataset):
    """A split read from its files on every access, for one too large for memory: ``dataset[i]`` is
    ``(uint8 image [C, H, W], label)``, decoded as the cached images are (``decode``), so both give the
    same pixels. It answers what the data module and the pictures ask of a ``LabelledImages``."""

    def __init__(
        self,
        root: str,
        paths: Sequence[str],
        labels: torch.Tensor,
        classes: Sequence[str],
        channels: int,
        size: tuple[int, int],
    ) -> None:
        if len(paths) != len(labels):
            raise DataError(f"{len(paths)} image files but {len(labels)} labels")
        self.root, self.paths, self.labels, self.classes = root, list(paths), labels, list(classes)
        self.channels, self.size = channels, tuple(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = Path(self.root, self.paths[index])
        try:
            image = decode(path, self.channels, self.size)
        except ValueError as err:
            raise DataError(
                f"{path} is {err}, though it was readable when the folder was checked: "
                "run again, and the changed folder is checked afresh"
            ) from None
        return image, int(self.labels[index])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    @property
    def files(self) -> list[Path]:
        return [Path(self.root, path) for path in self.paths]

    def subset(self, index: torch.Tensor) -> ImageFiles:
        paths = [self.paths[i] for i in index.tolist()]
        return ImageFiles(self.root, paths, self.labels[index], self.classes, self.channels, self.size)

    def first(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` images and labels (for pictures)."""
        count = min(count, len(self))
        images = [self[i][0] for i in range(count)]
        stacked = torch.stack(images) if images else torch.empty(0, *self.image_shape, dtype=torch.uint8)
        return stacked, self.labels[:count]


class ImageFolder(ImageSource):
    """A folder of one's own images: ``<root>/<class>/<image>``, or ``<root>/train/<class>/<image>``
    and ``<root>/test/<class>/<image>``; a set shipped as train/ and val/ has its val/ (or valid/,
    validation/) taken for test/, as validation is held out of train/ (``data.val_size``). Class names
    are the subfolders' names, sorted; files and folders whose names start with '.' are left out, and
    files that are not readable images are skipped with a warning that names them.

    Args:
        root: the folder.
        size: (height, width) the images are fitted to, as ``predict`` fits photos (scaled to cover it,
            the centre cut out); one number for a square.
        channels: 1 (grayscale) or 3 (RGB); images of the other kind are converted.
        test_size: without split folders (train/ and test/), about this share of the images is held
            out for test. A file's split is drawn from a seeded hash of its path alone, so adding or
            removing images moves no other image between the splits.
        split_seed: the seed of that hold-out.
        cache_dir: where the decoded images are kept; delete it to reclaim the space.
        max_memory_mb: a split whose decoded images would take more is not cached but read from its
            files while training, by the data module's workers (``data.num_workers``).
        workers: processes decoding the images the first time (at most the CPU cores; 0: this process).
    """

    photos = "crop"

    def __init__(
        self,
        root: str,
        size: int | tuple[int, int] = 64,
        channels: int = 3,
        test_size: float = 0.2,
        split_seed: int = 0,
        cache_dir: str = "data/cache",
        max_memory_mb: float = 4096,
        workers: int = 4,
    ) -> None:
        pair = (size, size) if isinstance(size, int) else tuple(size)
        if len(pair) != 2 or not all(isinstance(side, int) and side > 0 for side in pair):
            raise ConfigError(
                f"data.source.size must be a positive number of pixels or [height, width], got {size}"
            )
        if channels not in (1, 3):
            raise ConfigError(f"data.source.channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if not 0 < test_size < 1:
            raise ConfigError(f"data.source.test_size must be a fraction between 0 and 1, got {test_size}")
        if max_memory_mb < 0:
            raise ConfigError(f"data.source.max_memory_mb must be 0 or more, got {max_memory_mb}")
        if workers < 0:
            raise ConfigError(f"data.source.workers must be 0 or more, got {workers}")
        self.root = root
        self.size: tuple[int, int] = pair
        self.channels = channels
        self.test_size = test_size
        self.split_seed = split_seed
        self.cache_dir = cache_dir
        self.max_memory_mb = max_memory_mb
        self.workers = workers

    @property
    def _root(self) -> Path:
        return Path(self.root).expanduser()

    def prepare(self) -> None:
        """Check the folder and decode what the cache lacks, for both splits."""
        for split in self._list().values():
            self._cached(split)

    def load(self, train: bool) -> LabelledImages | ImageFiles:
        split = self._list()["train" if train else "test"]
        cache = self._cached(split)
        if cache["skipped"]:
            rank_zero_warn(_skipped_message(self.root, split.name, cache["skipped"]))
        if not cache["paths"]:
            raise DataError(
                f"{self.root} gives no readable {split.name} image: add some (without train/ and test/ "
                f"folders, about test_size={self.test_size} of the images are held out for test)"
            )
        if cache["images"] is None:
            return ImageFiles(
                str(self._root.resolve()),
                cache["paths"],
                cache["labels"],
                split.classes,
                self.channels,
                self.size,
            )
        files = [self._root / path for path in cache["paths"]]
        return LabelledImages(cache["images"], cache["labels"], split.classes, files)

    def image_paths(self, train: bool) -> list[Path]:
        """The files of a split's images, in ``load``'s order (the unreadable ones left out)."""
        split = self._list()["train" if train else "test"]
        return [self._root / path for path in self._cached(split)["paths"]]

    # the folder

    def _list(self) -> dict[str, _Split]:
        root = self._root
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise DataError(f"data.source.root: {root} {what}; give a folder with {LAYOUT}")
        cache = Path(self.cache_dir).expanduser().resolve()
        # the cache may lie in the folder (root data/, cache data/cache): it is no class
        top = [name for name in _class_folders(root) if (root / name).resolve() != cache]
        if not top:
            raise DataError(f"{root} has no class folders but the cache; give a folder with {LAYOUT}")
        _warn_of_loose_files(root)
        splits = {name.lower(): name for name in top if name.lower() in SPLIT_NAMES}
        held_out = [splits[name] for name in SPLIT_NAMES[1:] if name in splits]
        if "train" in splits and held_out:
            train_dir, test_dir = splits["train"], held_out[0]
            ignored = sorted(set(top) - {train_dir, test_dir})
            if ignored:
                rank_zero_warn(
                    f"{root}: only {train_dir}/ and {test_dir}/ are read, not {', '.join(ignored)}/ "
                    "(validation images are held out of the training ones, data.val_size): move their "
                    f"images into {train_dir}/ to train on them"
                )
            classes = _class_folders(root / train_dir)
            extra = sorted(set(_class_folders(root / test_dir)) - set(classes))
            if extra:
                raise DataError(
                    f"{root / test_dir} has class folders that {root / train_dir} lacks "
                    f"({', '.join(extra)}): the model learns only the training classes; add their training "
                    "images or remove them"
                )
            train, test = self._files(root, train_dir, classes), self._files(root, test_dir, classes)
        elif splits:
            missing = "test/ (or val/)" if "train" in splits else "train/"
            raise DataError(
                f"{root} has {', '.join(f'{name}/' for name in splits.values())} but no {missing} beside it, "
                f"so its folders would be taken for classes: name them train/ and test/ (validation images "
                f"are held out of train/ by data.val_size), or give a folder with {LAYOUT}"
            )
        else:
            classes = top
            train, test = self._hold_out(self._files(root, "", classes))
        if len(classes) < 2:
            raise DataError(
                f"{root} has one class folder ({classes[0]}): a classifier needs two or more; give a folder "
                f"with {LAYOUT}"
            )
        return {
            "train": _Split("train", [p for p, _ in train], [label for _, label in train], classes),
            "test": _Split("test", [p for p, _ in test], [label for _, label in test], classes),
        }

    def _files(self, root: Path, under: str, classes: list[str]) -> list[tuple[str, int]]:
        """``(path relative to root, label)`` of each file in the class folders under ``root/under``."""
        folder = root / under
        present = set(_class_folders(folder)) if under else set(classes)
        index = {name: label for label, name in enumerate(classes) if name in present}

        # predict's own listing: hidden files left out, and links to folders not followed (torchvision's
        # make_dataset follows them, so a class folder linking to itself lists its files again and again)
        found, left_out = [], []
        for name, label in index.items():
            paths, skipped = find_images([folder / name])
            left_out += [(path.relative_to(root).as_posix(), why) for path, why in skipped]
            if not paths:
                unread = f" (not read: {_named(skipped)})" if skipped else ""
                raise DataError(
                    f"{folder / name} holds no image files{unread}: put that class's images in it, or "
                    "remove it"
                )
            found += [(path.relative_to(root).as_posix(), label) for path in paths]
        if left_out:
            rank_zero_warn(
                f"{root}: not read: {_named(left_out)}; move or copy their images in to train on them"
            )
        return found

    def _hold_out(self, files: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """About ``test_size`` of the files for test, each by a seeded hash of its path; the rest train."""
        draws = {path: self._draw(path) for path, _ in files}
        held = {path for path, draw in draws.items() if draw < self.test_size}
        for label in {label for _, label in files}:
            paths = [path for path, of in files if of == label]
            if set(paths) <= held:  # a class with no training image: its last draw trains
                held.discard(max(paths, key=draws.__getitem__))
        return [f for f in files if f[0] not in held], [f for f in files if f[0] in held]

    def _draw(self, path: str) -> float:
        """A number in [0, 1) that depends on nothing but the path and the seed."""
        # surrogateescape: a file name that is no UTF-8 is hashed as its own bytes
        digest = hashlib.sha256(f"{self.split_seed}:{path}".encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    # the cache

    def _cached(self, split: _Split) -> dict:
        """The split's cache, decoded and written first if it is missing or out of date."""
        streamed = len(split.paths) * self.channels * math.prod(self.size) > self.max_memory_mb * 2**20
        fingerprint = self._fingerprint(split, streamed)
        path = self._cache_path(split.name, streamed)
        cache = _read_cache(path)
        if cache is not None and cache.get("fingerprint") == fingerprint:
            return cache
        cache = self._decode(split, streamed)
        cache["fingerprint"] = fingerprint
        needed = sum(value.nbytes for value in cache.values() if isinstance(value, torch.Tensor))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch_save_whole(
                cache,
                path,
                needed,
                remedy="free some space there, or give data.source.cache_dir a folder with room",
            )
        except DiskFullError as err:
            raise DataError(str(err)) from None
        except OSError as err:
            raise DataError(
                f"cannot write the decoded images to {path} ({err.strerror or err}); "
                "choose a writable folder with data.source.cache_dir"
            ) from None
        return cache

    def _cache_path(self, split: str, streamed: bool) -> Path:
        # one file per folder, split and settings: another setting keeps a file of its own, a changed
        # folder replaces its file
        root = self._root.resolve()
        key = hashlib.sha256(json.dumps([str(root), self.size, self.channels]).encode()).hexdigest()[:12]
        name = re.sub(r"[^\w.-]", "_", root.name) or "root"
        return Path(self.cache_dir, f"{name}-{key}-{split}{'-files' if streamed else ''}.pt")

    def _fingerprint(self, split: _Split, streamed: bool) -> str:
        """What the cache's content depends on: every file (path, size, time), the classes and settings."""
        files = []
        for path, label in zip(split.paths, split.labels, strict=True):
            try:
                stat = os.stat(self._root / path)
                files.append([path, stat.st_size, stat.st_mtime_ns, label])
            except OSError:  # a dangling link, say: decoding skips it, saying why
                files.append([path, None, None, label])
        settings = [CACHE_VERSION, PIL.__version__, self.size, self.channels, streamed, split.classes]
        return hashlib.sha256(json.dumps([settings, files]).encode()).hexdigest()

    def _decode(self, split: _Split, streamed: bool) -> dict:
        """Every file of the split decoded (kept only if not ``streamed``), by worker processes."""
        count = len(split.paths)
        print(f"ImageFolder: decoding the {count} {split.name} images of {self.root}", flush=True)
        images = None if streamed else torch.empty(count, self.channels, *self.size, dtype=torch.uint8)
        readable = torch.zeros(count, dtype=torch.bool)
        skipped: list[list[str]] = []
        files = _Decoding(str(self._root.resolve()), split.paths, self.channels, self.size, keep=not streamed)
        workers = min(self.workers, usable_cpus(), math.ceil(count / DECODE_BATCH))
        # a generator of its own: drawing worker seeds from torch's global one would change the run's
        # random numbers (the net's initial weights) on a run that decodes, and not on one that does not
        loader = DataLoader(
            files,
            batch_size=DECODE_BATCH,
            num_workers=workers,
            collate_fn=_gather,
            worker_init_fn=own_process_group,
            generator=torch.Generator(),
        )
        with stops_between_batches():  # a SIGTERM stops the decoding between two batches
            for indices, decoded, errors in loader:
                raise_if_stopped()
                readable[indices] = True
                if images is not None and len(indices):
                    images[indices] = decoded
                skipped += [[split.paths[index], error] for index, error in errors]
        labels = torch.tensor(split.labels, dtype=torch.long)
        missing = sorted(set(split.labels) - set(labels[readable].tolist()))
        if split.name == "train" and missing:
            raise DataError(
                f"{self.root}: no training image of class {split.classes[missing[0]]} is readable "
                f"({_skipped_message(self.root, split.name, skipped)}); add images Pillow can read"
            )
        keep = readable.nonzero().squeeze(1)
        return {
            "paths": [split.paths[i] for i in keep.tolist()],
            "labels": labels[keep],
            "images": None if images is None else images[keep] if len(keep) < count else images,
            "skipped": skipped,
        }


class _Decoding(Dataset):
    """``(index, image or None, why it is unreadable or None)`` for each file, for decoding workers."""

    def __init__(self, root: str, paths: list[str], channels: int, size: tuple[int, int], keep: bool) -> None:
        self.root, self.paths, self.channels, self.size, self.keep = root, paths, channels, size, keep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = decode(Path(self.root, self.paths[index]), self.channels, self.size)
        except ValueError as err:
            return index, None, str(err)
        return index, image if self.keep else None, None


def _gather(batch: list[tuple[int, torch.Tensor | None, str | None]]) -> tuple:
    """In a worker: the indices of a batch's readable files, their images in one tensor (one transfer
    to the main process, not one per image), and ``(index, why)`` of the others."""
    good = [(index, image) for index, image, error in batch if error is None]
    indices = torch.tensor([index for index, _ in good], dtype=torch.long)
    images = torch.stack([image for _, image in good]) if good and good[0][1] is not None else None
    return indices, images, [(index, error) for index, _, error in batch if error is not None]


def _read_cache(path: Path) -> dict | None:
    """The cache file's content, its images mapped from disk; None if it is missing or unreadable."""
    try:
        return torch.load(path, mmap=True, weights_only=True)
    except Exception:  # missing, truncated, or not a cache of this version: decoded afresh
        return None


def _class_folders(folder: Path) -> list[str]:
    """The sorted names of ``folder``'s visible subfolders (torchvision's ``find_classes``)."""
    try:
        classes, _ = find_classes(folder)
    except FileNotFoundError:
        classes = []
    visible = [name for name in classes if not name.startswith(".")]
    if not visible:
        raise DataError(f"{folder} has no class folders; give a folder with {LAYOUT}")
    return visible


def _warn_of_loose_files(root: Path) -> None:
    """Images are read from the class folders only; a file beside them is named, not silently left out."""
    loose = sorted(path.name for path in root.iterdir() if path.is_file() and not path.name.startswith("."))
    if loose:
        more = f" and {len(loose) - NAMED_SKIPS} more" if len(loose) > NAMED_SKIPS else ""
        rank_zero_warn(
            f"{root}: files beside the class folders are not read ({', '.join(loose[:NAMED_SKIPS])}{more}): "
            "move images into their class's folder"
        )


def _skipped_message(root: str, split: str, skipped: list[list[str]]) -> str:
    files = "file" if len(skipped) == 1 else "files"
    return (
        f"skipped {len(skipped)} {split} {files} of {root} that are not readable images ({_named(skipped)})"
    )


def _named(entries: Sequence[Sequence]) -> str:
    """``path: why`` of the first ``NAMED_SKIPS`` entries; the rest counted."""
    named = "; ".join(f"{path}: {why}" for path, why in entries[:NAMED_SKIPS])
    return named + (f"; and {len(entries) - NAMED_SKIPS} more" if len(entries) > NAMED_SKIPS else "")
