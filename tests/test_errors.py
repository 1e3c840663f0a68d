"""Every mistake a user can make in a config meets a one-line message and a non-zero status, no traceback."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_idx import write_tiny_idx

from fashion_lightning.cli import main
from fashion_lightning.export import main as export_main
from fashion_lightning.models import DropoutNet
from fashion_lightning.viz.cli import main as viz_main

REPO = Path(__file__).resolve().parents[1]
QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--pictures.every_n_epochs=0",
]


ONE_CYCLE = ["--model.scheduler=torch.optim.lr_scheduler.OneCycleLR", "--model.scheduler_interval=step"]


def fit(tiny_data: Path, root: Path, *extra: str) -> None:
    args = [
        "fit",
        f"--config={REPO / 'configs/dropout.yaml'}",
        f"--data.source.root={tiny_data}",
        "--data.val_size=40",
    ]
    main([*args, f"--trainer.default_root_dir={root}", *QUIET, *extra])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data.batch_size=0"], "data.batch_size must be a positive number of images, got 0"),
        (
            ["--model.optimizer.lr=-1"],
            "model.optimizer: Invalid learning rate: -1.0; fix model.optimizer.init_args",
        ),
        (
            ["--data.val_size=300"],
            "data.val_size=300 leaves no training images: the training set has 240; give fewer, or a share",
        ),
        (["--model.optimizer.lr=1e9"], "training stopped before that step changed the weights"),
        (
            ["--model.net.init_args.dropout=1.5"],
            "model.net: dropout probability has to be between 0 and 1, but got 1.5; fix model.net.init_args",
        ),
        (
            [*ONE_CYCLE, "--model.scheduler.max_lr=-1"],
            "model.scheduler: it sets the learning rate to -0.04, which must be 0 or more; fix",
        ),
        (
            [*ONE_CYCLE, "--model.scheduler.max_lr=0.05", "--model.scheduler.pct_start=2"],
            "model.scheduler: Expected float between 0 and 1 pct_start, but got 2",
        ),
        (
            ["--data.augment.crop_padding=28"],
            "data.augment.crop_padding=28 can move 28x28 images wholly out of view: give fewer pixels",
        ),
        (
            ["--model.test_time_augmentation.shifts=30"],
            "test_time_augmentation.shifts=30 moves 28x28 images wholly out of view: give fewer pixels",
        ),
    ],
    ids=[
        "batch size 0",
        "negative learning rate",
        "validation larger than training",
        "loss becomes NaN",
        "dropout over 1",
        "negative peak rate",
        "warm-up share over 1",
        "training moves larger than the image",
        "test-time moves larger than the image",
    ],
)
def test_a_bad_setting_gets_one_clear_line(extra, message, tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit(tiny_data, tmp_path, *extra)
    assert str(exit_info.value).startswith("error: ") and message in str(exit_info.value)
    assert "Traceback" not in capsys.readouterr().err


def test_a_nan_loss_names_its_step_and_keeps_the_checkpoints_before_it(tiny_data, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        fit(tiny_data, tmp_path, "--model.optimizer.lr=1e9", "--last_checkpoint.every_n_train_steps=1")
    step = int(str(exit_info.value).split(" at step ")[1].split()[0])
    last = torch.load(tmp_path / "version_0/checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == step, "the last checkpoint is the one written before the bad step"


def test_a_fit_that_fails_before_its_first_step_leaves_no_run_folder(tiny_data, tmp_path):
    fit(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1")
    with pytest.raises(SystemExit, match="Invalid learning rate"):
        fit(tiny_data, tmp_path / "runs", "--model.optimizer.lr=-1")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["version_0"], "the earlier run stays"
    assert any((tmp_path / "runs/version_0/checkpoints").glob("*.ckpt"))
    # without a logger the run's folder is the root itself, which is never taken away
    (tmp_path / "own").mkdir()
    (tmp_path / "own/notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="Invalid learning rate"):
        fit(tiny_data, tmp_path / "own", "--model.optimizer.lr=-1", "--trainer.logger=false")
    assert (tmp_path / "own/notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("extra", "shown"),
    [
        (["--model.net=fashion_lightning.models.NoSuchNet"], "NoSuchNet"),
        (
            ["--trainer.max_epochs=abc"],
            "error: Parser key \"trainer.max_epochs\": Expected a <class 'int'>; given: abc\n",
        ),
        (
            ["--model.net.widht=3"],
            "error: Parser key \"model.net\": Option 'widht' is not accepted. Got value: ",
        ),
        (["--model.no_such_setting=1"], "no_such_setting"),
        (["--trainer.max_epoch", "1"], "unrecognized arguments: --trainer.max_epoch"),  # not max_epochs
    ],
    ids=["unknown net", "wrong type", "a net's setting misspelled", "unknown key", "a flag's prefix"],
)
def test_config_mistakes_are_reported_by_the_parser(extra, shown, tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit(tiny_data, tmp_path, *extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert shown in err and "Traceback" not in err
    assert not any(line.startswith("usage:") for line in err.splitlines())  # the mistake, not every option
    assert "Union subtypes" not in err  # nor every type a setting may take, None's among them


@pytest.mark.parametrize(
    ("command", "args"),
    [(export_main, ["--ckpt_path=x.ckpt", "--verb"]), (viz_main, ["batch", "--verb"])],
    ids=["export", "viz"],
)
def test_the_other_commands_refuse_a_flags_prefix(command, args, capsys):
    """Not taken for the flag it begins (--verbose), as fashion-lightning's own parser refuses it."""
    with pytest.raises(SystemExit) as exit_info:
        command(args)
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --verb" in capsys.readouterr().err


def test_test_into_a_folder_that_takes_no_files_is_refused_in_one_line(tiny_data, tmp_path, capsys):
    fit(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1")
    loose = tmp_path / "loose.ckpt"  # outside any run folder: test logs under default_root_dir
    loose.write_bytes((tmp_path / "runs/version_0/checkpoints/last.ckpt").read_bytes())
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the runs' folder should be")
    args = ["test", f"--config={REPO / 'configs/dropout.yaml'}", f"--data.source.root={tiny_data}"]
    with pytest.raises(SystemExit, match=f"trainer.default_root_dir: cannot write into {blocker / 'x'}"):
        main([*args, f"--trainer.default_root_dir={blocker / 'x'}", f"--ckpt_path={loose}", *QUIET])
    assert "Traceback" not in capsys.readouterr().err


def test_resuming_with_max_epochs_below_the_checkpoints_is_refused(tiny_data, tmp_path):
    fit(tiny_data, tmp_path, "--trainer.max_epochs=2")
    with pytest.raises(SystemExit, match="max_epochs 1 is below the 2 epochs the checkpoint"):
        fit(tiny_data, tmp_path, "--trainer.max_epochs=1", "--ckpt_path=last")


def test_resuming_a_one_cycle_run_with_more_epochs_is_refused_before_training(tiny_data, tmp_path):
    one_cycle = [
        "--model.scheduler=torch.optim.lr_scheduler.OneCycleLR",
        "--model.scheduler.max_lr=0.05",
        "--model.scheduler_interval=step",
    ]
    fit(tiny_data, tmp_path, *one_cycle, "--trainer.max_epochs=1")
    last, config = tmp_path / "version_0/checkpoints/last.ckpt", tmp_path / "version_0/config.yaml"
    saved, settings = last.read_bytes(), config.read_text()
    with pytest.raises(SystemExit) as exit_info:
        fit(tiny_data, tmp_path, *one_cycle, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert "schedule spans 10 steps, but this run has 20" in str(exit_info.value)
    assert last.read_bytes() == saved, "the checkpoint is left as it was"
    # and the run's config, which the message says to resume with: it names what the run trained
    assert config.read_text() == settings


def test_a_fit_from_another_runs_checkpoint_refused_before_its_first_step_leaves_no_run_folder(
    tiny_data, tmp_path
):
    """It starts at that checkpoint's step, not at 0, in a run folder of its own."""
    one_cycle = [
        "--model.scheduler=torch.optim.lr_scheduler.OneCycleLR",
        "--model.scheduler.max_lr=0.05",
        "--model.scheduler_interval=step",
    ]
    fit(tiny_data, tmp_path / "first", *one_cycle, "--trainer.max_epochs=1")
    elsewhere = f"--ckpt_path={tmp_path / 'first/version_0/checkpoints/last.ckpt'}"
    with pytest.raises(SystemExit, match="schedule spans 10 steps"):
        fit(tiny_data, tmp_path / "second", *one_cycle, "--trainer.max_epochs=2", elsewhere)
    assert not list((tmp_path / "second").glob("version_*"))


def test_verbose_shows_the_traceback(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="data.batch_size must be a positive number"):
        fit(tiny_data, tmp_path, "--data.batch_size=0", "--verbose")


@pytest.mark.parametrize("subcommand", ["fit", "test"])
def test_a_damaged_checkpoint_is_named(subcommand, tiny_data, tmp_path, capsys):
    fit(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1")
    good = (tmp_path / "runs/version_0/checkpoints/last.ckpt").read_bytes()
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(good[: len(good) // 2])  # as a copy cut short would leave it
    args = [subcommand, f"--config={REPO / 'configs/dropout.yaml'}", f"--data.source.root={tiny_data}"]
    with pytest.raises(SystemExit, match=f"cannot read checkpoint {damaged}"):
        main([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}", f"--ckpt_path={damaged}", *QUIET])
    assert "Traceback" not in capsys.readouterr().err


def write_torchscript(path: Path) -> None:
    with warnings.catch_warnings():  # torch.jit is deprecated, but fashion-lightning-export writes it
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(torch.nn.Linear(2, 2)).save(path)


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda path: path.write_bytes(b""), "an empty file (0 bytes)"),
        (lambda path: path.write_text("epoch: 3\n"), "not a file that torch.save writes"),
        (write_torchscript, "a TorchScript model, as fashion-lightning-export writes; the .json file"),
    ],
    ids=["empty", "text", "TorchScript model"],
)
def test_a_file_that_is_no_checkpoint_is_named_in_plain_words(write, reason, tiny_data, tmp_path):
    given = tmp_path / "model.pt"
    write(given)
    args = ["predict", f"--data.source.root={tiny_data}", f"--ckpt_path={given}", *QUIET]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert str(exit_info.value).startswith(f"error: cannot read checkpoint {given} ({reason}"), (
        exit_info.value
    )
    assert "mmap" not in str(exit_info.value) and "weights_only" not in str(exit_info.value)


@pytest.mark.parametrize("subcommand", ["fit", "test", "predict"])
def test_a_torch_file_that_is_not_a_lightning_checkpoint_is_named(subcommand, tiny_data, tmp_path, capsys):
    weights = tmp_path / "weights.pt"
    torch.save(DropoutNet(1, (28, 28), 10).state_dict(), weights)  # what the notes' loop saves
    args = [subcommand, f"--config={REPO / 'configs/dropout.yaml'}", f"--data.source.root={tiny_data}"]
    with pytest.raises(SystemExit, match=f"{weights} is a torch file but not a Lightning checkpoint"):
        main([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}", f"--ckpt_path={weights}", *QUIET])
    assert "Traceback" not in capsys.readouterr().err


def test_fit_without_a_network_says_how_to_give_one(tiny_data, tmp_path):
    args = ["fit", f"--data.source.root={tiny_data}", f"--trainer.default_root_dir={tmp_path}", *QUIET]
    with pytest.raises(SystemExit, match="model.net is not set: give a config"):
        main(args)
    assert not list(tmp_path.glob("version_*")), "no run folder for a run that never started"


@pytest.mark.parametrize("command", ["test", "predict", "export", "viz"])
def test_a_checkpoint_whose_net_cannot_be_imported_is_named(command, tiny_data, tmp_path, capsys):
    fit(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1")
    checkpoint = torch.load(tmp_path / "runs/version_0/checkpoints/last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["net"]["class_path"] = "my_module.MyNet"  # kept outside the package
    foreign = tmp_path / "foreign.ckpt"
    torch.save(checkpoint, foreign)
    with pytest.raises(SystemExit, match=r"holds the net my_module.MyNet, which cannot be imported here"):
        if command == "export":
            export_main([f"--ckpt_path={foreign}", f"--out={tmp_path / 'model.pt'}", "--format=torchscript"])
        elif command == "viz":
            viz_main(["filters", f"--ckpt_path={foreign}", f"--out={tmp_path / 'filters.png'}"])
        else:
            args = [command, f"--data.source.root={tiny_data}", f"--ckpt_path={foreign}", *QUIET]
            main([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}"])
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"source": {"class_path": "my_data.MySource", "init_args": {}}},
            r"was trained on the data source my_data.MySource, which cannot be imported here .*"
            r"put the module that defines it on PYTHONPATH, or give the data to use",
        ),
        (
            {"batch_sise": 64},
            r"the data settings saved in .*foreign.ckpt do not apply here: .*batch_sise.*; give the data",
        ),
    ],
    ids=["source not importable", "setting unknown here"],
)
def test_a_checkpoints_data_settings_that_cannot_be_used_are_named(
    change, message, tiny_data, tmp_path, capsys
):
    """test, validate and predict with no data settings given use the checkpoint's; settings that
    cannot be used here end in one line that says so, not in the parser's usage text."""
    fit(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1")
    checkpoint = torch.load(tmp_path / "runs/version_0/checkpoints/last.ckpt", weights_only=True)
    checkpoint["datamodule_hyper_parameters"].update(change)
    foreign = tmp_path / "foreign.ckpt"
    torch.save(checkpoint, foreign)
    with pytest.raises(SystemExit) as raised:
        main(["test", f"--ckpt_path={foreign}", f"--trainer.default_root_dir={tmp_path / 'runs'}", *QUIET])
    said = capsys.readouterr().err + str(raised.value.code)  # printed by the parser, or the exit's own
    assert re.search(message, said), said
    assert "Traceback" not in said and "usage:" not in said
    assert len([line for line in said.splitlines() if "error" in line.lower()]) == 1, said


def test_a_predictions_output_that_cannot_be_written_is_refused_before_predicting(
    tiny_data, tmp_path, capsys
):
    fit(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1")
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be")
    args = ["predict", f"--data.source.root={tiny_data}", f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    for output, message in (
        (tmp_path, "is a folder; give a file in it"),
        (blocker / "p.csv", "cannot write into"),
    ):
        with pytest.raises(SystemExit, match=f"predictions.output: .*{message}"):
            main([*args, "--ckpt_path=last", f"--predictions.output={output}", *QUIET])
    assert "Predicted" not in capsys.readouterr().out  # refused before the images were classified


def test_predicting_photos_without_a_checkpoint_says_to_give_one(tiny_data, tmp_path):
    Image.new("L", (40, 40), 200).save(tmp_path / "photo.png")
    args = ["predict", f"--config={REPO / 'configs/dropout.yaml'}", f"--data.source.root={tiny_data}"]
    with pytest.raises(SystemExit, match="needs a trained model: give --ckpt_path"):
        main([*args, f"--data.predict_images={tmp_path / 'photo.png'}", *QUIET])


@pytest.mark.parametrize(
    "subcommand, root", [("fit", "other"), ("fit", "runs"), ("test", "other")], ids=["fit", "resume", "test"]
)
def test_a_checkpoint_given_another_data_set_is_refused_naming_both(
    subcommand, root, tiny_data, tmp_path, capsys
):
    """A Fashion-MNIST checkpoint resumed or tested on MNIST: one line with both class lists."""
    fit(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1")
    write_tiny_idx(tiny_data, "MNIST")
    args = [
        subcommand,
        f"--config={REPO / 'configs/dropout.yaml'}",
        f"--config={REPO / 'configs/mnist.yaml'}",
    ]
    args += [f"--data.source.root={tiny_data}", "--data.source.download=false", "--data.val_size=40"]
    checkpoint = tmp_path / "runs/version_0/checkpoints/last.ckpt"
    files = set(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"--trainer.default_root_dir={tmp_path / root}", f"--ckpt_path={checkpoint}", *QUIET])
    message = str(exit_info.value)
    assert message.startswith(
        "error: the data does not fit the model: the model's classes are ['T-shirt/top'"
    )
    assert "the data's ['0 - zero'" in message and "config.yaml" in message
    assert "Traceback" not in capsys.readouterr().err
    # Lightning opens TensorBoard's file before the refusal: it went, as it held nothing
    assert not [path for path in set(tmp_path.rglob("*")) - files if "tfevents" in path.name]


def test_early_stopping_on_a_metric_never_logged_is_one_line(tiny_data, tmp_path, capsys):
    config = tmp_path / "early_stopping.yaml"
    config.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EarlyStopping\n"
        "      init_args: {monitor: val/accuracy, mode: max}\n"
    )
    with pytest.raises(
        SystemExit, match=r"trainer.callbacks: Early stopping conditioned on metric `val/accuracy`"
    ):
        fit(tiny_data, tmp_path / "runs", f"--config={config}", "--trainer.max_epochs=1")
    assert "Traceback" not in capsys.readouterr().err
