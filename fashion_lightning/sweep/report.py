"""A sweep's results: the table of trials, the best trial's config as a file ``fit`` takes, and Optuna's
plots of the optimisation history and of the parameters' importances."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

BEST_CONFIG = "best.yaml"


def trials_table(study: optuna.Study, metric: str) -> str:
    """Every trial as a markdown row: number, state, value, parameters, run folder."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({key for trial in trials for key in trial.params})
    header = ["trial", "state", metric, *keys, "run folder"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for trial in trials:
        value = "" if trial.value is None else f"{trial.value:.4f}"
        params = [_short(trial.params.get(key, "")) for key in keys]
        cells = [
            str(trial.number),
            trial.state.name.lower(),
            value,
            *params,
            trial.user_attrs.get("run_folder", ""),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def write_best_config(study: optuna.Study, saved: Path, root: Path) -> Path:
    """The best trial's full config (``saved``, as its run saved it), training into ``<root>/best``:
    ``fashion-lightning fit --config <root>/best.yaml`` trains that trial again, seeded alike."""
    config = yaml.safe_load(saved.read_text())
    config["trainer"]["default_root_dir"] = str(root / "best")
    config["ckpt_path"] = None
    out = root / BEST_CONFIG
    out.write_text(
        f"# the best trial of study {study.study_name} (trial {study.best_trial.number}, "
        f"value {study.best_value:.4f}), as its run saved it\n" + yaml.safe_dump(config, sort_keys=False)
    )
    return out


def write_plots(study: optuna.Study, root: Path) -> list[Path]:
    """``optimization_history.png`` and, with two finished trials or more, ``param_importances.png``."""
    # both import matplotlib's pyplot, with its global state: only when drawing
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as plots

    drawn = []
    kinds = [("optimization_history", plots.plot_optimization_history)]
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
        kinds.append(("param_importances", plots.plot_param_importances))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, plot in kinds:
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as err:  # e.g. importances of parameters that never varied
                print(f"no {name} picture: {err}")
                continue
            out = root / f"{name}.png"
            axes.figure.savefig(out, dpi=100, bbox_inches="tight")
            pyplot.close(axes.figure)
            drawn.append(out)
    return drawn
