"""Fashion-MNIST without the internet: a copy of the four official ``.gz`` files in a folder you name
(``local_copy``, or ``$FASHION_MNIST_DIR``), or Debian's package ``dataset-fashion-mnist``.

A copy is checked by the MD5 of its *decompressed* content: Debian rewrote the gzip headers, so its
``.gz`` files differ from the ones torchvision's MD5s describe while the data is identical.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from torchvision.datasets.utils import check_integrity, extract_archive

from fashion_lightning.data.source import DataError

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CONTENT_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
HOW_TO_PROVIDE = (
    "Provide the four files (train/t10k images/labels .gz) in one of three ways:\n"
    f"  1. name a folder that holds them: --data.source.local_copy DIR, or export {ENV_VAR}=DIR;\n"
    f"  2. install Debian's package: apt-get install dataset-fashion-mnist (puts them in {DEBIAN_DIR});\n"
    "  3. go online and run again: torchvision downloads them."
)


def local_copies(local_copy: str | Path | None) -> Iterator[Path]:
    """Folders to copy from, in order; a folder the user named must hold the files."""
    named = [(Path(local_copy), "--data.source.local_copy")] if local_copy else []
    if os.environ.get(ENV_VAR):
        named.append((Path(os.environ[ENV_VAR]), f"${ENV_VAR}"))
    for folder, how in named:
        missing = [f"{name}.gz" for name in CONTENT_MD5 if not (folder / f"{name}.gz").is_file()]
        if missing:
            raise DataError(
                f"{how} names {folder}, but it lacks {', '.join(missing)}. "
                "Point it at a folder with the four official Fashion-MNIST .gz files."
            )
        yield folder
    if all((DEBIAN_DIR / f"{name}.gz").is_file() for name in CONTENT_MD5):
        yield DEBIAN_DIR


def unpack_verified(copy: Path, raw_folder: Path) -> None:
    """Decompress the four files of ``copy`` into ``raw_folder``, all or none, each checked by its MD5."""
    with tempfile.TemporaryDirectory(dir=raw_folder, prefix=".unpacking-") as scratch:
        for name, md5 in CONTENT_MD5.items():
            packed = copy / f"{name}.gz"
            try:
                extract_archive(packed, scratch)
            except (OSError, EOFError, zlib.error) as err:
                raise DataError(
                    f"{packed} is not a readable gzip file ({err}): it is truncated or corrupt. "
                    "Replace it with an intact copy."
                ) from None
            if not check_integrity(Path(scratch) / name, md5):
                raise DataError(
                    f"{packed} does not decompress to the official {name} (MD5 {md5}): it is not an "
                    "intact Fashion-MNIST file. Replace the copy, or unset it to use another source."
                )
        for name in CONTENT_MD5:
            os.replace(Path(scratch) / name, raw_folder / name)
