"""Config mistakes named where they are: the file, and the line of a YAML syntax error or the key.

jsonargparse reports a broken config as a string it parsed (``<unicode string>, line 3``) and a bad
key without its file; with several layered ``--config`` files, the user needs both.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from fashion_lightning.errors import ConfigError


def config_files(args: Sequence[str]) -> list[Path]:
    """The files given as ``--config FILE``, ``--config=FILE`` or ``-c FILE``."""
    found = []
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            found.append(Path(args[i + 1]))
        elif arg.startswith("--config="):
            found.append(Path(arg.split("=", 1)[1]))
    return [path for path in found if path.is_file()]


def load_yaml(path: str | Path):
    """A YAML file's content. A file that is no UTF-8 text (a config saved as Latin-1, or an image
    given by mistake) is a ``ConfigError`` in one line, not the decoder's traceback."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at position {err.start}): "
            "save the config as UTF-8"
        ) from None


def check_syntax(paths: Sequence[Path]) -> None:
    """Exit with status 2 and one line naming the file, line and column of a YAML syntax error."""
    for path in paths:
        try:
            load_yaml(path)
        except ConfigError as err:
            sys.stderr.write(f"error: {err}\n")
            raise SystemExit(2) from None
        except yaml.YAMLError as err:
            # where the broken construct began (an unclosed bracket), else where parsing stopped
            mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = ", ".join(filter(None, [getattr(err, "context", None), getattr(err, "problem", None)]))
            sys.stderr.write(f"error: {path}{where}: {what or err} (YAML syntax)\n")
            raise SystemExit(2) from None


def name_the_file(message: str, args: Sequence[str]) -> str:
    """The parser's error message, with ``FILE: KEY`` added where a config file holds the key it names,
    unless a setting given after that file on the command line replaced the file's."""
    named = set(re.findall(r"['\"]([\w.]+)['\"]", message))
    files = config_files(args)
    for path in reversed(files):  # the last file that sets a key is the one that counts
        keys = set(_keys(load_yaml(path) or {}))
        for key in sorted(keys):
            if key in named or key.rsplit(".", 1)[-1] in named:
                if _given_after(key, path, args):
                    return message
                return message.rstrip("\n") + f"\n(in {path}: {key})\n"
    return message


def _given_after(key: str, path: Path, args: Sequence[str]) -> bool:
    """Whether an argument after ``--config path`` sets ``key`` (``--key``, ``--key=...``, ``--key.sub``)."""
    positions = [i for i, arg in enumerate(args) if Path(arg.removeprefix("--config=")) == path]
    later = args[positions[-1] + 1 :] if positions else []
    return any(arg == f"--{key}" or arg.startswith((f"--{key}=", f"--{key}.")) for arg in later)


def _keys(config, prefix: str = "") -> Iterator[str]:
    if isinstance(config, dict):
        for key, value in config.items():
            dotted = f"{prefix}{key}"
            yield dotted
            yield from _keys(value, dotted + ".")
