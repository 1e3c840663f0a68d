"""The ``fashion-lightning`` CLI, run for real on tiny data: fit, checkpoints, TensorBoard, resume, test."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks.progress.progress_bar import get_standard_metrics
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_idx import write_tiny_fashion_mnist, write_tiny_idx
from torchvision import datasets

from fashion_lightning import models
from fashion_lightning.cli import FashionLightningCLI, main
from fashion_lightning.data import FashionMNIST
from fashion_lightning.data.fashion_mnist_copies import ENV_VAR
from fashion_lightning.models import BaselineNet, ConvBNNet, DropoutNet

REPO = Path(__file__).resolve().parents[1]
# every experiment the README names: configs given together are layered, later ones override
EXPERIMENTS = ["fast", "fast+best", "fast+best_gpu", "fast+dropout_tuned", "dropout", "baseline"]
DATA_SETS = ["mnist", "kmnist"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def config_args(experiment: str) -> list[str]:
    """``fast+best`` -> ``--config configs/fast.yaml --config configs/best.yaml``."""
    return [
        arg for name in experiment.split("+") for arg in ("--config", str(REPO / "configs" / f"{name}.yaml"))
    ]


def data_args(data_dir: Path) -> list[str]:
    return [f"--data.source.root={data_dir}", "--data.source.download=false"]


def cli(subcommand: str, config: str, data_dir: Path, root: Path, *extra: str) -> FashionLightningCLI:
    """One CLI run on tiny data: 200 training images in batches of 20, so an epoch is 10 steps."""
    data = [*data_args(data_dir), "--data.val_size=40"]
    args = [subcommand, *config_args(config), *data, f"--trainer.default_root_dir={root}", *QUIET, *extra]
    return FashionLightningCLI(args=args)


def scalars(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 2-epoch fit of the baseline config on tiny data, shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("trained")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    root = tmp / "runs"
    run = cli("fit", "baseline", data_dir, root, "--trainer.max_epochs=2", "--trainer.log_every_n_steps=5")
    return {"data_dir": data_dir, "root": root, "run_dir": root / "version_0", "cli": run}


def test_every_config_file_is_used_by_an_experiment_or_is_a_data_set():
    named = {name for experiment in EXPERIMENTS for name in experiment.split("+")} | set(DATA_SETS)
    assert named | {"image_folder"} == {p.stem for p in (REPO / "configs").glob("*.yaml")}


@pytest.mark.parametrize("experiment", EXPERIMENTS + [f"fast+{data}" for data in DATA_SETS])
def test_every_experiment_parses(experiment, capsys, recwarn):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *config_args(experiment), "--print_config"])
    assert exit_info.value.code == 0
    # the command is main's args, not pytest's sys.argv (as for scripts and the sweep, in process)
    assert not [w for w in recwarn if "args parameter is intended" in str(w.message)]
    printed = yaml.safe_load(capsys.readouterr().out)
    net = printed["model"]["net"]
    assert net["class_path"].startswith("fashion_lightning.models.")
    # the net gets the layers' settings and its own defaults, nothing carried over from another net
    written = {}
    for name in experiment.split("+"):
        layer_net = (
            yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text()).get("model", {}).get("net", {})
        )
        if layer_net.get("class_path", net["class_path"]) != net["class_path"]:
            continue
        written = {**written, **layer_net.get("init_args", {})}
    signature = inspect.signature(getattr(models, net["class_path"].rsplit(".", 1)[1]))
    for name, value in net["init_args"].items():
        expected = written.get(name, signature.parameters[name].default)
        assert value == (list(expected) if isinstance(expected, tuple) else expected), name
    assert printed["seed_everything"] == 42 and printed["trainer"]["devices"] == 1
    assert printed["best_checkpoint"]["monitor"] == "val/acc"
    assert printed["last_checkpoint"]["filename"] == "last"
    data_set = experiment.split("+")[-1]
    if data_set in DATA_SETS:
        assert printed["data"]["source"]["class_path"] == f"fashion_lightning.data.{data_set.upper()}"
        assert printed["data"]["augment"]["hflip"] is False, "a mirrored digit or character is another one"


@pytest.mark.parametrize(
    "config, net",
    [
        ("baseline", BaselineNet),
        ("dropout", DropoutNet),
        ("fast+dropout_tuned", DropoutNet),
        ("fast", ConvBNNet),
        ("fast+best", ConvBNNet),
    ],  # fmt: skip
)
def test_fast_dev_run_of_each_config(config, net, tiny_data, tmp_path):
    run = cli("fit", config, tiny_data, tmp_path / "runs", "--trainer.fast_dev_run=true")
    assert isinstance(run.model.net, net)
    assert run.trainer.global_step == 1


@pytest.mark.parametrize("data_set, name", [("mnist", "MNIST"), ("kmnist", "KMNIST")])
def test_mnist_and_kmnist_train_from_their_configs(data_set, name, tmp_path, capsys):
    write_tiny_idx(tmp_path / "data", name)
    run = cli("fit", f"fast+{data_set}", tmp_path / "data", tmp_path / "runs", "--trainer.max_epochs=1")
    assert run.trainer.global_step == 2  # 200 training images in batches of 128
    checkpoint = torch.load(tmp_path / "runs/version_0/checkpoints/last.ckpt", weights_only=True)
    contract = checkpoint["hyper_parameters"]["input_contract"]
    assert contract["classes"] == tuple(getattr(datasets, name).classes) and contract["size"] == (28, 28)
    cli("test", f"fast+{data_set}", tmp_path / "data", tmp_path / "runs", "--ckpt_path=best")
    first_class = getattr(datasets, name).classes[0]
    assert re.search(rf"Test Accuracy of +{first_class}:", capsys.readouterr().out)


def test_fit_writes_best_and_last_checkpoints_and_config_under_the_run_folder(trained, tmp_path):
    run_dir = trained["run_dir"]
    assert sorted(p.name for p in trained["root"].iterdir()) == ["version_0"]
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in names and len(names) == 2
    best = next(n for n in names if n != "last.ckpt")
    assert best.startswith("epoch=") and "val_acc=" in best
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["net"]["class_path"] == "fashion_lightning.models.BaselineNet"
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 20)
    assert get_standard_metrics(trained["cli"].trainer) == {"v_num": 0}  # the progress bar's run number


def test_tensorboard_events_hold_per_class_curves_and_the_confusion_matrix(trained):
    events = scalars(trained["run_dir"])
    tags = set(events.Tags()["scalars"])
    for stage_metric in (
        "train/loss",
        "train/loss_step",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/f1",
        "val/acc_best",
    ):
        assert stage_metric in tags
    for name in CLASSES:
        assert {f"val/class_acc/{name}", f"val/class_precision/{name}", f"val/class_f1/{name}"} <= tags
    assert [e.step for e in events.Scalars("val/acc")] == [9, 19]
    assert "val/confusion_matrix" in events.Tags()["images"]
    best = [e.value for e in events.Scalars("val/acc_best")]
    assert [e.value for e in events.Scalars("hp_metric")][-1] == best[-1] != -1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tensorboard_server_serves_the_per_class_curves(trained):
    port = _free_port()
    tensorboard = Path(sys.executable).parent / "tensorboard"
    server = subprocess.Popen(
        [str(tensorboard), "--logdir", str(trained["root"]), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/tags"
        deadline = time.monotonic() + 90
        while True:
            try:
                runs = json.load(urllib.request.urlopen(url, timeout=5))
                if runs.get("version_0"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not serve the run in 90 s"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert {"val/class_acc/Shirt", "val/class_f1/Ankle boot", "train/loss"} <= set(runs["version_0"])


def test_test_with_best_checkpoint_prints_the_notes_table_for_the_checkpoints_net(trained, tmp_path, capsys):
    # a config naming another net: the checkpoint's own hyperparameters must rebuild its BaselineNet
    run = cli("test", "dropout", trained["data_dir"], trained["root"], "--ckpt_path=best")
    assert isinstance(run.model.net, BaselineNet)
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("Test Accuracy")]
    assert (
        len(lines) == 11 and "Test Accuracy of Shirt:" in printed and "Test Accuracy (Overall):" in lines[-1]
    )

    # the reported accuracy is the checkpoint's model, evaluated here without Lightning
    best_path = run.config["test"]["ckpt_path"]
    checkpoint = torch.load(best_path, weights_only=True)
    contract = checkpoint["hyper_parameters"]["input_contract"]
    net = BaselineNet(1, (28, 28), 10)
    state = checkpoint["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    test = FashionMNIST(str(trained["data_dir"])).load(train=False)
    images, labels = test.images, test.labels
    with torch.no_grad():
        logits = net((images.float() / 255 - contract["mean"][0]) / contract["std"][0])
    correct = int((logits.argmax(1) == labels).sum())
    assert f"Test Accuracy (Overall): {100 * correct // 60:2d}% ({correct}/60)" in printed
    assert run.trainer.callback_metrics["test/acc"].item() == pytest.approx(correct / 60)
    assert (trained["run_dir"] / "config.yaml").read_text().count("BaselineNet") == 1, "fit's config kept"


def test_resume_from_last_continues_epoch_step_and_run_folder(tiny_data, tmp_path):
    root = tmp_path / "runs"
    cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=1")
    resumed = cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=3", "--ckpt_path=last")
    assert resumed.trainer.current_epoch == 3 and resumed.trainer.global_step == 30
    assert sorted(p.name for p in root.iterdir()) == ["version_0"], "no new version folder"
    events = scalars(root / "version_0")
    assert [e.step for e in events.Scalars("val/acc")] == [9, 19, 29]
    assert [e.step for e in events.Scalars("train/acc")] == [9, 19, 29]

    # an explicit path resumes into the folder it came from, too; a plain fit starts a new run
    epoch_1 = next((root / "version_0" / "checkpoints").glob("epoch=*"))
    cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=4", f"--ckpt_path={epoch_1}")
    cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=1")
    assert sorted(p.name for p in root.iterdir()) == ["version_0", "version_1"]


def test_a_fit_and_its_resume_say_nothing_a_user_cannot_act_on(tiny_data, tmp_path):
    """Lightning's advertisement for its cloud logger, its own use of an API torch deprecated, its note
    on the bf16 model summary, and its warning that a resumed run's checkpoint folder is not empty (it
    is the run's own); as a user sees them, in a process of its own."""
    command = [str(Path(sys.executable).parent / "fashion-lightning"), "fit", *config_args("dropout")]
    command += [*data_args(tiny_data), "--data.val_size=40", f"--trainer.default_root_dir={tmp_path}"]
    command += ["--trainer.precision=bf16-mixed", "--trainer.enable_progress_bar=false"]
    said = ""
    for extra in (["--trainer.max_epochs=1"], ["--trainer.max_epochs=2", "--ckpt_path=last"]):
        done = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        said += done.stdout + done.stderr
    for noise in ("litlogger", "LeafSpec", "exists and is not empty", "not supported by the model summary"):
        assert noise not in said, noise


def test_last_of_a_copied_run_is_its_last_checkpoint_whichever_file_was_written_later(tiny_data, tmp_path):
    """A copy (cp -r, scp, a download) gives the files new times, in no set order: a resume from the best
    checkpoint would train the later epochs again and overwrite last.ckpt."""
    cli("fit", "dropout", tiny_data, tmp_path / "runs", "--trainer.max_epochs=2")
    shutil.copytree(tmp_path / "runs", tmp_path / "copy")
    checkpoints = tmp_path / "copy" / "version_0" / "checkpoints"
    best = next(checkpoints.glob("epoch=*"))
    os.utime(best, (time.time() + 60, time.time() + 60))
    resumed = cli(
        "fit", "dropout", tiny_data, tmp_path / "copy", "--trainer.max_epochs=3", "--ckpt_path=last"
    )
    assert resumed.config["fit"]["ckpt_path"] == str(checkpoints / "last.ckpt")
    assert resumed.trainer.global_step == 30


def test_last_after_a_run_that_saved_nothing_is_not_the_run_before_it(tiny_data, tmp_path, capsys):
    """A start killed before its first checkpoint (kill -9 while an image folder decodes) leaves a run
    folder without one: the same command again starts anew, as it did, and does not go on with (or
    test) the earlier run under the root, trained with other settings."""
    root = tmp_path / "runs"
    cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=1")
    (root / "version_1").mkdir()  # all a killed start leaves: its folder and its lock file
    (root / "version_1" / "run.lock").touch()
    (root / "version_9").mkdir()  # a test's folder (a checkpoint from elsewhere, or another logger's)
    capsys.readouterr()
    again = cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=2", "--ckpt_path=last")
    said = capsys.readouterr().err
    assert "the latest run under" in said and "version_1, saved no checkpoint" in said
    assert said.count("Starting a new run.") == 1
    assert again.trainer.global_step == 20 and (root / "version_10" / "checkpoints" / "last.ckpt").is_file()
    (root / "version_11").mkdir()
    (root / "version_11" / "run.lock").touch()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "test",
                *config_args("dropout"),
                *data_args(tiny_data),
                f"--trainer.default_root_dir={root}",
                "--ckpt_path=best",
            ]
        )
    assert "version_11, saved no checkpoint" in str(exit_info.value.code)
    assert f"give a checkpoint of {root / 'version_10' / 'checkpoints'}" in str(exit_info.value.code)


def test_a_run_under_a_relative_root_resumes_with_its_best_checkpoint_kept(
    tiny_data, tmp_path, monkeypatch, recwarn
):
    """The configs' roots are relative (runs/fast). A resume must find its checkpoint callbacks' folder
    the same as the fit's, or Lightning drops their record of the best score: the resumed run then
    keeps a second "best" file, and --ckpt_path best can take the worse."""
    monkeypatch.chdir(tmp_path)
    cli("fit", "dropout", tiny_data, Path("runs"), "--trainer.max_epochs=1")
    recwarn.clear()
    resumed = cli("fit", "dropout", tiny_data, Path("runs"), "--trainer.max_epochs=3", "--ckpt_path=last")
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]
    best = list(Path("runs/version_0/checkpoints").glob("epoch=*"))
    assert len(best) == 1, best
    assert Path(resumed.trainer.checkpoint_callback.best_model_path).resolve() == best[0].resolve()


def test_a_run_resumes_from_its_own_saved_config(tiny_data, tmp_path, capsys):
    root = tmp_path / "runs"
    cli("fit", "baseline", tiny_data, root, "--trainer.max_epochs=1")
    saved = root / "version_0" / "config.yaml"
    args = ["fit", "--config", str(saved), "--ckpt_path=last", "--trainer.max_epochs=2", *QUIET]
    resumed = FashionLightningCLI(args=args)
    assert resumed.trainer.global_step == 20
    assert yaml.safe_load(saved.read_text())["trainer"]["max_epochs"] == 2, "config.yaml re-saved in place"
    assert "note: a resumed fit" not in capsys.readouterr().err, "the run's own settings: nothing to say"

    # settings the checkpoint's replace are named, not dropped without a word
    changed = ["--model.label_smoothing=0.3", "--model.optimizer.init_args.lr=0.5"]
    FashionLightningCLI(args=[*args[:-2], "--trainer.max_epochs=3", *QUIET, *changed])
    err = capsys.readouterr().err
    assert "not applied: model.optimizer.init_args.lr 0.5 (the checkpoint's: 0.001), " in err
    assert "model.label_smoothing 0.3 (the checkpoint's: 0.0)" in err


def test_resume_with_nothing_to_resume_starts_a_new_run(tiny_data, tmp_path, capsys):
    run = cli("fit", "dropout", tiny_data, tmp_path / "runs", "--trainer.max_epochs=1", "--ckpt_path=last")
    assert run.trainer.global_step == 10
    assert "no checkpoint under" in capsys.readouterr().err


def test_everything_goes_under_default_root_dir(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli("fit", "baseline", tiny_data, tmp_path / "elsewhere", "--trainer.max_epochs=1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "elsewhere"]


def test_run_false_builds_the_objects_for_calling_fit_and_test_in_python(tiny_data, tmp_path):
    # LightningCLI(run=False) is Lightning's way to use a config from a notebook or a script
    data = [*data_args(tiny_data), "--data.val_size=40"]
    root = tmp_path / "runs"
    args = [*config_args("dropout"), *data, f"--trainer.default_root_dir={root}", "--trainer.max_epochs=1"]
    run = FashionLightningCLI(args=[*args, *QUIET], run=False)
    run.trainer.fit(run.model, datamodule=run.datamodule)
    assert run.trainer.global_step == 10
    checkpoints = {p.name for p in (root / "version_0" / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and len(checkpoints) == 2
    assert (root / "version_0" / "config.yaml").is_file()
    results = run.trainer.test(run.model, datamodule=run.datamodule, ckpt_path="best", verbose=False)
    assert 0.0 <= results[0]["test/acc"] <= 1.0


def test_test_and_predict_of_a_checkpoint_elsewhere_make_no_stray_folders(
    tiny_data, tmp_path, monkeypatch, recwarn
):
    runs = tmp_path / "runs"
    cli("fit", "dropout", tiny_data, runs, "--trainer.max_epochs=1")
    recwarn.clear()
    checkpoint = runs / "version_0" / "checkpoints" / "last.ckpt"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # test logs into the checkpoint's run folder, wherever default_root_dir points
    cli("test", "dropout", tiny_data, work / "elsewhere", f"--ckpt_path={checkpoint}")
    assert "test/acc" in scalars(runs / "version_0").Tags()["scalars"]
    # predict, as the README's first example (no config, no root): the CSV and nothing else
    FashionLightningCLI(args=["predict", f"--ckpt_path={checkpoint}", *data_args(tiny_data), *QUIET])
    assert sorted(p.name for p in work.iterdir()) == ["predictions.csv"]
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]
    said = [str(w.message) for w in recwarn]
    assert not [w for w in said if "dirpath has changed" in w], "no checkpoint callback outside fit"


def test_validate_and_test_of_a_checkpoint_log_at_its_step_in_the_runs_curves(tiny_data, tmp_path):
    root = tmp_path / "runs"
    cli("fit", "baseline", tiny_data, root, "--trainer.max_epochs=2")
    trained = scalars(root / "version_0")
    fitted = {tag: [(e.step, e.value) for e in trained.Scalars(tag)] for tag in ("val/acc_best", "hp_metric")}
    cli("validate", "baseline", tiny_data, root, "--ckpt_path=best")
    cli("test", "baseline", tiny_data, root, "--ckpt_path=last")
    events = scalars(root / "version_0")
    # at the end of the fit, not at step 0, left of the whole training curve: a validation on the fit's
    # own validation of the same weights (step 19), a test where Lightning logs one right after a fit
    # (its global step, 20)
    assert [e.step for e in events.Scalars("val/acc")] == [9, 19, 19]
    assert events.Scalars("val/acc")[2].value == events.Scalars("val/acc")[1].value
    assert [e.step for e in events.Scalars("test/acc")] == [20]
    # validating one checkpoint finds no best over epochs: the run's best and its HParams entry stay
    for tag, values in fitted.items():
        assert [(e.step, e.value) for e in events.Scalars(tag)] == values, tag
    # a resumed fit's weights move on from its checkpoint's: a test of them after it is at its end
    resumed = cli("fit", "baseline", tiny_data, root, "--trainer.max_epochs=3", "--ckpt_path=last")
    resumed.trainer.test(resumed.model, datamodule=resumed.datamodule, ckpt_path=None, verbose=False)
    assert [e.step for e in scalars(root / "version_0").Scalars("test/acc")] == [20, 30]


def test_bf16_mixed_precision_trains(tiny_data, tmp_path):
    run = cli(
        "fit", "dropout", tiny_data, tmp_path, "--trainer.fast_dev_run=true", "--trainer.precision=bf16-mixed"
    )
    assert run.trainer.precision == "bf16-mixed"


def test_predict_returns_class_probabilities(trained):
    output = f"--predictions.output={trained['root'] / 'predictions.csv'}"
    run = cli("predict", "baseline", trained["data_dir"], trained["root"], "--ckpt_path=last", output)
    probabilities = torch.cat(run.trainer.predict_loop.predictions)
    assert probabilities.shape == (60, 10)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(60))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ckpt_path=best"], "no run with checkpoints under"),
        (["--ckpt_path=missing.ckpt"], "checkpoint missing.ckpt does not exist"),
        (["--ckpt_path=."], "checkpoint . is a folder: give a .ckpt file (it holds none) or 'last'/'best'"),
        ([], "test scores a trained model: give --ckpt_path, a .ckpt file or last/best for the latest run"),
    ],
)
def test_missing_checkpoints_end_with_a_clear_message(extra, message, tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `.` holds no checkpoint, wherever the tests run from
    args = ["test", *config_args("dropout"), *data_args(tiny_data)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"--trainer.default_root_dir={tmp_path}", *extra])
    assert message in str(exit_info.value.code)


def test_a_run_folder_given_as_checkpoint_is_answered_with_its_newest_checkpoint(trained):
    with pytest.raises(SystemExit) as exit_info:
        main(["test", f"--ckpt_path={trained['root']}", *data_args(trained["data_dir"])])
    newest = trained["run_dir"] / "checkpoints" / "last.ckpt"
    assert f"is a folder: give a .ckpt file in it, such as {newest}, or 'last'" in str(exit_info.value)


def test_a_new_run_never_overwrites_the_checkpoints_of_an_earlier_one(tiny_data, tmp_path):
    """Without a logger, runs share <root>/checkpoints: a second fit there is refused before it writes
    anything; going on with the first (--ckpt_path last) is not."""
    args = ["fit", *config_args("dropout"), *data_args(tiny_data), "--data.val_size=40", *QUIET]
    args += [f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false"]
    args += ["--trainer.limit_train_batches=2"]
    main([*args, "--trainer.max_epochs=1"])
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = last.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--trainer.max_epochs=1"])
    assert f"{tmp_path / 'checkpoints'} holds an earlier run's checkpoints" in str(exit_info.value.code)
    assert last.read_bytes() == saved
    main([*args, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert torch.load(last, weights_only=True)["epoch"] == 1


def test_a_checkpoint_folder_shared_by_runs_is_refused_without_leaving_a_run_folder(tiny_data, tmp_path):
    """With a checkpoint folder set in the config, each run's TensorBoard folder is its own but its
    checkpoints are not: a second fit is refused, and its new version_N folder goes with it."""
    shared = tmp_path / "shared"
    args = ["fit", *config_args("dropout"), *data_args(tiny_data), "--data.val_size=40", *QUIET]
    args += [f"--trainer.default_root_dir={tmp_path / 'runs'}", f"--last_checkpoint.dirpath={shared}"]
    main([*args, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--trainer.max_epochs=1"])
    assert f"{shared} holds an earlier run's checkpoints" in str(exit_info.value.code)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["version_0"]


def test_missing_data_offline_ends_with_the_three_ways(tmp_path, no_system_copies, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.FashionMNIST.mirrors", ["http://127.0.0.1:9/"])
    args = ["fit", *config_args("dropout"), f"--data.source.root={tmp_path / 'data'}"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}"])
    message = str(exit_info.value.code)
    assert message.startswith("error: FashionMNIST was not found")
    assert "--data.source.local_copy" in message and ENV_VAR in message and "dataset-fashion-mnist" in message


@pytest.mark.parametrize("command", [["fashion-lightning"], ["python", "-m", "fashion_lightning"]])
def test_console_script_and_module_offer_the_four_subcommands(command):
    executable = Path(sys.executable).parent / command[0] if command[0] != "python" else sys.executable
    done = subprocess.run(
        [str(executable), *command[1:], "--help"], capture_output=True, text=True, check=True
    )
    for subcommand in ("fit", "validate", "test", "predict"):
        assert subcommand in done.stdout


@pytest.mark.parametrize("subcommand", [[], ["fit"], ["test"]])
def test_help_names_verbose_which_error_messages_offer(subcommand, capsys):
    """Every error's last line says "--verbose shows the traceback"; --help says so too, though the
    flag is taken off the command line before the parser sees it."""
    with pytest.raises(SystemExit) as exit_info:
        main([*subcommand, "--help"])
    assert exit_info.value.code == 0
    assert "--verbose: on an error, show the Python traceback too" in capsys.readouterr().out


@pytest.mark.parametrize("subcommand", ["test", "predict"])
def test_testing_a_checkpoint_does_not_ask_for_its_checkpoint_callbacks_back(subcommand, trained, tmp_path):
    """Outside fit the checkpoint callbacks are left out on purpose (they write nothing there), which
    Lightning would warn about, as the checkpoint holds their state: a user is not asked to add them."""
    checkpoint = shutil.copy(
        trained["run_dir"] / "checkpoints" / "last.ckpt", tmp_path
    )  # the run stays as it is
    args = [subcommand, f"--ckpt_path={checkpoint}", *data_args(trained["data_dir"]), *QUIET]
    executable = Path(sys.executable).parent / "fashion-lightning"
    done = subprocess.run([str(executable), *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "callbacks used to create the checkpoint" not in done.stderr, done.stderr[-2000:]


def test_ddp_on_two_cpu_processes_shards_the_data(tmp_path, no_system_copies):
    """400 training images, 2 ranks, batches of 20: each rank takes its own 200, so 10 steps an epoch.
    Only rank 0 writes (one run folder, one event file, one set of checkpoints and pictures), and the
    result is in the range of a single process's with the same settings."""
    write_tiny_fashion_mnist(tmp_path / "data", n_train=440)
    args = [
        "fit",
        *config_args("fast"),
        "--data.source.root=data",
        "--data.val_size=40",
        "--data.batch_size=20",
        "--trainer.precision=32-true",
        "--trainer.max_epochs=2",
        "--pictures.every_n_epochs=1",
    ]
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]
    script = Path(sys.executable).parent / "fashion-lightning"
    subprocess.run(
        [str(script), *args, *ddp, "--trainer.default_root_dir=runs", *QUIET], cwd=tmp_path, check=True
    )
    run_dir = tmp_path / "runs" / "version_0"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["version_0"], "only rank 0 writes"
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert len(list((run_dir / "checkpoints").iterdir())) == 2, "the best and last.ckpt, written once"
    last = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 20)
    events = scalars(run_dir)
    assert {"val/predictions", "val/confusion_matrix", "filters/first_conv"} <= set(events.Tags()["images"])

    single = FashionLightningCLI(
        args=[
            *args,
            f"--data.source.root={tmp_path / 'data'}",
            f"--trainer.default_root_dir={tmp_path / 'single'}",
            *QUIET,
        ]
    )
    ddp_acc, single_acc = (
        events.Scalars("val/acc")[-1].value,
        single.trainer.callback_metrics["val/acc"].item(),
    )
    assert ddp_acc >= 0.8 and single_acc >= 0.8, (ddp_acc, single_acc)


def test_a_net_whose_last_maps_are_1x1_trains_on_an_epoch_that_would_end_in_one_image(tiny_data, tmp_path):
    """201 training images in batches of 40: the last image joins the batch before, as batch norm
    cannot train on one value per channel."""
    net = ["--model.net.init_args.widths=[8,8,8,8]", "--pictures.every_n_epochs=0"]  # 28 -> 14 -> 7 -> 3 -> 1
    run = cli(
        "fit",
        "fast",
        tiny_data,
        tmp_path,
        "--data.val_size=39",
        "--data.batch_size=40",
        "--trainer.max_epochs=1",
        *net,
    )
    assert run.trainer.global_step == 5 and run.trainer.current_epoch == 1


@pytest.mark.parametrize(
    ("extra", "unseen"),
    [
        (["--data.augment.hflip=false"], ["hflip mirrors, but"]),
        (["--model.test_time_augmentation.shifts=1"], ["shifts moves, but"]),
        (["--data.augment.hflip=false", "--model.test_time_augmentation.hflip=false"], []),
    ],
    ids=["mirrored views, no mirrored training", "moved views, no moved training", "neither"],
)
def test_a_fit_says_once_when_its_test_time_views_are_of_a_kind_it_never_trains_on(
    extra, unseen, tiny_data, tmp_path, capsys
):
    cli("fit", "fast", tiny_data, tmp_path, "--trainer.max_epochs=1", "--pictures.every_n_epochs=0", *extra)
    notes = [line for line in capsys.readouterr().err.splitlines() if "never trained on" in line]
    assert len(notes) == min(1, len(unseen)) and all(words in notes[0] for words in unseen), notes


def test_a_fit_without_validation_says_once_that_it_keeps_no_best_checkpoint(
    tiny_data, tmp_path, capsys, recwarn
):
    run = cli("fit", "dropout", tiny_data, tmp_path, "--data.val_size=0", "--trainer.max_epochs=2")
    assert (
        "note: data.val_size=0 holds no images out for validation, so no best checkpoint"
        in capsys.readouterr().err
    )
    assert not [w for w in recwarn if "could not find the monitored key" in str(w.message)]
    assert sorted(p.name for p in (tmp_path / "version_0/checkpoints").iterdir()) == ["last.ckpt"]
    assert run.trainer.current_epoch == 2
