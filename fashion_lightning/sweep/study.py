"""An Optuna study whose trials are ordinary fits of this project, kept in a database so that several
processes or machines share it and a killed worker's trial is tried again."""

from __future__ import annotations

import contextlib
import io
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from lightning.pytorch import LightningModule, Trainer
from optuna.distributions import BaseDistribution
from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import PyTorchLightningPruningCallback
from sqlalchemy.exc import SQLAlchemyError

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.errors import ConfigError
from fashion_lightning.graceful_stop import Stopped
from fashion_lightning.models.classifier import NonFiniteLossError
from fashion_lightning.models.metrics import PER_CLASS_SCORES
from fashion_lightning.sweep.space import Dimension, as_arguments

PRUNERS = {
    # a trial is stopped when its metric is worse than the median of the trials before it at that epoch,
    # once two trials have finished and from the second epoch on
    "median": lambda: MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    "hyperband": HyperbandPruner,
    "none": NopPruner,
}
STORAGE_ATTEMPTS = 5
TRIAL_FILE = "trial.yaml"  # in each trial's run folder: its number, state, value and parameters


def open_study(
    storage: str, name: str, direction: str, pruner: str, heartbeat: int, seed: int | None, make: bool = True
) -> optuna.Study | None:
    """The study in ``storage`` (any SQLAlchemy URL), made if new; with ``make=False``, None where the
    storage holds none yet, and no SQLite file is made to find out. Workers send a heartbeat; a trial
    whose worker went silent for two heartbeats (killed, or its machine lost) is marked failed and
    its parameters are tried again by the next worker to start a trial."""
    if not make and storage.startswith("sqlite") and not Path(storage.removeprefix("sqlite:///")).is_file():
        return None
    # SQLite: a worker waits for another's write lock rather than failing at once
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            rdb = RDBStorage(
                storage,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
            break
        except SQLAlchemyError as err:  # workers starting together race to make the tables: try again
            if attempt + 1 == STORAGE_ATTEMPTS:
                raise ConfigError(f"--storage {storage}: {' '.join(str(err).split())[:300]}") from None
            time.sleep(1 + random.random())
        except (ImportError, ValueError) as err:  # no driver for the URL, or not a URL
            raise ConfigError(f"--storage {storage}: {' '.join(str(err).split())[:300]}") from None
    if not make and name not in {study.study_name for study in rdb.get_all_studies()}:
        return None
    return optuna.create_study(
        storage=rdb,
        study_name=name,
        direction=direction,
        pruner=PRUNERS[pruner](),
        sampler=optuna.samplers.TPESampler() if seed is None else SeededByTrial(seed),
        load_if_exists=True,
    )


class SeededByTrial(optuna.samplers.BaseSampler):
    """Optuna's TPE sampler, seeded afresh for each trial from ``(seed, trial number)``. One
    ``TPESampler(seed)`` a process would draw the same values again in a resumed sweep and in every
    worker; the storage numbers trials once across workers, so each trial draws its own, and one
    worker's sweep is the same every time, also resumed between trials (a trial stopped midway is
    queued again under a new number, and the trials after it draw other values). Trials run at once
    in threads (``study.optimize(n_jobs=N)``) each draw from their own."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        # one sampler per running trial: `study.optimize(n_jobs=N)` runs N trials at once, in threads
        self.by_trial: dict[int, optuna.samplers.TPESampler] = {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        seed = np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0]
        self.by_trial[trial.number] = optuna.samplers.TPESampler(seed=int(seed))
        self.by_trial[trial.number].before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict:
        return self.by_trial[trial.number].infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict) -> dict:
        return self.by_trial[trial.number].sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.by_trial[trial.number].sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.by_trial.pop(trial.number).after_trial(study, trial, state, values)


class PruneAndRecord(PyTorchLightningPruningCallback):
    """Optuna's Lightning pruning callback, which also keeps the metric of every validation: a trial's
    value is its best, as the best checkpoint's is."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__(trial, monitor)
        self.values: list[float] = []

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if not trainer.sanity_checking and value is not None:
            self.values.append(value.item())
        super().on_validation_end(trainer, pl_module)


class Objective:
    """One trial: ``fashion-lightning fit`` with the configs, the fixed settings and the trial's values,
    in ``<root>/trial_<number>/``; its value is the best of ``metric`` over its validations."""

    def __init__(
        self, configs: list[str], settings: list[str], space: Mapping[str, Dimension],
        metric: str, maximize: bool, root: Path,
    ) -> None:  # fmt: skip
        self.configs, self.settings, self.space = configs, settings, space
        self.metric, self.maximize, self.root = metric, maximize, root

    def fit_args(self, params: Mapping, root: Path) -> list[str]:
        configs = [arg for config in self.configs for arg in ("--config", config)]
        return ["fit", *configs, *self.settings, *as_arguments(params), f"--trainer.default_root_dir={root}"]

    def __call__(self, trial: optuna.Trial) -> float:
        params = {key: dimension.suggest(trial, key) for key, dimension in self.space.items()}
        folder = self.root / f"trial_{trial.number}"
        trial.set_user_attr("run_folder", str(folder / "version_0"))
        pruning = PruneAndRecord(trial, self.metric)

        def ended(state: str, why: str = "") -> None:
            # where trial.yaml went: the run folder, or the trial's if the run failed before its first step
            written = record(folder, trial.number, state, params, pruning.values, why)
            trial.set_user_attr("run_folder", str(written))

        try:
            FashionLightningCLI(args=self.fit_args(params, folder), trainer_defaults={"callbacks": [pruning]})
        except optuna.TrialPruned as pruned:
            ended("pruned", str(pruned))
            raise
        except NonFiniteLossError as err:  # a rate too high for the net: as unpromising as it gets
            ended("pruned", f"diverged: {err}")
            raise optuna.TrialPruned(f"diverged: {err}") from None
        except Stopped as stop:  # Ctrl+C or SIGTERM (a pre-empted job): its values wait for the next run
            trial.study.enqueue_trial(trial.params, skip_if_exists=False)  # as Optuna holds them
            ended("stopped", f"{stop}; queued again")
            raise
        except SystemExit as exit_:  # fit refused values the check before the trials did not try together
            self._check_parses(params, folder)  # a ConfigError in the parser's words: the trial fails
            raise ConfigError(
                f"trial {trial.number} {params}: {str(exit_.code).removeprefix('error: ')}"
            ) from None
        if not pruning.values:
            raise ConfigError(f"the trial logged no {self.metric}: is trainer.check_val_every_n_epoch set?")
        value = max(pruning.values) if self.maximize else min(pruning.values)
        ended("complete")
        return value

    def check(self, points: list[Mapping], scratch: Path) -> None:
        """Before any trial: each point's values (``space.points_to_check``) parse as ``fit`` arguments,
        and one step of a fit (``fast_dev_run``) at each point builds everything they reach (the net,
        the optimizer, the data) and logs the metric. A mistake is a ``ConfigError`` with the parser's
        or the class's words."""
        for params in points:
            self._check_parses(params, scratch)
        quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
        for params in points:
            args = [
                *self.fit_args(params, scratch),
                "--trainer.fast_dev_run=true",
                "--pictures.every_n_epochs=0",
            ]
            try:
                run = FashionLightningCLI(args=[*args, *quiet])
            except ConfigError as err:
                raise ConfigError(f"the search space's values ({dict(params)}) do not fit: {err}") from None
            logged = sorted(run.trainer.callback_metrics)
            # a class that the one batch lacks has no per-class scores logged, but every trial's does
            per_class = {
                f"val/{score}/{name}" for score in PER_CLASS_SCORES for name in run.model.class_names
            }
            if self.metric not in logged and self.metric not in per_class:
                raise ConfigError(
                    f"--metric {self.metric} is never logged; choose one of {', '.join(logged)}"
                )

    def _check_parses(self, params: Mapping, scratch: Path) -> None:
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            try:
                FashionLightningCLI(args=[*self.fit_args(params, scratch), "--print_config"])
            except SystemExit as exit_:
                if exit_.code:
                    said = errors.getvalue()
                    reason = said[said.rfind("error:") + len("error:") :] if "error:" in said else said
                    raise ConfigError(
                        f"the search space does not fit the fit command: {' '.join(reason.split())}"
                    ) from None


def record(
    folder: Path, number: int, state: str, params: Mapping, values: list[float], why: str = ""
) -> Path:
    """``trial.yaml`` in the trial's run folder, so that the folder says what became of the trial; the
    folder it went into."""
    runs = sorted(folder.glob("version_*"))
    target = runs[-1] if runs else folder
    target.mkdir(parents=True, exist_ok=True)
    content = {"trial": number, "state": state, "params": dict(params), "metric_per_validation": values}
    if why:
        content["why"] = why
    (target / TRIAL_FILE).write_text(yaml.safe_dump(content, sort_keys=False))
    return target
