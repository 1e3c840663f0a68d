"""The error for a setting a user got wrong, and how the commands end on a user's mistake."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import NoReturn


class ConfigError(ValueError):
    """A config value that cannot work; the message names the setting and what it must be."""


def exit_with(err: Exception, verbose: bool = False) -> NoReturn:
    """End a command on a user's mistake: its message and status 1, not a traceback, unless one is
    asked for (``--verbose``, or ``FASHION_LIGHTNING_TRACEBACK=1``); then ``err`` is raised again."""
    if verbose or os.environ.get("FASHION_LIGHTNING_TRACEBACK"):
        raise err
    sys.exit(f"error: {err}\n(--verbose shows the traceback)")


def from_worker(err: Exception) -> Exception:
    """A mistake found in a DataLoader worker process (a file that broke while a streamed run read it):
    torch raises it again here with the worker's whole traceback as its message, whose last line is
    the mistake's own."""
    text = str(err)
    if "Original Traceback" not in text:
        return err
    last = text.strip().splitlines()[-1]  # "package.module.DataError: what is wrong"
    try:
        return type(err)(last.split(": ", 1)[1] if ": " in last else last)
    except TypeError:  # an error made of more than its message: as it came
        return err


def raised_inside(err: Exception, package: ModuleType) -> bool:
    """Whether ``err`` was raised in ``package``'s own code (its check of a setting, say)."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and Path(frames[-1].filename).is_relative_to(Path(package.__file__).parent)
