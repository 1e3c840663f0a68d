"""The ``fashion-lightning`` command: LightningCLI with checkpoints, run folders and resume built in."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import threading
import warnings
from pathlib import Path

import lightning
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Checkpoint, WeightAveraging
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from fashion_lightning.checkpoint_io import (
    DISK_FULL,
    AtomicCheckpointIO,
    DiskFullError,
    explained,
    writable_folder,
)
from fashion_lightning.config_files import check_syntax, config_files, name_the_file
from fashion_lightning.cpu_precision import precision_for_this_cpu
from fashion_lightning.data import DataError, ImageDataModule
from fashion_lightning.empty_event_files import RemoveEmptyEventFiles
from fashion_lightning.errors import ConfigError, exit_with, from_worker, raised_inside
from fashion_lightning.graceful_stop import GracefulStop, Stopped
from fashion_lightning.model_checkpoint import RunCheckpoint
from fashion_lightning.models import ImageClassifier
from fashion_lightning.models.classifier import NonFiniteLossError
from fashion_lightning.predictions import PredictionWriter
from fashion_lightning.run_config import RunConfig
from fashion_lightning.run_lock import RunLock, RunLockedError
from fashion_lightning.runs import (
    CheckpointError,
    LatestRunSavedNothing,
    check_net_importable,
    claim_run_folder,
    import_error,
    read_checkpoint,
    resolve_checkpoint,
    run_folder,
    settings_not_applied,
)
from fashion_lightning.stop_signals import Interrupted, restore_signals, stop_at_once_on_signals
from fashion_lightning.viz.callback import PictureLogger

# predict's batch indices serve only writers that ask for them; ours keeps the order of the images
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices fetched from your dataloader")
# weight averaging builds the net by calling configure_model early; ours builds a whole (unsharded) net anyway
warnings.filterwarnings("ignore", message="You're using the WeightAveraging callback with a model that")
# Lightning's own use of a torch API that torch deprecated, on every run: nothing for a user to change
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# the summary's size estimate in bf16 (fast.yaml's precision) counts 4 bytes a parameter: it says so
warnings.filterwarnings("ignore", message="Precision bf16-mixed is not supported by the model summary")
# Lightning's advertisement for its cloud logger, at every command
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage()
)


@contextlib.contextmanager
def parser_errors_in_short(given: list[str], about: str = "", fix: str = ""):
    """The parser's error, if it exits with one, in one line that names the config file it is about
    (not its usage text, nor every type of a Union it tried); for settings not given on the command
    line, ``about`` says where they came from and ``fix`` what to do. What it says otherwise, as it is."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            yield
    except SystemExit as exit_:
        words = said.getvalue()
        if exit_.code:
            words = name_the_file(union_error_in_short(without_usage(words)), given)
        if exit_.code and about:  # not given on this command line: its tip to see --help does not apply
            errors = [
                line.removeprefix("error: ") for line in words.splitlines() if line.startswith("error: ")
            ]
            words = f"error: {about}: {' '.join(errors) or words.strip()}; {fix}\n"
        sys.stderr.write(words)
        raise
    sys.stderr.write(said.getvalue())


class FashionLightningCLI(LightningCLI):
    """``fit``/``validate``/``test``/``predict`` for ``ImageClassifier`` on ``ImageDataModule``.

    On top of LightningCLI:
    - checkpoints: the best by ``val/acc`` (``--best_checkpoint.*``) and ``last.ckpt`` after every
      validation (``--last_checkpoint.*``);
    - TensorBoard logs each run into ``<default_root_dir>/version_N``, and ``config.yaml`` beside them;
    - the notes' pictures in TensorBoard (``--pictures.*``, see ``viz.PictureLogger``);
    - checkpoints written to a temporary file and renamed into place (``AtomicCheckpointIO``);
    - ``--ckpt_path last|best`` finds the latest run's checkpoint in a fresh process, and a run resumed
      from a checkpoint keeps writing into the run folder the checkpoint came from;
    - weight averaging, off unless ``--weight_averaging`` names a Lightning ``WeightAveraging`` callback
      (``EMAWeightAveraging``), a key of its own so that no ``trainer.callbacks`` list replaces it;
    - ``model.test_time_augmentation`` is the command's, even with a checkpoint whose own differs.
    """

    def __init__(self, *args, **kwargs) -> None:
        self.run_folder: Path | None = None  # the run folder to log into, when a checkpoint gives one
        self.new_run_folder: Path | None = None  # the run folder made for this fit, if one was
        self.resumes_averaged = False  # a fit resumed from a checkpoint that weight averaging wrote
        self.test_time_augmentation = None  # the command's own, put back over a checkpoint's
        kwargs.setdefault("save_config_callback", RunConfig)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})  # a resumed run re-saves its config
        kwargs.setdefault("auto_configure_optimizers", False)  # the model takes model.optimizer/scheduler
        # a mistyped flag's prefix (--trainer.max_epoch) is refused, not taken for the flag it begins:
        # jsonargparse 5's default, and argparse's allow_abbrev
        kwargs["parser_kwargs"] = {"allow_abbrev": False, **(kwargs.get("parser_kwargs") or {})}
        # settings every config shares, written once: a fixed seed, and one device unless asked for more
        kwargs.setdefault("seed_everything_default", 42)
        kwargs["trainer_defaults"] = {"devices": 1, **kwargs.get("trainer_defaults", {})}
        super().__init__(ImageClassifier, ImageDataModule, *args, **kwargs)

    def init_parser(self, **kwargs) -> LightningArgumentParser:
        # main() takes --verbose off the command line before the parser sees it: named here for --help
        kwargs.setdefault(
            "epilog",
            "--verbose: on an error, show the Python traceback too (or FASHION_LIGHTNING_TRACEBACK=1)",
        )
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # In code rather than in trainer.callbacks, so a config's callback list cannot drop them.
        parser.add_lightning_class_args(RunCheckpoint, "best_checkpoint")
        parser.set_defaults(
            {
                "best_checkpoint.monitor": "val/acc",
                "best_checkpoint.mode": "max",
                "best_checkpoint.filename": "epoch={epoch}-step={step}-val_acc={val/acc:.4f}",
                "best_checkpoint.auto_insert_metric_name": False,
            }
        )
        # Since Lightning 2.6, `save_last=True` rewrites last.ckpt only when a top-k checkpoint is saved
        # in the same step, so it would lag behind whenever val/acc does not improve. A second callback
        # without a monitor overwrites last.ckpt after every validation instead.
        parser.add_lightning_class_args(RunCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {"last_checkpoint.filename": "last", "last_checkpoint.enable_version_counter": False}
        )
        # the notes' pictures in TensorBoard; `--pictures.every_n_epochs 0` turns them off
        parser.add_lightning_class_args(PictureLogger, "pictures")
        # Ctrl+C or SIGTERM: a checkpoint between two steps, then exit (status 128 + signal)
        parser.add_lightning_class_args(GracefulStop, "graceful_stop")
        # `predict` writes a CSV (`--predictions.output`); `--data.predict_images` picks the images
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        # off by default; not through add_lightning_class_args, which would hand the Trainer its None
        parser.add_subclass_arguments(WeightAveraging, "weight_averaging", required=False, fail_untyped=False)

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        given = sys.argv[1:] if args is None else args
        files = config_files(given)
        check_syntax(files)
        self._parse(parser, given, parser_errors_in_short(given))
        subcommand = self.config.get("subcommand")
        if subcommand:
            checkpoint = self._resolve_ckpt_path(self.config[subcommand], subcommand)
            if checkpoint is not None and subcommand != "fit":
                self._parse_over_the_checkpoints_data(parser, given, checkpoint, files)
            # LightningCLI parses a checkpoint's hyperparameters over the command's next; test-time
            # augmentation is how this command evaluates, so it is put back (before_instantiate_classes)
            self.test_time_augmentation = self.config[subcommand].model.test_time_augmentation
        self._choose_precision(any(arg.startswith("--trainer.precision") for arg in given))

    def _parse(self, parser: LightningArgumentParser, args: list[str], errors) -> None:
        argv = sys.argv
        try:
            sys.argv = argv[:1]  # args are the whole command: Lightning warns if sys.argv holds a script's
            with errors:
                super().parse_arguments(parser, args)
        finally:
            sys.argv = argv

    def _parse_over_the_checkpoints_data(
        self, parser: LightningArgumentParser, given: list[str], checkpoint: dict, files: list
    ) -> None:
        """A checkpoint tested, validated or predicted on scores the data it was trained on, as its data
        module saved its settings, not the default Fashion-MNIST: as LightningCLI takes the model's
        settings from the checkpoint. The command's own data settings (config files, ``--data.*``) apply
        over them: the command is parsed again, the checkpoint's settings first."""
        data = {k: v for k, v in checkpoint.get("datamodule_hyper_parameters", {}).items() if k[0] != "_"}
        if not data:
            return
        subcommand = self.config.subcommand
        ckpt_path = self.config[subcommand].ckpt_path  # resolved: last/best named as its file
        source = data.get("source")
        class_path = source.get("class_path") if isinstance(source, dict) else None
        why = import_error(class_path) if class_path else None
        if why:
            if not (files or any(arg.startswith(("--data.source", "--data=")) for arg in given)):
                raise CheckpointError(
                    f"{ckpt_path} was trained on the data source {class_path}, which cannot be imported "
                    f"here ({why}): put the module that defines it on PYTHONPATH, or give the data to use "
                    "(--config, or --data.* settings)"
                )
            del data["source"]  # the command gives its own
        at = given.index(subcommand) + 1
        again = [*given[:at], f"--data={json.dumps(data)}", *given[at:]]
        about = f"the data settings saved in {ckpt_path} do not apply here"
        fix = "give the data to use: --config, or --data.* settings"
        self._parse(parser, again, parser_errors_in_short([], about, fix))
        self.config[subcommand].ckpt_path = ckpt_path

    def _choose_precision(self, insisted: bool) -> None:
        """A config's bf16-mixed, on a CPU that would only emulate bf16, becomes float32 (cpu_precision),
        and the run's config.yaml says so."""
        subcommand = self.config.get("subcommand")  # self.subcommand is set after parsing
        trainer = (self.config[subcommand] if subcommand else self.config).trainer
        trainer.precision, why = precision_for_this_cpu(trainer.precision, trainer.accelerator, insisted)
        if why and rank_zero_only.rank == 0:
            print(why, file=sys.stderr)

    def _resolve_ckpt_path(self, config, subcommand: str) -> dict | None:
        """Turn ``last``/``best`` into a file before Lightning reads the checkpoint's hyperparameters; the
        checkpoint, read without its weights, if there is one."""
        if not config.get("ckpt_path"):
            if subcommand in ("validate", "test") and config.model.get("input_contract") is None:
                # the net would be untrained, and would not even know its input (it learns it at fit)
                raise SystemExit(
                    f"error: {subcommand} scores a trained model: give --ckpt_path, a .ckpt file or "
                    f"last/best for the latest run under {self._root_dir(config)}"
                )
            return None
        root = self._root_dir(config)
        try:
            path = resolve_checkpoint(config.ckpt_path, root)
        except LatestRunSavedNothing as nothing:
            if subcommand != "fit":
                raise
            print(f"{nothing}. Starting a new run.", file=sys.stderr)  # as that run's first start did
            config.ckpt_path = None
            return None
        if path is None and subcommand == "fit":
            print(
                f"--ckpt_path {config.ckpt_path}: no checkpoint under {root} yet; starting a new run.",
                file=sys.stderr,
            )
            config.ckpt_path = None
            return None
        if path is None:
            raise SystemExit(
                f"error: --ckpt_path {config.ckpt_path}: no run with checkpoints under {root}. "
                "Train first (fit), or give a checkpoint path."
            )
        config.ckpt_path = str(path)
        folder = run_folder(path)
        # a resumed fit goes on in its run folder if that lies under default_root_dir (else it starts a
        # new run there); test and validate log into the checkpoint's run folder wherever it is
        if folder is not None and (subcommand != "fit" or folder.parent == Path(root).resolve()):
            self.run_folder = folder
            if subcommand == "fit":  # Lightning warns of the run's own checkpoints, which it goes on with
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        checkpoint = read_checkpoint(path)  # a damaged file is named here, not deep inside Lightning
        check_net_importable(checkpoint, path)
        # WeightAveraging's checkpoints hold the averaged weights as state_dict, the trained ones aside
        self.resumes_averaged = subcommand == "fit" and "current_model_state" in checkpoint
        if subcommand == "fit" and rank_zero_only.rank == 0:
            ignored = settings_not_applied(config.model.as_dict(), checkpoint)
            if ignored:
                print(
                    f"note: a resumed fit trains on with the checkpoint's model settings; not applied: "
                    f"{', '.join(ignored)}. Start a new run (no --ckpt_path) to train with them.",
                    file=sys.stderr,
                )
        max_epochs = config.trainer.get("max_epochs")
        if subcommand == "fit" and max_epochs is not None and max_epochs >= 0:
            done = checkpoint["epoch"] + 1  # epochs the checkpoint has finished or begun
            if max_epochs < done:
                raise SystemExit(
                    f"error: --trainer.max_epochs {max_epochs} is below the {done} epochs the checkpoint "
                    f"{path} has already trained; give a larger max_epochs to train on"
                )
        return checkpoint

    def before_instantiate_classes(self) -> None:
        if self.subcommand:
            self.config[self.subcommand].model.test_time_augmentation = self.test_time_augmentation
        if self.subcommand not in ("fit", None):  # None: run=False, the caller may still call fit
            # test/validate/predict may log into a training run's folder: keep that run's config.yaml
            self.save_config_callback = None

    @staticmethod
    def _root_dir(config) -> str:
        return config.trainer.get("default_root_dir") or os.getcwd()

    def _command_config(self):
        # with run=False there is no subcommand, and the settings sit at the top of the config
        return self.config[self.subcommand] if self.subcommand else self.config

    def _command_init(self):
        # the instantiated settings, as _command_config
        return self.config_init[self.subcommand] if self.subcommand else self.config_init

    def instantiate_trainer(self, **kwargs):
        try:
            return self._trainer(**kwargs)
        except BaseException:
            # refused before the fit began: the run folder made for it holds nothing (RunLock takes over
            # once the fit runs), and TensorBoard would list it as a run
            if self.new_run_folder is not None and not any(self.new_run_folder.iterdir()):
                self.new_run_folder.rmdir()
            raise

    def _trainer(self, **kwargs):
        trainer_config = self._command_config().trainer
        if trainer_config.get("logger") in (None, True):
            # predict's output is its CSV; a logger would only leave a folder behind
            kwargs["logger"] = False if self.subcommand == "predict" else self._run_logger()
        if not trainer_config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        checkpointing = trainer_config.get("enable_checkpointing") is not False
        if not checkpointing:
            # Lightning refuses ModelCheckpoint callbacks with checkpointing off, and the CLI always makes
            # its two: they are taken out below instead
            kwargs["enable_checkpointing"] = True
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError) as err:  # Lightning's own checks of the flags
            hint = (
                " (on a machine without one: --trainer.accelerator auto)" if "gpu backend" in str(err) else ""
            )
            raise ConfigError(f"trainer: {' '.join(str(err).split())}{hint}") from None
        unused = (PredictionWriter,) if self.subcommand not in ("predict", None) else ()
        evaluates = self.subcommand in ("validate", "test", "predict")
        if not checkpointing or evaluates:
            # any, as Lightning itself refuses them with checkpointing off; outside fit they write nothing,
            # and reading their state from the checkpoint only warned that its folder was another
            unused += (Checkpoint,)
        if evaluates:
            # left out on purpose, with the averaging callback: Lightning would ask for them back, as the
            # checkpoint holds their state
            warnings.filterwarnings(
                "ignore", message="Be aware that when using `ckpt_path`, callbacks used to"
            )
        if self.subcommand in ("fit", None):
            self._add_weight_averaging(trainer)
        else:  # a checkpoint's weights are the averaged ones already; the callback would only warn
            unused += (WeightAveraging,)
        # Lightning calls every callback at each of a step's hooks, a cost per step whether used or not;
        # the CSV writer has nothing to do outside predict
        trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, unused)]
        if self.subcommand == "fit" and not self._command_config().data.val_size:
            self._without_validation(trainer)
        if self.subcommand == "fit" and trainer.is_global_zero:
            self._note_views_never_trained_on()
        if self.subcommand == "fit" and not self._command_config().get("ckpt_path"):
            _refuse_earlier_checkpoints(trainer)
        if self.subcommand == "fit" and trainer.is_global_zero:
            # before anything is written into the run folder: one process trains a run at a time
            # (a DummyLogger, as fast_dev_run's, has no folder: the root is the run's)
            folder = writable_folder(trainer.log_dir or trainer.default_root_dir)
            trainer.callbacks.append(RunLock(folder, new_folder=folder == self.new_run_folder))
        if self.subcommand in ("test", "validate"):  # a fit has it done by RunLock, with no callback more
            trainer.callbacks.append(RemoveEmptyEventFiles())
        return trainer

    @staticmethod
    def _without_validation(trainer: Trainer) -> None:
        """``data.val_size=0``: nothing is validated, so a checkpoint kept by a validation score (``val/``)
        would only warn at every epoch that it has none. Said once, here, instead."""
        monitors = [
            c for c in trainer.checkpoint_callbacks if str(getattr(c, "monitor", "")).startswith("val/")
        ]
        trainer.callbacks[:] = [c for c in trainer.callbacks if c not in monitors]
        if monitors and trainer.is_global_zero:
            print(
                "note: data.val_size=0 holds no images out for validation, so no best checkpoint is kept "
                f"(by {', '.join(sorted({c.monitor for c in monitors}))}); last.ckpt is written every epoch",
                file=sys.stderr,
            )

    def _note_views_never_trained_on(self) -> None:
        """Test-time views of a kind training never showed the net (a config's mirror image, kept after
        turning off training's mirroring for digits, say) cost accuracy rather than add it: said once."""
        views = getattr(self.model, "test_time_augmentation", None)
        augment = getattr(self.datamodule, "augment", None)
        if views is None or augment is None:
            return
        unseen = []
        if views.hflip and not augment.hflip:
            unseen.append("model.test_time_augmentation.hflip mirrors, but data.augment.hflip is off")
        if views.shifts and not augment.crop_padding:
            unseen.append("model.test_time_augmentation.shifts moves, but data.augment.crop_padding is 0")
        if unseen:
            print(
                f"note: {'; '.join(unseen)}: validation, test and predict will average in views the net "
                "never trained on, which cost accuracy where they change what an image shows (a mirrored "
                "digit); turn them off with the same settings, or train on them",
                file=sys.stderr,
            )

    def _add_weight_averaging(self, trainer: Trainer) -> None:
        """``weight_averaging``'s callback, first: it must average a step's weights before any callback
        saves that step (GracefulStop; Lightning itself moves its ModelCheckpoints last)."""
        averaging = self._command_init().get("weight_averaging")
        if averaging is not None:
            trainer.callbacks.insert(0, averaging)
        if self.resumes_averaged and not any(isinstance(c, WeightAveraging) for c in trainer.callbacks):
            # without the callback, Lightning would go on training from the averaged weights
            raise ConfigError(
                "the checkpoint was trained with weight averaging: resume it with the same weight_averaging "
                "(as in the run's config.yaml), or training would go on from the averaged weights"
            )

    def _run_logger(self) -> TensorBoardLogger:
        # absolute, as a resumed run's folder is: its checkpoint callbacks keep the best score they
        # recorded only if the folder they save into is named as the checkpoint names it
        root, version = Path(self._root_dir(self._command_config())).resolve(), None
        if self.run_folder is not None:
            root, version = self.run_folder.parent, self.run_folder.name
        elif rank_zero_only.rank == 0:
            writable_folder(root)  # refused in one line before any work, as the logger writes there
            if self.subcommand == "fit":
                # a new run folder for a new fit (other DDP ranks get rank 0's); test/validate of a
                # checkpoint outside any run folder leave it to the logger
                version = claim_run_folder(root)
                self.new_run_folder = Path(root, version)
        # version_N as the number N, which the logger names version_N too: the progress bar shows it
        # (v_num=3), where it shows a name's last four characters (v_num=on_3)
        number = (version or "").removeprefix("version_")
        return TensorBoardLogger(
            save_dir=root,
            name="",
            version=int(number) if number.isdigit() and str(int(number)) == number else version,
            default_hp_metric=False,  # hp_metric is logged from val/acc_best instead of -1
        )


def _refuse_earlier_checkpoints(trainer: Trainer) -> None:
    """A new fit never writes over an earlier run's checkpoints. Each run has a folder of its own under
    its logger; without one, or with a checkpoint folder set in the config, runs share one, and
    Lightning only warns before overwriting ``last.ckpt``."""
    if trainer.fast_dev_run:  # saves nothing
        return
    for callback in trainer.checkpoint_callbacks:
        if callback.dirpath is not None:
            folder = Path(callback.dirpath)
        elif not trainer.loggers:
            folder = Path(trainer.default_root_dir, "checkpoints")
        else:
            continue
        if any(folder.glob("*.ckpt")):
            raise ConfigError(
                f"{folder} holds an earlier run's checkpoints, which this run would overwrite: go on with "
                "that run (--ckpt_path last), or give this one another trainer.default_root_dir (or a "
                "logger, which gives each run a version_N folder of its own)"
            )


def without_usage(message: str) -> str:
    """The parser's error without the usage it prints first: a hundred lines of options before the
    one line that says what is wrong (``--help`` lists them)."""
    lines, kept, in_usage = message.splitlines(keepends=True), [], False
    for line in lines:
        in_usage = line.startswith("usage:") or (in_usage and line[:1].isspace())
        if not in_usage:
            kept.append(line)
    return "".join(kept)


def union_error_in_short(message: str) -> str:
    """jsonargparse's error for a setting that may also be None (``model.net``, ``trainer.max_epochs``)
    lists every type it tried, None's among them, with Python's names for them: when only one other
    type was tried, its own error, and the value given, say what is wrong."""
    if "Does not validate against any of the Union subtypes" not in message:
        return message
    key = re.search(r'Parser key "([^"]+)"', message)
    errors = [line[6:] for line in message.splitlines() if line.startswith("    - ")]
    errors = [error for error in errors if error != "Expected a <class 'NoneType'>"]
    given = re.search(r"^  Given value: (.*)$", message, re.M)
    if key is None or given is None or len(errors) != 1:
        return message
    error = re.sub(r"^Type .+? expects a function or a callable class: ", "", errors[0])
    value = "" if "Got value:" in error else f"; given: {given.group(1)}"
    head = message[: message.index("error:")]  # jsonargparse's tip, if any
    return f'{head}error: Parser key "{key.group(1)}": {error}{value}\n'


def main(args: list[str] | None = None) -> None:
    """Run the CLI. Mistakes in the data, the config or a checkpoint end with a one-line message and
    status 1; ``--verbose`` (or ``FASHION_LIGHTNING_TRACEBACK=1``) shows the Python traceback too."""
    given = sys.argv[1:] if args is None else args
    verbose = "--verbose" in given
    if args is None:  # LightningCLI reads sys.argv itself (and warns when handed a copy of it)
        sys.argv = [arg for arg in sys.argv if arg != "--verbose"]
    else:
        args = [arg for arg in args if arg != "--verbose"]
    threading.excepthook = _quiet_full_disk
    handles_signals = threading.current_thread() is threading.main_thread()  # Python's rule
    previous = stop_at_once_on_signals() if handles_signals else {}
    try:
        FashionLightningCLI(args=args)
    except (Stopped, Interrupted) as stop:
        if getattr(stop, "announces", True):
            print(f"\n{stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except Exception as err:
        if _is_checkpoint_mismatch(err):
            err = CheckpointError(
                "the checkpoint holds a different network than model.net in the config "
                f"({str(err).splitlines()[0]}); give the config the checkpoint was trained with"
            )
        if isinstance(err, OSError):  # a full disk writing an event file, config.yaml, a picture
            err = explained(err, RunLock.latest or os.getcwd())
        if isinstance(err, ValueError) and raised_inside(err, lightning):  # a flag it checks as it runs
            err = ConfigError(f"trainer: {' '.join(str(err).split())}")
        if isinstance(err, RuntimeError) and "conditioned on metric" in str(err):  # EarlyStopping's monitor
            err = ConfigError(f"trainer.callbacks: {' '.join(str(err).split())}")
        if not isinstance(err, USER_ERRORS):
            raise  # any other error is a bug to report, with its traceback
        exit_with(from_worker(err), verbose)
    finally:
        restore_signals(previous)


# what a user can set right: each ends a command with its one-line message
USER_ERRORS = (
    DataError, CheckpointError, ConfigError, NonFiniteLossError, DiskFullError, RunLockedError,
    MisconfigurationException,  # Lightning's word for a setting that cannot work, found while it runs
)  # fmt: skip


def _quiet_full_disk(args: threading.ExceptHookArgs) -> None:
    """TensorBoard writes events in a thread of its own, which prints a full disk's traceback; the main
    thread meets the same error at its next write and reports it in one line."""
    if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in DISK_FULL):
        threading.__excepthook__(args)


def _is_checkpoint_mismatch(err: Exception) -> bool:
    return isinstance(err, RuntimeError) and str(err).startswith("Error(s) in loading state_dict")
