"""Every trainer flag Lightning documents for fit, test and predict works through the CLI, with the
CLI's own checkpoints, run folders, logger and pictures around it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from test_cli import cli, config_args, data_args

from fashion_lightning.cli import main

FLAGS = {
    "checkpointing off": ["--trainer.enable_checkpointing=false"],
    "logger off": ["--trainer.logger=false"],
    # another logger's runs (and checkpoints) go where it keeps them
    "CSVLogger": [
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir={root}/runs",
    ],
    "MLFlowLogger": [
        "--trainer.logger=lightning.pytorch.loggers.MLFlowLogger",
        "--trainer.logger.tracking_uri=file:{root}/mlruns",
    ],
    "fast_dev_run": ["--trainer.fast_dev_run=true"],
    "limit batches": ["--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1"],
    "max_time": ["--trainer.max_time=00:00:10:00"],
    "val_check_interval": ["--trainer.val_check_interval=0.5"],
    "check_val_every_n_epoch": ["--trainer.check_val_every_n_epoch=2"],
    "accumulate_grad_batches": ["--trainer.accumulate_grad_batches=2"],
    "gradient_clip_val": ["--trainer.gradient_clip_val=0.5"],
    "precision bf16-mixed": ["--trainer.precision=bf16-mixed"],
    "precision bf16-true": ["--trainer.precision=bf16-true"],
    "precision 64-true": ["--trainer.precision=64-true"],
    "deterministic": ["--trainer.deterministic=true"],
    "max_steps": ["--trainer.max_steps=7"],
}


@pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
def test_a_trainer_flag_trains_and_tests(flags, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file: store behind this switch
    root = tmp_path / "runs"
    extra = [flag.format(root=tmp_path) for flag in flags]
    run = cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=2", *extra)
    trainer = run.trainer
    assert trainer.global_step > 0 and torch.isfinite(next(run.model.parameters())).all()
    name = next(key for key, value in FLAGS.items() if value == flags)
    checkpoints = sorted(tmp_path.rglob("*.ckpt"))  # MLflow keeps its runs, checkpoints too, in its store
    if name in ("checkpointing off", "fast_dev_run"):
        assert not checkpoints, "no checkpoint written"
    else:
        assert any(path.name == "last.ckpt" for path in checkpoints)
    if name == "logger off":
        assert not list(root.rglob("events.out.tfevents.*"))
    if name == "CSVLogger":
        metrics = next(root.rglob("metrics.csv"))
        assert "val/acc" in next(csv.reader(metrics.open()))
    if name == "MLFlowLogger":
        assert list((tmp_path / "mlruns").rglob("val/acc")), "metrics in the file: store"
    if name == "max_steps":
        assert trainer.global_step == 7
    if name == "accumulate_grad_batches":
        assert trainer.global_step == 10, "20 batches, a step every 2"
    if "precision" in name:
        assert trainer.precision == flags[0].split("=")[1]
    if checkpoints and name != "fast_dev_run":
        last = next(path for path in checkpoints if path.name == "last.ckpt")
        tested = cli("test", "dropout", tiny_data, root, f"--ckpt_path={last}", *extra)
        assert 0 <= tested.trainer.callback_metrics["test/acc"].item() <= 1


@pytest.mark.parametrize("subcommand", ["test", "predict"])
@pytest.mark.parametrize(
    "flags",
    [
        # 1 would be read as 1.0, all batches
        ["--trainer.limit_test_batches=2", "--trainer.limit_predict_batches=3", "--data.eval_batch_size=2"],
        ["--trainer.logger=false"],
        ["--trainer.precision=bf16-mixed"],
    ],
    ids=["limit batches", "logger off", "bf16-mixed"],
)
def test_test_and_predict_take_trainer_flags(subcommand, flags, tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    cli("fit", "dropout", tiny_data, root, "--trainer.max_epochs=1", "--pictures.every_n_epochs=0")
    run = cli(subcommand, "dropout", tiny_data, root, "--ckpt_path=last", *flags)
    if subcommand == "test":
        assert "test/acc" in run.trainer.callback_metrics
    else:
        rows = Path("predictions.csv").read_text().splitlines()[1:]
        limited = "--trainer.limit_predict_batches=3" in flags  # 3 batches of 2: a row an image predicted
        assert len(rows) == 6 if limited else len(rows) == 60


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--trainer.devices=0", "error: trainer: `Trainer(devices='0')` value is not a valid input"),
        ("--trainer.strategy=fsdp", "error: trainer: The strategy `fsdp` requires a GPU accelerator"),
        (
            "--trainer.val_check_interval=1000",
            "error: trainer: `val_check_interval` (1000) must be less than",
        ),
        pytest.param(
            "--trainer.accelerator=gpu",
            "error: trainer: No supported gpu backend found! (on a machine without one: --trainer",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
    ids=["no devices", "fsdp on a CPU", "validation past the epoch", "a GPU on a machine without one"],
)
def test_a_flag_that_cannot_work_is_refused_in_one_line(flag, message, tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit = ["fit", *config_args("dropout"), *data_args(tiny_data), "--data.val_size=40"]
        main([*fit, f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false", flag])
    assert str(exit_info.value).startswith(message), str(exit_info.value)
    assert "Traceback" not in capsys.readouterr().err
    assert not list(tmp_path.glob("version_*")), "no run folder is left for a run that never started"
