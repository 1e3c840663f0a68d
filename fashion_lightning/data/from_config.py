"""A data module from the config files that ``fashion-lightning fit`` takes, for the tools that need a data
set outside a training run (``fashion-lightning-viz``)."""

from __future__ import annotations

from argparse import ArgumentError
from collections.abc import Sequence
from pathlib import Path

import yaml
from jsonargparse import ArgumentParser

from fashion_lightning.config_files import load_yaml
from fashion_lightning.data.datamodule import ImageDataModule
from fashion_lightning.errors import ConfigError


def data_module_from_configs(paths: Sequence[str | Path]) -> ImageDataModule:
    """The ``ImageDataModule`` that the ``data:`` sections of ``paths`` describe, later files overriding
    earlier ones as ``fit --config A --config B`` does (the rest of each file is not read); with no
    paths, the default data module.

    jsonargparse merges the sections as the CLI does, so a later file may change one setting of a
    source that an earlier one named, or name another source."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(ImageDataModule, "data")
    config = parser.get_defaults()
    for path in paths:
        try:
            content = load_yaml(path)
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read the config {path}: {err}".splitlines()[0]) from None
        section = content.get("data") if isinstance(content, dict) else None
        if section is None:
            continue
        try:
            config = parser.parse_object({"data": section}, namespace=config)
        except ArgumentError as err:
            raise ConfigError(f"the data: section of {path}: {' '.join(str(err).split())}") from None
    return parser.instantiate_classes(config).data
