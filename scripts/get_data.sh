#!/usr/bin/env bash
# Make Fashion-MNIST available in $DATA_DIR (default: data) before training.
# Tries, in order: files already there, a local copy ($FASHION_MNIST_DIR: only that, when it is set),
# Debian's package folder, torchvision's download; and where that fails on a machine that can install
# Debian's dataset-fashion-mnist package (root with apt), installs it and uses it.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATA_DIR=${DATA_DIR:-data}

prepare() { "$PY" -m fashion_lightning.data --data_dir "$DATA_DIR" "$@"; }

if [ -n "${FASHION_MNIST_DIR:-}" ]; then
  prepare --no-download  # a copy was named: use it, or say what is wrong with it (set -e stops here)
  exit 0
fi
prepare --no-download 2>/dev/null && exit 0
prepare && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "No copy of Fashion-MNIST was found and the download failed:"
  echo "installing Debian's package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist)."
  if ! apt-get install -y -q dataset-fashion-mnist; then
    apt-get update -q && apt-get install -y -q dataset-fashion-mnist
  fi
  prepare --no-download
else
  echo "Provide the data as the message above says, then run 'make data' again." >&2
  exit 1
fi
