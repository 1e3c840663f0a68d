"""Run folders: ``<default_root_dir>/version_N/`` holds one training run's TensorBoard events, its
``config.yaml`` and ``checkpoints/`` (``last.ckpt`` and the best by ``val/acc``).

Lightning resolves ``ckpt_path="last"``/``"best"`` only inside the folder of the *current* logger
version, or the process that trained; these helpers find them across runs so that a fresh process
can resume or test, and so that a resumed run keeps writing into its own folder.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path

import torch

from fashion_lightning.models import ImageClassifier
from fashion_lightning.run_lock import LOCK

CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"


class CheckpointError(RuntimeError):
    """A checkpoint that was asked for cannot be found or read; the message says what to do."""


def latest_checkpoint(root: str | Path) -> Path | None:
    """``last.ckpt`` of the run under ``root``, at any depth (another logger nests its runs deeper), whose
    checkpoints were written last. Within that run ``last.ckpt`` wins whatever the files' times (a copy
    of the run folder gives them new ones); without it (a full disk kept it from being written) the
    run's newest checkpoint still resumes it."""
    runs: dict[Path, list[Path]] = {}
    for path in Path(root).rglob("*.ckpt"):
        if path.parent.name == CHECKPOINTS:
            runs.setdefault(path.parent, []).append(path)
    if not runs:
        return None
    folder = max(runs, key=lambda found: max(path.stat().st_mtime for path in runs[found]))
    if (folder / LAST).is_file():
        return folder / LAST
    return max(runs[folder], key=lambda path: path.stat().st_mtime)


class LatestRunSavedNothing(CheckpointError):
    """``last``/``best`` asked for, and the latest run under the root saved no checkpoint."""


def later_runs_without_checkpoints(checkpoint: Path) -> list[Path]:
    """The fits' run folders (their lock file tells them from a test's) beside ``checkpoint``'s, with a
    higher version, that hold no checkpoint: fits started after it that saved nothing yet (stopped
    before their first validation, or still training)."""
    run = run_folder(checkpoint)
    if run is None:
        return []
    later = [folder for folder in run.parent.glob("version_*") if _version(folder) > _version(run)]
    fits = [folder for folder in later if (folder / LOCK).is_file()]
    return sorted((folder for folder in fits if not any(folder.rglob("*.ckpt"))), key=_version)


def _version(folder: Path) -> int:
    number = folder.name.removeprefix("version_")
    return int(number) if number.isdigit() else -1


def best_checkpoint(last: Path) -> Path:
    """The best checkpoint that the ModelCheckpoint state stored in ``last`` recorded."""
    state = read_checkpoint(last)
    recorded = [
        Path(cb["best_model_path"])
        for cb in state.get("callbacks", {}).values()
        if isinstance(cb, dict) and cb.get("monitor") and cb.get("best_model_path")
    ]
    if not recorded:
        raise CheckpointError(
            f"{last} records no best checkpoint (was validation ever run?); "
            f"use --ckpt_path last or a path instead"
        )
    # the run folder may have been moved or copied since: look beside `last` first
    for candidate in (last.parent / recorded[0].name, recorded[0]):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"the best checkpoint recorded in {last}, {recorded[0].name}, no longer exists; "
        f"use --ckpt_path last or a path instead"
    )


def resolve_checkpoint(ckpt_path: str, root: str | Path) -> Path | None:
    """``last``/``best`` -> that file of the latest run under ``root`` (None: no run); a path: itself."""
    if ckpt_path not in ("last", "best"):
        path = Path(ckpt_path)
        if path.is_dir():
            # a run's checkpoints first, the newest of them; one walk of the folder
            inside = max(
                path.rglob("*.ckpt"),
                key=lambda found: (found.parent.name == CHECKPOINTS, found.stat().st_mtime),
                default=None,
            )
            such = f"a .ckpt file in it, such as {inside}," if inside else "a .ckpt file (it holds none)"
            raise CheckpointError(
                f"checkpoint {path} is a folder: give {such} or 'last'/'best' for the latest run under {root}"
            )
        if not path.is_file():
            raise CheckpointError(
                f"checkpoint {path} does not exist; give an existing .ckpt file, "
                f"or 'last'/'best' for the latest run under {root}"
            )
        return path
    last = latest_checkpoint(root)
    if last is None:
        return None
    later = later_runs_without_checkpoints(last)
    if later:
        earlier = f"--ckpt_path {last}" if ckpt_path == "last" else f"a checkpoint of {last.parent}"
        raise LatestRunSavedNothing(
            f"--ckpt_path {ckpt_path}: the latest run under {root}, {later[-1].name}, saved no checkpoint "
            f"(stopped before its first, or still training); for the run before it, give {earlier}"
        )
    if last.name != LAST:
        print(f"--ckpt_path {ckpt_path}: {last.parent} has no {LAST} (was the disk full?); using {last.name}")
    return last if ckpt_path == "last" else best_checkpoint(last)


def run_folder(checkpoint: Path) -> Path | None:
    """The run folder (``<root>/version_N``) whose ``checkpoints/`` holds ``checkpoint``, if any (a run
    without a logger keeps its checkpoints in ``<root>/checkpoints/``: no run folder)."""
    folder = checkpoint.resolve().parent
    in_run = folder.name == CHECKPOINTS and folder.parent.name.startswith("version_")
    return folder.parent if in_run else None


def claim_run_folder(root: str | Path) -> str:
    """Make the next ``version_N`` folder under ``root`` and return its name.

    ``mkdir`` fails on a folder that exists, so two runs started at the same moment in one root each
    get their own folder (TensorBoard's logger would pick the same next number for both)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    version = max((_version(folder) for folder in root.glob("version_*")), default=-1) + 1
    while True:
        try:
            (root / f"version_{version}").mkdir()
            return f"version_{version}"
        except FileExistsError:
            version += 1


LIGHTNING_KEYS = ("state_dict", "epoch", "global_step", "pytorch-lightning_version")


def read_checkpoint(path: Path) -> dict:
    """The checkpoint, memory-mapped: the CLI reads only its settings before Lightning loads it whole,
    so a large checkpoint's weights are not read from disk once more for that."""
    zipped = zipfile.is_zipfile(path)  # torch.save's format since torch 1.6; the older cannot be mapped
    what = _what_else(path, zipped)
    if what is None:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
        except Exception as err:  # torch raises many kinds for a damaged file
            what = first_line(err) if zipped else "not a file that torch.save writes"
    if what:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({what}); it is damaged or not a Lightning checkpoint: "
            "use another one"
        )
    missing = [key for key in LIGHTNING_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:  # e.g. the notes' torch.save(model.state_dict())
        raise CheckpointError(
            f"{path} is a torch file but not a Lightning checkpoint (it has no {', '.join(missing)}); "
            "give a .ckpt written by fashion-lightning fit"
        )
    return checkpoint


def _what_else(path: Path, zipped: bool) -> str | None:
    """What the file is if it cannot be a checkpoint, in plain words: torch's would give advice on
    ``weights_only`` for a TorchScript model (after a warning)."""
    try:
        if path.stat().st_size == 0:
            return "an empty file (0 bytes)"
        if zipped:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith("/constants.pkl") for name in archive.namelist()):
                    return (
                        "a TorchScript model, as fashion-lightning-export writes; the .json file beside it "
                        "names the checkpoint it came from"
                    )
    except (OSError, zipfile.BadZipFile):
        pass  # torch.load says what is wrong
    return None


def import_error(class_path: str) -> str | None:
    """Why ``class_path`` (``module.Name``) cannot be imported here, or None if it can."""
    module, _, name = class_path.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        return str(err) or type(err).__name__
    return None


def check_net_importable(checkpoint: dict, path: Path) -> None:
    """The checkpoint's net must be importable here, to be rebuilt: a net kept outside the package, or
    a checkpoint from before the package was renamed, would otherwise fail in the parser's many lines."""
    net = checkpoint.get("hyper_parameters", {}).get("net")
    class_path = net.get("class_path") if isinstance(net, dict) else None
    why = import_error(class_path) if class_path else None
    if why:
        raise CheckpointError(
            f"{path} holds the net {class_path}, which cannot be imported here ({why}): put the module "
            "that defines it on PYTHONPATH, or give a checkpoint of another net"
        )


def first_line(err: Exception) -> str:
    """The error's kind and what went wrong, on one line. For a file that is no checkpoint torch's
    message is mostly advice that does not apply (re-run with ``weights_only=False``, file an issue):
    only its unpickler's own words are kept."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    else:
        text = (text.strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {' '.join(text.split())}"


def load_classifier(ckpt_path: str, root: str | None) -> tuple[ImageClassifier, Path]:
    """The model in a checkpoint (a path, or ``best``/``last`` of the latest run under ``root``), in
    eval mode on the CPU, rebuilt from its own hyperparameters; and the checkpoint's path. For the
    tools that use a trained model outside the CLI (pictures, export)."""
    if ckpt_path in ("best", "last") and root is None:
        raise CheckpointError(f"--ckpt_path {ckpt_path} needs --root, the folder of its runs, e.g. runs/fast")
    path = resolve_checkpoint(ckpt_path, root or ".")
    if path is None:
        raise CheckpointError(
            f"no run with checkpoints directly under {root}: give the folder of one config's runs (its "
            "trainer.default_root_dir, e.g. runs/fast), or a .ckpt path; or train first"
        )
    try:
        model = ImageClassifier.load_from_checkpoint(path, map_location="cpu")
    except Exception as err:  # torch and Lightning raise many kinds for a damaged or foreign file
        # why, where it can be told: a damaged file, or a net that cannot be imported here (read only
        # now, so that a good checkpoint is read once)
        check_net_importable(read_checkpoint(path), path)
        raise CheckpointError(
            f"cannot load {path} as a fashion-lightning checkpoint ({first_line(err)})"
        ) from None
    return model.eval(), path


# the model's training settings; its input contract and test-time augmentation are not the command's
TRAINING_SETTINGS = (
    "net",
    "optimizer",
    "scheduler",
    "scheduler_interval",
    "label_smoothing",
    "channels_last",
)


def settings_not_applied(model: dict, checkpoint: dict) -> list[str]:
    """The command's model settings that differ from the checkpoint's, which a resumed fit keeps
    (LightningCLI parses the checkpoint's hyperparameters over the command's), as ``key value
    (the checkpoint's: value)``."""
    saved = checkpoint.get("hyper_parameters", {})
    differ = []
    for name in TRAINING_SETTINGS:
        if name in saved and name in model:
            differ += _differences(f"model.{name}", model[name], saved[name])
    return differ


def _differences(key: str, given, saved) -> list[str]:
    if (
        isinstance(given, dict)
        and isinstance(saved, dict)
        and given.get("class_path") == saved.get("class_path")
    ):
        given_args, saved_args = given.get("init_args") or {}, saved.get("init_args") or {}
        return [
            entry
            for name in sorted(given_args.keys() & saved_args.keys())
            for entry in _differences(f"{key}.init_args.{name}", given_args[name], saved_args[name])
        ]
    if json.dumps(given, default=str) != json.dumps(saved, default=str):  # (tuples and lists alike)
        shown = given.get("class_path") if isinstance(given, dict) else given
        kept = saved.get("class_path") if isinstance(saved, dict) else saved
        return [f"{key} {shown} (the checkpoint's: {kept})"]
    return []
