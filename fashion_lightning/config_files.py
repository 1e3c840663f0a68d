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


def config_files(args: Sequence[str]) -> list[Path]:
    """The files given as ``--config FILE``, ``--config=FILE`` or ``-c FILE``."""
    found = []
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            found.append(Path(args[i + 1]))
        elif arg.startswith("--config="):
            found.append(Path(arg.split("=", 1)[1]))
    return [path for path in found if path.is_file()]


def check_syntax(paths: Sequence[Path]) -> None:
    """Exit with status 2 and one line naming the file, line and column of a YAML syntax error."""
    for path in paths:
        try:
            yaml.safe_load(path.read_text())
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
        keys = set(_keys(yaml.safe_load(path.read_text()) or {}))
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
