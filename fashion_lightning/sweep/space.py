"""A search space in YAML: any key of the ``fit`` command, each with an Optuna distribution, as in
``configs/sweeps/fast.yaml``::

    model.scheduler.init_args.max_lr: {type: float, low: 0.02, high: 0.5, log: true}
    data.batch_size: {type: categorical, choices: [64, 128, 256]}
    model.net.init_args.depth: {type: int, low: 1, high: 2}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fashion_lightning.config_files import load_yaml
from fashion_lightning.errors import ConfigError

KINDS = {"float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution}


@dataclass(frozen=True)
class Dimension:
    """One key's values: Optuna's ``suggest_<kind>`` and its settings."""

    kind: str
    settings: dict[str, Any]

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        if self.kind != "categorical":
            return getattr(trial, f"suggest_{self.kind}")(key, **self.settings)
        choices = self.distribution().choices  # Optuna's: a list or a mapping as its JSON text
        return self.settings["choices"][choices.index(trial.suggest_categorical(key, choices))]

    def values_to_check(self) -> list[Any]:
        """The values to check the key with before any trial, of the kind the trials will give: low and
        high, or every choice (any one of them may be refused)."""
        if self.kind == "categorical":
            return list(self.settings["choices"])
        cast = float if self.kind == "float" else int
        return [cast(self.settings["low"]), cast(self.settings["high"])]

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """Optuna's distribution; it hashes a categorical's choices (Optuna's importances do, and fail
        on a list), so a list or a mapping is given as its JSON text, which also reads well."""
        if self.kind == "categorical":
            return CategoricalDistribution([as_text(choice) for choice in self.settings["choices"]])
        return KINDS[self.kind](**self.settings)


def read_space(path: str | Path) -> dict[str, Dimension]:
    """The dimensions of a space file, by ``fit`` key; a mistake is a ``ConfigError`` naming the key."""
    try:
        content = load_yaml(path)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the search space {path}: {' '.join(str(err).split())}") from None
    if not isinstance(content, dict) or not content:
        raise ConfigError(
            f"the search space {path} must map fit keys to distributions, one a line, as "
            "model.label_smoothing: {type: float, low: 0.0, high: 0.2}"
        )
    return {str(key): dimension(str(key), spec, path) for key, spec in content.items()}


def dimension(key: str, spec: Any, path: str | Path) -> Dimension:
    where = f"{path}: {key}"
    if not isinstance(spec, Mapping) or spec.get("type") not in KINDS:
        raise ConfigError(
            f"{where} needs a type: float, int or categorical, as {{type: float, low: 0.01, high: 1}}"
        )
    kind, settings = spec["type"], {k: v for k, v in spec.items() if k != "type"}
    if kind == "categorical":
        choices = settings.get("choices")
        if not isinstance(choices, list) or not choices or set(settings) != {"choices"}:
            raise ConfigError(f"{where}: a categorical takes only a non-empty list, choices: [a, b]")
        texts = [as_text(choice) for choice in choices]
        alike = [(a, b) for i, a in enumerate(texts) for b in texts[i + 1 :] if a == b]
        if alike:  # Optuna would give the first of two equal choices every time
            raise ConfigError(
                f"{where}: the choices {alike[0][0]!r} and {alike[0][1]!r} are the same to Optuna"
            )
        return Dimension(kind, settings)
    allowed = {"low", "high", "log", "step"}
    if not {"low", "high"} <= set(settings) <= allowed:
        raise ConfigError(
            f"{where}: a {kind} takes low and high, and optionally log or step; got {sorted(settings)}"
        )
    number, what = ((int,), "an int") if kind == "int" else ((int, float), "a number")
    for bound in ("low", "high"):
        if not isinstance(settings[bound], number) or isinstance(settings[bound], bool):
            raise ConfigError(f"{where}: {bound} must be {what}, got {settings[bound]!r}")
    if settings["low"] > settings["high"]:
        raise ConfigError(f"{where}: low {settings['low']} is above high {settings['high']}")
    if settings.get("log") and settings["low"] <= 0:
        raise ConfigError(f"{where}: a log scale needs low above 0, got {settings['low']}")
    try:
        Dimension(kind, settings).distribution()  # Optuna's own checks (a step that does not fit, ...)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    return Dimension(kind, settings)


def points_to_check(space: Mapping[str, Dimension]) -> list[dict[str, Any]]:
    """Settings of every key, as few as give each key each of its values to check: the first takes the
    low ends and first choices, the i-th each key's i-th value (or its last)."""
    values = {key: dimension.values_to_check() for key, dimension in space.items()}
    count = max(len(each) for each in values.values())
    return [{key: each[min(i, len(each) - 1)] for key, each in values.items()} for i in range(count)]


def check_against_study(space: Mapping[str, Dimension], study: optuna.Study, path: str | Path) -> None:
    """A study goes on with a space whose ranges moved, but Optuna cannot change a categorical's
    choices within one: say so before any trial, not in a failed trial's traceback."""
    for trial in study.get_trials(deepcopy=False):
        for key, before in trial.distributions.items():
            now = space.get(key)
            if (
                isinstance(before, CategoricalDistribution)
                and now is not None
                and now.distribution() != before
            ):
                choices = list(now.distribution().choices)  # as Optuna holds them: lists as JSON text
                raise ConfigError(
                    f"{path}: {key}'s choices {choices} differ from those of the study's "
                    f"earlier trials ({list(before.choices)}), which Optuna cannot change within a study: "
                    "give the earlier choices, or start a new study (--study-name)"
                )


def as_text(choice: Any) -> Any:
    return json.dumps(choice) if isinstance(choice, (list, dict)) else choice


def as_arguments(params: Mapping[str, Any]) -> list[str]:
    """A trial's values as ``fit`` arguments: ``--model.scheduler.init_args.max_lr=0.1``; a text as it
    is (``--trainer.precision=bf16-mixed``: JSON's quotes would become part of it)."""
    return [
        f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in params.items()
    ]
