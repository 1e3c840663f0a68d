"""``python -m fashion_lightning.data``: make the Fashion-MNIST files available without training."""

import argparse
import sys

from fashion_lightning.data.files import DataError, ensure_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--local_copy", default=None, help="a folder with the four official .gz files")
    parser.add_argument("--no-download", dest="download", action="store_false", help="only look for copies")
    args = parser.parse_args()
    try:
        folder = ensure_files(args.data_dir, args.local_copy, args.download)
    except DataError as err:
        sys.exit(f"error: {err}")
    print(f"Fashion-MNIST is ready in {folder}")


main()
