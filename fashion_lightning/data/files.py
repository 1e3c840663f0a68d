"""Finding, verifying and reading the four Fashion-MNIST IDX files.

The files live where torchvision's own download puts them, ``<data_dir>/FashionMNIST/raw/``, as
uncompressed IDX files. They get there from the first source that has them:

1. already in ``data_dir`` (uncompressed, or the four ``.gz`` files, which are then unpacked);
2. a local copy: the ``local_copy`` folder, else the folder named by ``$FASHION_MNIST_DIR``;
3. the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
4. torchvision's download, with its mirrors and MD5 checks.

Copies from elsewhere (2, 3) are checked by the MD5 of their *decompressed* content: Debian rewrote
the gzip headers, so the ``.gz`` MD5s differ while the data is identical.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dimensions / 1 dimension
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10

# MD5 of each file's decompressed content (the same for the official and the Debian copies).
CONTENT_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


class DataError(RuntimeError):
    """The data is missing, corrupt or unusable; the message says which file and how to fix it."""


def raw_dir(data_dir: str | Path) -> Path:
    """torchvision's folder for the files, so a download by torchvision lands where we read."""
    return Path(data_dir) / "FashionMNIST" / "raw"


def ensure_files(data_dir: str | Path, local_copy: str | Path | None = None, download: bool = True) -> Path:
    """Make the four uncompressed IDX files available under ``raw_dir(data_dir)`` and return that folder."""
    target = raw_dir(data_dir)
    if _has_files(target, ""):
        return target
    _make_writable_dir(target)
    if _has_files(target, ".gz"):
        for name in CONTENT_MD5:
            _unpack(target / f"{name}.gz", target / name, expected_md5=None)
        return target
    for source in _local_copies(local_copy):
        for name, md5 in CONTENT_MD5.items():
            _unpack(source / f"{name}.gz", target / name, expected_md5=md5)
        print(f"Fashion-MNIST: verified and unpacked the local copy in {source} into {target}")
        return target
    if download:
        _download(data_dir)
        return target
    raise DataError(_no_data_message(data_dir, "download=False"))


def load_split(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 ``[N, 28, 28]`` and labels as int64 ``[N]``, checked for consistency."""
    prefix = "train" if train else "t10k"
    images = _read_idx(folder / f"{prefix}-images-idx3-ubyte", IMAGE_MAGIC)
    labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte", LABEL_MAGIC).long()
    fix = f"delete {folder} and run again to fetch the files afresh"
    if tuple(images.shape[1:]) != IMAGE_SIZE:
        raise DataError(
            f"{folder}/{prefix}-images-idx3-ubyte holds images of {tuple(images.shape[1:])}, "
            f"not 28x28: it is not a Fashion-MNIST file; {fix}"
        )
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels; {fix}")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < NUM_CLASSES:
        raise DataError(
            f"{folder}/{prefix}-labels-idx1-ubyte has labels outside 0..{NUM_CLASSES - 1} "
            f"(min {int(labels.min())}, max {int(labels.max())}); {fix}"
        )
    return images, labels


def _read_idx(path: Path, magic: int) -> torch.Tensor:
    """Parse an IDX file of unsigned bytes, refusing anything whose header and length disagree."""
    fix = f"delete {path.parent} and run again to fetch the files afresh"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; {fix}") from None
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise DataError(
            f"{path} is not an IDX file of this kind (magic number {found}, expected {magic}); {fix}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(torch.tensor(dims).prod())
    if len(data) != expected:
        raise DataError(
            f"{path} has {len(data)} bytes but its header {dims} needs {expected}: "
            f"the file is truncated or corrupt; {fix}"
        )
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).view(*dims)


def _has_files(folder: Path, suffix: str) -> bool:
    return all((folder / f"{name}{suffix}").is_file() for name in CONTENT_MD5)


def _local_copies(local_copy: str | Path | None) -> Iterator[Path]:
    """Folders to copy from, in order; a folder the user named must hold the files."""
    named = [(Path(local_copy), "--data.local_copy")] if local_copy else []
    if os.environ.get(ENV_VAR):
        named.append((Path(os.environ[ENV_VAR]), f"${ENV_VAR}"))
    for folder, how in named:
        if not _has_files(folder, ".gz"):
            missing = [f"{n}.gz" for n in CONTENT_MD5 if not (folder / f"{n}.gz").is_file()]
            raise DataError(
                f"{how} names {folder}, but it lacks {', '.join(missing)}. "
                "Point it at a folder with the four official Fashion-MNIST .gz files."
            )
        yield folder
    if _has_files(DEBIAN_DIR, ".gz"):
        yield DEBIAN_DIR


def _make_writable_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the data folder {folder} ({err.strerror}); "
            "choose a writable one with --data.data_dir"
        ) from None
    if not os.access(folder, os.W_OK):
        raise DataError(f"the data folder {folder} is not writable; choose another with --data.data_dir")


def _unpack(source: Path, target: Path, expected_md5: str | None) -> None:
    """Decompress ``source`` into ``target`` atomically, checking the content's MD5 when given."""
    digest = hashlib.md5()
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
        try:
            with gzip.open(source, "rb") as packed:
                for chunk in iter(lambda: packed.read(1 << 20), b""):
                    digest.update(chunk)
                    tmp.write(chunk)
        except (OSError, EOFError, zlib.error) as err:
            os.unlink(tmp.name)
            raise DataError(
                f"{source} is not a readable gzip file ({err}): it is truncated or corrupt. "
                "Replace it with an intact copy, or delete it to fetch it again."
            ) from None
    if expected_md5 and digest.hexdigest() != expected_md5:
        os.unlink(tmp.name)
        raise DataError(
            f"{source} decompresses to content with MD5 {digest.hexdigest()}, but the official "
            f"{target.name} has {expected_md5}: it is not an intact Fashion-MNIST file. "
            "Replace the local copy, or unset it to use another source."
        )
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp.name, 0o666 & ~umask)  # NamedTemporaryFile makes it private (0600); the data is not
    os.replace(tmp.name, target)


def _download(data_dir: str | Path) -> None:
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(data_dir), train=True, download=True)
    except (RuntimeError, OSError) as err:
        # files that did arrive passed their MD5 check and stay; torchvision skips them next time
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(_no_data_message(data_dir, f"the download failed: {reason}")) from None


def _no_data_message(data_dir: str | Path, why: str) -> str:
    return (
        f"Fashion-MNIST was not found in {raw_dir(data_dir)} and {why}.\n"
        "Provide the four files (train/t10k images/labels .gz) in one of three ways:\n"
        f"  1. name a folder that holds them: --data.local_copy DIR, or export {ENV_VAR}=DIR;\n"
        f"  2. install Debian's package: apt-get install dataset-fashion-mnist (puts them in {DEBIAN_DIR});\n"
        f"  3. go online and run again: torchvision downloads them into {raw_dir(data_dir)}."
    )
