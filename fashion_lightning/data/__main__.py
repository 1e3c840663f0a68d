"""``python -m fashion_lightning.data``: make the Fashion-MNIST files available without training."""

import argparse
import sys

from fashion_lightning.data import DataError, FashionMNIST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--local_copy", default=None, help="a folder with the four official .gz files")
    parser.add_argument("--no-download", dest="download", action="store_false", help="only look for copies")
    args = parser.parse_args()
    source = FashionMNIST(args.data_dir, args.download, args.local_copy)
    try:
        source.prepare()
    except DataError as err:
        sys.exit(f"error: {err}")
    print(f"Fashion-MNIST is ready in {source.raw_folder}")


main()
