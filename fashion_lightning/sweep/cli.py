"""``fashion-lightning-sweep``: an Optuna search over any setting of ``fit``, with pruning, resumable,
shared by as many workers and machines as one database serves.

    fashion-lightning-sweep --config configs/fast.yaml --space configs/sweeps/fast.yaml --trials 12
    fashion-lightning-sweep --config configs/fast.yaml --space configs/sweeps/fast.yaml --report

The same command started again goes on where the study stands (a trial killed with its worker is
tried again), and started in several processes or machines on one ``--storage`` shares the study.
Each trial is an ordinary run, in ``<root>/trial_<number>/version_0``. At the end: the table of
trials, ``<root>/best.yaml`` (the best trial's config, for ``fashion-lightning fit --config``) and
``<root>/optimization_history.png``, ``param_importances.png``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from fashion_lightning.data import DataError
from fashion_lightning.errors import ConfigError, exit_with
from fashion_lightning.graceful_stop import Stopped
from fashion_lightning.runs import CheckpointError
from fashion_lightning.sweep.report import BEST_CONFIG, finished, trials_table, write_best_config, write_plots
from fashion_lightning.sweep.space import check_against_study, points_to_check, read_space
from fashion_lightning.sweep.study import Objective, open_study

# every trial is a fit run from Python, as LightningCLI's args parameter is meant for
warnings.filterwarnings(
    "ignore", message="LightningCLI's args parameter is intended to run from within Python"
)
# heartbeats and their retries are marked experimental in Optuna 4, and are what makes a sweep resumable
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class _NoTracebackForAUserError(logging.Filter):
    """Optuna logs a trial that ends in an exception with its traceback; a stop by Ctrl+C or SIGTERM,
    or a mistake in the settings or the data, is no bug, and its one-line message says all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (Stopped, *USER_ERRORS)):
            record.exc_info = None
        return True


USER_ERRORS = (ConfigError, DataError, CheckpointError)
NO_TRACEBACK = _NoTracebackForAUserError()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fashion-lightning-sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a mistyped flag's prefix is refused, not taken for the flag it begins
    )
    parser.add_argument(
        "--config", action="append", default=[], metavar="FILE", help="a config of fit; repeatable"
    )
    parser.add_argument(
        "--space", required=True, help="the search space: a YAML file of fit keys and distributions"
    )
    parser.add_argument(
        "--trials", type=int, default=20, help="finished trials the study goes on to (default 20)"
    )
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    parser.add_argument("--metric", default="val/acc", help="the logged metric to optimise (default val/acc)")
    parser.add_argument("--direction", choices=["maximize", "minimize"], default="maximize")
    parser.add_argument("--study-name", help="default: the space file's name")
    parser.add_argument(
        "--root", type=Path, help="where the trials' runs go; default runs/sweeps/<study-name>"
    )
    parser.add_argument("--storage", help="an SQLAlchemy URL (postgresql://...); default sqlite under --root")
    parser.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median")
    parser.add_argument("--heartbeat", type=int, default=30, help="seconds between a worker's signs of life")
    parser.add_argument("--seed", type=int, help="the sampler's seed (one worker: a reproducible sweep)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a fit setting for every trial"
    )
    parser.add_argument("--report", action="store_true", help="run no trial: the table, best.yaml and plots")
    parser.add_argument("--verbose", action="store_true", help="show a traceback on errors")
    args = parser.parse_args(argv)
    args.study_name = args.study_name or Path(args.space).stem
    args.root = (args.root or Path("runs/sweeps") / args.study_name).resolve()
    args.storage = args.storage or f"sqlite:///{args.root / 'study.db'}"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for handler in logging.getLogger("optuna").handlers:  # Optuna's own, set up when it is imported
        handler.addFilter(NO_TRACEBACK)  # once: a filter is added only if not there yet
    try:
        if args.trials < 1:
            raise ConfigError(f"--trials must be 1 or more, got {args.trials}")
        if args.seed is not None and args.seed < 0:  # numpy's seeds are not negative
            raise ConfigError(f"--seed must be 0 or more, got {args.seed}")
        space = read_space(args.space)
        settings = [f"--{setting}" for setting in args.set]
        objective = Objective(
            args.config, settings, space, args.metric, args.direction == "maximize", args.root
        )
        opened = (args.storage, args.study_name, args.direction, args.pruner, args.heartbeat, args.seed)
        existing = None
        if not args.report:
            existing = open_study(*opened, make=False)
            check(objective, existing, args)
        args.root.mkdir(parents=True, exist_ok=True)
        study = existing if existing is not None else open_study(*opened)
        if not args.report:
            run_trials(study, objective, args)
        report(study, args)
    except USER_ERRORS as err:
        exit_with(err, args.verbose)
    except Stopped as stop:
        print(
            f"\n{stop} The sweep stopped; the same command goes on with that trial's values.", file=sys.stderr
        )
        sys.exit(128 + stop.signum)


def check(objective: Objective, study: optuna.Study | None, args: argparse.Namespace) -> None:
    """The space checked before any trial, and before a study is made: a space refused leaves no
    study.db, no study. A study with its trials done needs no check: the command only reports."""
    if study is not None:
        if len(finished(study)) >= args.trials:
            return
        check_against_study(objective.space, study, args.space)
    with tempfile.TemporaryDirectory(prefix="sweep-check-") as scratch:
        objective.check(points_to_check(objective.space), Path(scratch))


def run_trials(study: optuna.Study, objective: Objective, args: argparse.Namespace) -> None:
    """Trials until the study has ``--trials`` finished ones (completed or pruned), counting those of
    earlier runs and of other workers, or until ``--timeout``."""
    if len(finished(study)) >= args.trials:
        print(f"study {args.study_name} already has {len(finished(study))} finished trials")
        return
    study.optimize(
        objective,
        timeout=args.timeout,
        callbacks=[MaxTrialsCallback(args.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
        gc_after_trial=True,
    )


def report(study: optuna.Study, args: argparse.Namespace) -> None:
    print(f"\nStudy {args.study_name} in {args.storage}:\n")
    print(trials_table(study, args.metric))
    counts = {
        state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState
    }
    print("\n" + ", ".join(f"{count} {state}" for state, count in counts.items() if count))
    if counts["complete"]:
        trial = study.best_trial
        print(f"best: trial {trial.number}, {args.metric} {trial.value:.4f}, {trial.params}")
        saved = Path(trial.user_attrs["run_folder"]) / "config.yaml"
        if saved.is_file():
            best = write_best_config(study, saved, args.root)
            print(f"its config: {best} (fashion-lightning fit --config {best})")
        else:  # a run folder deleted since: the study still holds its values
            print(f"its config {saved} is gone (its run folder deleted?): no {BEST_CONFIG} written")
    for picture in write_plots(study, args.root):
        print(picture)


if __name__ == "__main__":
    main()
