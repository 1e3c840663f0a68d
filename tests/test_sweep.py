"""fashion-lightning-sweep on tiny data: real trials (fits), pruning, kill -9 and resume, two workers on
SQLite and on a PostgreSQL server the tests start, the report, and bad search spaces."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")

from optuna.storages import RetryHeartbeatStaleTrialCallback  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from test_cli import _free_port  # noqa: E402

from fashion_lightning.cli import FashionLightningCLI  # noqa: E402
from fashion_lightning.errors import ConfigError  # noqa: E402
from fashion_lightning.sweep.cli import main as sweep  # noqa: E402
from fashion_lightning.sweep.space import Dimension, as_text  # noqa: E402
from fashion_lightning.sweep.study import Objective, open_study, record  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAST = str(REPO / "configs/fast.yaml")
SWEEP = str(Path(sys.executable).parent / "fashion-lightning-sweep")
QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "pictures.every_n_epochs=0",
]
SPACE = {
    "model.scheduler.init_args.max_lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "data.batch_size": {"type": "categorical", "choices": [20, 40]},
}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def settings(data: Path, epochs: int = 2) -> list[str]:
    fixed = [f"data.source.root={data}", "data.source.download=false", "data.val_size=40"]
    return [*fixed, f"trainer.max_epochs={epochs}", *QUIET]


def command(data: Path, root: Path, space: Path, *extra: str, epochs: int = 2) -> list[str]:
    sets = [arg for setting in settings(data, epochs) for arg in ("--set", setting)]
    return ["--config", FAST, "--space", str(space), "--root", str(root), *sets, *extra]


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def load(storage: str, name: str = "space") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def test_a_sweep_runs_its_trials_and_reports(tiny_data, tmp_path, space, capsys):
    root = tmp_path / "sweep"
    sweep(command(tiny_data, root, space, "--trials=3", "--seed=0"))
    out = capsys.readouterr().out
    study = load(f"sqlite:///{root / 'study.db'}")
    assert len(study.get_trials(states=FINISHED)) == 3
    for trial in study.trials:
        run = Path(trial.user_attrs["run_folder"])
        assert run == root / f"trial_{trial.number}" / "version_0"
        assert (run / "config.yaml").is_file() and list(run.glob("events.out.tfevents.*"))
        assert (run / "checkpoints" / "last.ckpt").is_file(), "each trial is an ordinary run"
        assert yaml.safe_load((run / "trial.yaml").read_text())["state"] == trial.state.name.lower()
    assert (
        "| trial | state | val/acc | data.batch_size | model.scheduler.init_args.max_lr | run folder |" in out
    )
    for picture in ("optimization_history.png", "param_importances.png"):
        assert (root / picture).stat().st_size > 10_000, picture

    # the best trial's config, as fit takes it, trains that trial again to its value
    best = yaml.safe_load((root / "best.yaml").read_text())
    assert best["data"]["batch_size"] == study.best_params["data.batch_size"]
    again = FashionLightningCLI(args=["fit", "--config", str(root / "best.yaml")])
    assert again.trainer.callback_metrics["val/acc_best"].item() == pytest.approx(study.best_value, abs=1e-6)
    assert (root / "best" / "version_0").is_dir()

    # the same command with the study done runs nothing more; --report only reports
    sweep(command(tiny_data, root, space, "--trials=3"))
    sweep(command(tiny_data, root, space, "--report"))
    assert len(load(f"sqlite:///{root / 'study.db'}").trials) == 3


def test_a_seeded_sweep_resumed_repeats_no_trial_and_is_the_uninterrupted_one(tiny_data, tmp_path, space):
    """Each trial's values are drawn from (seed, trial number): a resumed seeded sweep does not start
    the same draws again, and one worker's sweep is the same every time, resumed or not."""
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    sweep(command(tiny_data, resumed, space, "--trials=2", "--seed=0", epochs=1))
    sweep(command(tiny_data, resumed, space, "--trials=4", "--seed=0", epochs=1))
    sweep(command(tiny_data, whole, space, "--trials=4", "--seed=0", epochs=1))
    params = [trial.params for trial in load(f"sqlite:///{resumed / 'study.db'}").trials]
    assert len(params) == 4 and len({str(p) for p in params}) == 4, params
    assert [trial.params for trial in load(f"sqlite:///{whole / 'study.db'}").trials] == params


def test_seeded_workers_draw_other_values_before_and_after_tpes_random_start(tmp_path):
    """Two seeded workers on one study, asking in turn past TPE's ten random startup trials: no two
    trials alike; one worker alone draws the same values again."""

    def ask_and_tell(studies: list[optuna.Study], trials: int) -> list[dict]:
        for number in range(trials):
            study = studies[number % len(studies)]
            trial = study.ask()
            rate = trial.suggest_float("rate", 1e-4, 1.0, log=True)
            study.tell(trial, -abs(rate - 0.1) + 0.01 * trial.suggest_categorical("size", [20, 40]) / 40)
        return [trial.params for trial in studies[0].trials]

    def opened(name: str) -> optuna.Study:
        return open_study(f"sqlite:///{tmp_path / name}.db", "study", "maximize", "none", 30, seed=0)

    shared = ask_and_tell([opened("shared"), opened("shared")], 16)
    assert len({str(params) for params in shared}) == 16, shared
    alone = ask_and_tell([opened("alone")], 14)
    assert ask_and_tell([opened("again")], 14) == alone


def test_a_finished_study_is_reported_at_once_without_checking_the_space_again(
    tiny_data, tmp_path, space, capsys
):
    """A worker that starts after the trials are done (a job array's last) only reports: no step of a
    fit first, which would now fail, the data being gone."""
    root = tmp_path / "sweep"
    sweep(command(tiny_data, root, space, "--trials=1", epochs=1))
    shutil.rmtree(tiny_data)
    capsys.readouterr()
    sweep(command(tiny_data, root, space, "--trials=1", epochs=1))
    assert "study space already has 1 finished trials" in capsys.readouterr().out


def test_the_report_says_so_when_the_best_trials_run_folder_is_gone(tiny_data, tmp_path, space, capsys):
    root = tmp_path / "sweep"
    sweep(command(tiny_data, root, space, "--trials=1", epochs=1))
    shutil.rmtree(root / "trial_0")
    (root / "best.yaml").unlink()
    capsys.readouterr()
    sweep(command(tiny_data, root, space, "--report"))
    out = capsys.readouterr().out
    assert "| 0 | complete |" in out and "best: trial 0" in out
    config = root / "trial_0" / "version_0" / "config.yaml"
    assert f"its config {config} is gone (its run folder deleted?): no best.yaml written" in out
    assert not (root / "best.yaml").exists() and (root / "optimization_history.png").is_file()


def test_text_choices_reach_fit_as_they_are_written(tiny_data, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("trainer.gradient_clip_algorithm: {type: categorical, choices: [norm, value]}\n")
    root = tmp_path / "sweep"
    sweep(command(tiny_data, root, space, "--trials=2", "--seed=0", epochs=1))
    study = load(f"sqlite:///{root / 'study.db'}")
    assert len(study.get_trials(states=FINISHED)) == 2
    for trial in study.trials:
        config = yaml.safe_load((Path(trial.user_attrs["run_folder"]) / "config.yaml").read_text())
        assert config["trainer"]["gradient_clip_algorithm"] == trial.params["trainer.gradient_clip_algorithm"]


def test_a_categorical_of_lists_reaches_fit_as_lists_and_the_report_draws_it(tiny_data, tmp_path, capsys):
    """Optuna hashes a categorical's choices: a list goes to it as its JSON text, and to fit as a list."""
    key = "model.net.init_args.widths"
    space = tmp_path / "space.yaml"
    space.write_text(
        f"{key}: {{type: categorical, choices: [[8, 16, 32], [16, 16, 16]]}}\n"
        "model.scheduler.init_args.max_lr: {type: float, low: 0.01, high: 0.3, log: true}\n"
    )
    root = tmp_path / "sweep"
    sweep(command(tiny_data, root, space, "--trials=2", "--seed=0", epochs=1))
    assert "no param_importances picture" not in capsys.readouterr().out
    assert (root / "param_importances.png").stat().st_size > 10_000
    for trial in load(f"sqlite:///{root / 'study.db'}").trials:
        assert trial.params[key] in ("[8, 16, 32]", "[16, 16, 16]"), "readable, as in the table"
        run = Path(trial.user_attrs["run_folder"])
        widths = yaml.safe_load((run / "config.yaml").read_text())["model"]["net"]["init_args"]["widths"]
        assert widths == json.loads(trial.params[key])
        assert yaml.safe_load((run / "trial.yaml").read_text())["params"][key] == widths


def test_an_unpromising_trial_is_pruned_and_its_run_folder_says_so(tiny_data, tmp_path):
    """Two trials at a good peak rate, then one at a rate that learns nothing: the median pruner stops
    it at its second validation."""
    study = open_study(f"sqlite:///{tmp_path / 'study.db'}", "pruning", "maximize", "median", 30, seed=0)
    key = "model.scheduler.init_args.max_lr"
    for rate in (0.1, 0.1, 1e-7):
        study.enqueue_trial({key: rate})
    space = {key: Dimension("float", {"low": 1e-8, "high": 1.0, "log": True})}
    fixed = [f"--{setting}" for setting in settings(tiny_data, epochs=4)] + ["--data.batch_size=20"]
    study.optimize(Objective([FAST], fixed, space, "val/acc", True, tmp_path / "sweep"), n_trials=3)
    assert [trial.state for trial in study.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    said = yaml.safe_load((tmp_path / "sweep/trial_2/version_0/trial.yaml").read_text())
    assert said["state"] == "pruned" and "pruned at epoch 1" in said["why"]
    assert len(said["metric_per_validation"]) == 2, "stopped after its second validation, not at the end"


def test_a_per_class_metric_is_taken_though_the_checks_one_batch_lacks_the_class(tiny_data, tmp_path):
    """The check before any trial runs one batch, which may lack a class (no scores logged for it)."""
    key = "model.scheduler.init_args.max_lr"
    space = {key: Dimension("float", {"low": 0.01, "high": 0.1, "log": True})}
    fixed = [f"--{setting}" for setting in settings(tiny_data)] + ["--data.val_size=1"]
    for name in ("T-shirt/top", "Trouser"):  # one validation image: at most one of the two is in it
        objective = Objective([FAST], fixed, space, f"val/class_acc/{name}", True, tmp_path / "sweep")
        objective.check([{key: 0.01}, {key: 0.1}], tmp_path / name.replace("/", "_"))
    unknown = Objective([FAST], fixed, space, "val/class_acc/Unicorn", True, tmp_path / "sweep")
    with pytest.raises(ConfigError, match="val/class_acc/Unicorn is never logged"):
        unknown.check([{key: 0.01}, {key: 0.1}], tmp_path / "unicorn")


def test_a_trial_whose_values_fit_refuses_ends_failed_in_the_parsers_words(tiny_data, tmp_path):
    """Values the check before the trials did not try together (here a space given to the study as it
    is) that fit's parser refuses: the trial ends failed with a ConfigError in the parser's words, as
    another mistake in a trial does, not left running by the parser's exit."""
    study = open_study(f"sqlite:///{tmp_path / 'study.db'}", "refused", "maximize", "median", 30, seed=0)
    space = {"data.batch_size": Dimension("categorical", {"choices": [20, "abc"]})}
    study.enqueue_trial({"data.batch_size": "abc"})
    fixed = [f"--{setting}" for setting in settings(tiny_data)]
    objective = Objective([FAST], fixed, space, "val/acc", True, tmp_path / "sweep")
    with pytest.raises(
        ConfigError, match='Parser key "data.batch_size": Expected a <class .int.>. Got value: abc'
    ):
        study.optimize(objective, n_trials=1)
    assert [trial.state for trial in study.trials] == [TrialState.FAIL]


def test_a_flags_prefix_is_refused_not_taken_for_the_flag(tmp_path, capsys):
    """``--trial 3`` is no ``--trials 3``: argparse would take it so, and run other trials than asked."""
    with pytest.raises(SystemExit) as exit_info:
        sweep(["--space", str(tmp_path / "space.yaml"), "--trial", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --trial 3" in capsys.readouterr().err


def test_a_trials_record_goes_into_its_run_folder_or_the_trials_own(tmp_path):
    params, values = {"data.batch_size": 20}, [0.5]
    assert record(tmp_path / "trial_0", 0, "pruned", params, values, "diverged") == tmp_path / "trial_0"
    (tmp_path / "trial_1/version_0").mkdir(parents=True)
    assert record(tmp_path / "trial_1", 1, "complete", params, values) == tmp_path / "trial_1/version_0"
    said = yaml.safe_load((tmp_path / "trial_0/trial.yaml").read_text())
    assert said == {"trial": 0, "state": "pruned", "params": params, "metric_per_validation": values,
                    "why": "diverged"}  # fmt: skip


def test_kill_9_then_the_same_command_goes_on_to_n_trials(tiny_data, tmp_path, space):
    root = tmp_path / "sweep"
    args = [SWEEP, *command(tiny_data, root, space, "--trials=3", "--heartbeat=1", epochs=3)]
    worker = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (root / "trial_1" / "version_0").is_dir() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.send_signal(signal.SIGKILL)  # mid-trial: no handler runs, the trial stays "running"
        worker.wait()
    time.sleep(3)  # two heartbeats of silence: the killed trial is stale
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    study = load(f"sqlite:///{root / 'study.db'}")
    assert len(study.get_trials(states=FINISHED)) == 3
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [trial.number for trial in failed] == [1], "the killed trial, marked failed"
    retried = [t for t in study.trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 1]
    assert len(retried) == 1 and retried[0].params == failed[0].params and retried[0].state in FINISHED


def test_sigterm_stops_the_sweep_in_one_line_and_its_trial_runs_again(tiny_data, tmp_path):
    """A pre-empted job: the trial stops after its step, and the next run takes up its values, a
    categorical of lists among them (Optuna holds those as JSON text)."""
    space = tmp_path / "space.yaml"
    widths = {"type": "categorical", "choices": [[8, 16, 32], [16, 16, 16]]}
    space.write_text(yaml.safe_dump({**SPACE, "model.net.init_args.widths": widths}))
    root = tmp_path / "sweep"
    args = [SWEEP, *command(tiny_data, root, space, "--trials=3", epochs=8)]
    worker = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    training = root / "trial_1" / "version_0" / "checkpoints" / "last.ckpt"  # its first epoch is done
    while not training.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "the same command goes on with that trial's values" in stderr and "Traceback" not in stderr
    said = yaml.safe_load((root / "trial_1/version_0/trial.yaml").read_text())
    assert said["state"] == "stopped"
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    study = load(f"sqlite:///{root / 'study.db'}")
    assert len(study.get_trials(states=FINISHED)) == 3
    stopped = {key: as_text(value) for key, value in said["params"].items()}
    again = [trial for trial in study.get_trials(states=FINISHED) if trial.params == stopped]
    assert len(again) == 1 and again[0].number > 1


def run_two_workers(tiny_data: Path, root: Path, space: Path, storage: str) -> optuna.Study:
    args = [SWEEP, *command(tiny_data, root, space, "--trials=4", f"--storage={storage}")]
    workers = [
        subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-2000:]
    study = load(storage)
    numbers = [trial.number for trial in study.trials]
    assert len(numbers) == len(set(numbers)) and len(study.get_trials(states=FINISHED)) >= 4
    folders = sorted(p.name for p in root.glob("trial_*"))
    assert folders == sorted(f"trial_{n}" for n in numbers), "one run folder per trial, none run twice"
    assert all(len(list((root / f).glob("version_*"))) == 1 for f in folders)
    return study


def test_two_workers_share_a_sqlite_study_and_run_no_trial_twice(tiny_data, tmp_path, space):
    root = tmp_path / "sweep"
    run_two_workers(tiny_data, root, space, f"sqlite:///{root / 'study.db'}")


@pytest.fixture(scope="module")
def postgresql() -> str:
    """A PostgreSQL server of the test's own on 127.0.0.1, with a database ``sweeps``. Skipped, saying
    why, where no server is installed; ``.ci/run`` installs one and sets FASHION_LIGHTNING_NEEDS_POSTGRESQL,
    which turns the skip into a failure."""
    servers = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not servers:
        message = "no PostgreSQL server: apt-get install postgresql (.ci/run does)"
        if os.environ.get("FASHION_LIGHTNING_NEEDS_POSTGRESQL"):
            pytest.fail(message)
        pytest.skip(message)
    bin_dir = servers[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="postgres-"))  # outside pytest's root-only folder
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres")
    port = _free_port()
    initdb = [str(bin_dir / "initdb"), "-D", f"{folder}/data", "--auth=trust", "-U", "postgres"]
    subprocess.run([*as_postgres, *initdb], check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    pg_ctl = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", f"{folder}/data", "-l", f"{folder}/log"]
    subprocess.run([*pg_ctl, "-o", options, "-w", "start"], check=True, capture_output=True)
    try:
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "sweeps"]
        subprocess.run(createdb, check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_postgresql_study_and_run_no_trial_twice(tiny_data, tmp_path, space, postgresql):
    study = run_two_workers(tiny_data, tmp_path / "sweep", space, postgresql)
    assert study.best_value > 0


@pytest.mark.parametrize(
    ("space_text", "extra", "message"),
    [
        ("model.no_such_key: {type: float, low: 0, high: 1}", [], "does not fit the fit command"),
        ("model.label_smoothing: {type: float, low: 0.3, high: 0.1}", [], "low 0.3 is above high 0.1"),
        ("model.label_smoothing: {type: float, low: abc, high: 0.1}", [], "low must be a number, got 'abc'"),
        ("data.batch_size: {type: float, low: 16, high: 64}", [], 'Parser key "data.batch_size"'),
        ("model.label_smoothing: {type: normal, mean: 0}", [], "needs a type: float, int or categorical"),
        ("data.batch_size: {type: categorical, choices: 64}", [], "a categorical takes only a non-empty"),
        ("model.label_smoothing: {type: float, low: 0, high: 0.2}", ["--metric=val/nothing"],
         "--metric val/nothing is never logged"),
        ("[not, a, mapping]", [], "must map fit keys to distributions"),
        ("model.label_smoothing: {type: float, low: 0, high: 0.2}", ["--seed=-1"],
         "--seed must be 0 or more, got -1"),
        ("model.label_smoothing: {type: float, low: 0.0, high: 50.0}", [],
         "values ({'model.label_smoothing': 50.0}) do not fit: model.label_smoothing must be in [0, 1)"),
        ("data.batch_size: {type: categorical, choices: [20, abc, 40]}", [], 'Parser key "data.batch_size"'),
        ("model.label_smoothing: {type: categorical, choices: [0.0, 5.0, 0.1]}", [],
         "values ({'model.label_smoothing': 5.0}) do not fit: model.label_smoothing must be in [0, 1)"),
        ("model.net.init_args.dropout: {type: categorical, choices: [0.1, 1.5, 0.2]}", [],
         "values ({'model.net.init_args.dropout': 1.5}) do not fit: model.net: dropout probability"),
        ("data.batch_size: {type: categorical, choices: [20, 40, 20.0]}", [],
         "the choices 20 and 20.0 are the same to Optuna"),
        ("data.augment.crop_padding: {type: int, low: 0, high: 28}", [],
         "values ({'data.augment.crop_padding': 28}) do not fit: data.augment.crop_padding=28 can move"),
    ],
    ids=["unknown key", "low above high", "not a number", "wrong type", "unknown type", "no choices",
         "metric", "not a mapping", "negative seed", "high end", "a middle choice",
         "a middle choice a class refuses", "a choice the net refuses", "equal choices",
         "a value the data refuses"],
)  # fmt: skip
def test_bad_search_spaces_get_one_line_before_any_trial(
    space_text, extra, message, tiny_data, tmp_path, capsys
):
    space = tmp_path / "space.yaml"
    space.write_text(space_text)
    root = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_info:
        sweep(command(tiny_data, root, space, "--trials=2", *extra))
    said = str(exit_info.value)
    assert said.startswith("error: ") and message in said, said
    assert "Traceback" not in capsys.readouterr().err
    assert not root.exists(), "no trial started, no study.db or study made"


def test_a_study_resumed_with_other_choices_is_refused_in_one_line(tiny_data, tmp_path, space, capsys):
    """Optuna cannot change a categorical's choices within a study; ranges may move."""
    root = tmp_path / "sweep"
    sweep(command(tiny_data, root, space, "--trials=1", "--seed=0"))
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        yaml.safe_dump({**SPACE, "data.batch_size": {"type": "categorical", "choices": [20, 80]}})
    )
    with pytest.raises(SystemExit) as exit_info:
        sweep(command(tiny_data, root, changed, "--trials=2", "--study-name=space"))
    said = str(exit_info.value)
    assert (
        "data.batch_size's choices [20, 80] differ from those of the study's earlier trials ([20, 40])"
        in said
    )
    assert "Traceback" not in capsys.readouterr().err
    assert len(load(f"sqlite:///{root / 'study.db'}").trials) == 1, "no trial started"


def test_a_seeded_sweep_in_threads_gives_each_trial_the_values_of_its_number(tmp_path):
    """``study.optimize(n_jobs=4)`` runs trials in threads of one process: each draws from its own
    ``(seed, trial number)``, as one worker's trials do, not from another running trial's generator."""

    def objective(trial: optuna.Trial) -> float:
        first = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        time.sleep(0.01)  # the other threads start their trials meanwhile
        return first + trial.suggest_int("width", 8, 256)

    def values(n_jobs: int) -> dict[int, dict]:
        storage = f"sqlite:///{tmp_path / f'{n_jobs}.db'}"
        study = open_study(storage, "threads", "maximize", "none", heartbeat=60, seed=7)
        study.optimize(objective, n_trials=8, n_jobs=n_jobs)
        return {trial.number: trial.params for trial in study.trials}

    assert values(n_jobs=4) == values(n_jobs=1)
