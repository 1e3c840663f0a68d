"""Exact resume: a run interrupted anywhere and resumed from its last checkpoint ends with the weights
of a run that was never interrupted."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_idx import write_tiny_fashion_mnist

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.errors import ConfigError
from fashion_lightning.graceful_stop import Stopped
from fashion_lightning.runs import claim_run_folder, read_checkpoint

REPO = Path(__file__).resolve().parents[1]
LAST_CKPT = "version_0/checkpoints/last.ckpt"
# the dropout net (dropout draws random numbers) with random shifts and flips (so does augmentation),
# 10 steps an epoch, a checkpoint every 5 steps, deterministic algorithms
SETTINGS = [
    f"--config={REPO / 'configs/dropout.yaml'}",
    "--data.val_size=40",
    "--data.augment.crop_padding=2",
    "--data.augment.hflip=true",
    "--trainer.max_epochs=3",
    "--trainer.deterministic=true",
    "--last_checkpoint.every_n_train_steps=5",
    "--pictures.every_n_epochs=0",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


class Interrupted(Exception):
    pass


class InterruptAt(Callback):
    """Stands for a crash or a kill: the run stops after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Interrupted


class SignalAt(Callback):
    """Stands for Ctrl+C or ``kill``: SIGTERM arrives during step ``step`` + 1."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def fit(data_dir: Path, root: Path, *extra: str, callbacks=()) -> FashionLightningCLI:
    args = ["fit", *SETTINGS, f"--data.source.root={data_dir}", f"--trainer.default_root_dir={root}", *extra]
    return FashionLightningCLI(args=args, trainer_defaults={"callbacks": list(callbacks)})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("resume")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    run = fit(data_dir, tmp / "runs")
    metrics, curves = run.trainer.callback_metrics, epoch_curves(tmp / "runs" / "version_0")
    return {"data_dir": data_dir, "weights": run.model.state_dict(), "metrics": metrics, "curves": curves}


def epoch_curves(run_dir: Path) -> dict:
    """Each epoch's ``(step, value)`` of training loss and accuracy and of validation accuracy, as
    TensorBoard reads them from all of the run's event files."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = ("train/loss", "train/acc", "val/acc")
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in tags}


@pytest.mark.parametrize(
    "step",
    [7, 12, 23],
    ids=["checkpoint mid-epoch", "checkpoint after an epoch's last step", "checkpoint in a later epoch"],
)
def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(step, uninterrupted, tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(Interrupted):
        fit(uninterrupted["data_dir"], root, callbacks=[InterruptAt(step)])
    saved = torch.load(root / "version_0/checkpoints/last.ckpt", weights_only=True)
    assert saved["global_step"] == step // 5 * 5, "the last checkpoint is at most 5 steps old"
    resumed = fit(uninterrupted["data_dir"], root, "--ckpt_path=last")
    assert resumed.trainer.global_step == 30
    weights = resumed.model.state_dict()
    for name, expected in uninterrupted["weights"].items():
        assert torch.equal(weights[name], expected), name
    for name in ("val/acc", "val/loss", "train/loss"):
        assert resumed.trainer.callback_metrics[name] == uninterrupted["metrics"][name], name
    # TensorBoard's curves too, the interrupted epoch's training figures among them
    assert epoch_curves(root / "version_0") == uninterrupted["curves"]
    assert sorted(p.name for p in root.iterdir()) == ["version_0"], (
        "the resumed run writes into its own folder"
    )


class CrashInValidationAt(Callback):
    """Stands for a crash or a kill during the validation after step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_validation_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step and not trainer.sanity_checking:
            raise Interrupted


@pytest.mark.parametrize(
    ("extra", "crash", "saved_at"),
    [
        ([], CrashInValidationAt(10), 5),
        (["--trainer.check_val_every_n_epoch=2", "--trainer.max_epochs=4"], InterruptAt(12), 10),
    ],
    ids=["a crash in the validation after it", "no validation after it, a crash in the next epoch"],
)
def test_a_periodic_checkpoint_due_at_an_epochs_last_step_waits_for_the_epochs_end(
    extra, crash, saved_at, uninterrupted, tmp_path
):
    """Lightning resumes a checkpoint written after an epoch's last step, but before the epoch's end, with
    the next epoch: the epoch's figures and validation would be lost. Step 10 ends epoch 0."""
    data_dir = uninterrupted["data_dir"]
    reference = fit(data_dir, tmp_path / "reference", *extra)
    root = tmp_path / "runs"
    with pytest.raises(Interrupted):
        fit(data_dir, root, *extra, callbacks=[crash])
    assert torch.load(root / LAST_CKPT, weights_only=True)["global_step"] == saved_at
    resumed = fit(data_dir, root, *extra, "--ckpt_path=last")
    weights = resumed.model.state_dict()
    for name, expected in reference.model.state_dict().items():
        assert torch.equal(weights[name], expected), name
    assert epoch_curves(root / "version_0") == epoch_curves(tmp_path / "reference" / "version_0")


def test_a_best_checkpoint_every_n_steps_at_an_epochs_last_step_has_that_epochs_validation_score(
    uninterrupted, tmp_path
):
    """A checkpoint that keeps the best ``val/acc`` every 10 steps (an epoch): each is written at its
    epoch's end, after the validation, and scored by it. Lightning alone (``ModelCheckpoint`` at the step,
    putting the save off to a validation) wrote none for epoch 0 and each later one with the score of
    the validation before."""
    every_epoch = ["--best_checkpoint.every_n_train_steps=10", "--best_checkpoint.save_top_k=-1"]
    run = fit(uninterrupted["data_dir"], tmp_path, *every_epoch)
    saved = sorted(path.name for path in (tmp_path / "version_0/checkpoints").glob("epoch=*.ckpt"))
    scores = [value for _, value in epoch_curves(tmp_path / "version_0")["val/acc"]]
    expected = [f"epoch={e}-step={10 * (e + 1)}-val_acc={score:.4f}.ckpt" for e, score in enumerate(scores)]
    assert saved == expected
    assert run.trainer.checkpoint_callback.best_model_score == max(scores)


@pytest.mark.parametrize(
    ("extra", "step"),
    [
        (
            [
                "--model.scheduler=torch.optim.lr_scheduler.OneCycleLR",
                "--model.scheduler.max_lr=0.05",
                "--model.scheduler_interval=step",
            ],
            7,
        ),
        (["--trainer.limit_train_batches=8", "--last_checkpoint.every_n_train_steps=4"], 10),
        (
            [
                "--model.scheduler=torch.optim.lr_scheduler.OneCycleLR",
                "--model.scheduler.max_lr=0.05",
                "--model.scheduler_interval=step",
                "--trainer.reload_dataloaders_every_n_epochs=1",
            ],
            17,
        ),
    ],
    ids=[
        "one-cycle stepped every batch, checkpoint mid-epoch",
        "limit_train_batches, checkpoint at its end",
        "one-cycle, loaders reloaded every epoch, checkpoint mid-epoch 1",
    ],
)
def test_resume_is_exact_with_a_step_schedule_or_a_batch_limit(extra, step, uninterrupted, tmp_path):
    data_dir = uninterrupted["data_dir"]
    reference = fit(data_dir, tmp_path / "reference", *extra)
    root = tmp_path / "runs"
    with pytest.raises(Interrupted):
        fit(data_dir, root, *extra, callbacks=[InterruptAt(step)])
    resumed = fit(data_dir, root, *extra, "--ckpt_path=last")
    assert resumed.trainer.global_step == reference.trainer.global_step
    weights = resumed.model.state_dict()
    for name, expected in reference.model.state_dict().items():
        assert torch.equal(weights[name], expected), name
    assert epoch_curves(root / "version_0") == epoch_curves(tmp_path / "reference" / "version_0")


@pytest.fixture(scope="module")
def long_uninterrupted(tmp_path_factory) -> dict:
    """60 steps an epoch, 180 in all: a run long enough to be killed in the middle."""
    tmp = tmp_path_factory.mktemp("resume-long")
    data_dir = write_tiny_fashion_mnist(tmp / "data", n_train=1240)
    run = fit(data_dir, tmp / "runs")
    return {"data_dir": data_dir, "weights": run.model.state_dict(), "steps": run.trainer.global_step}


def test_sigkill_at_a_random_moment_then_resume_ends_like_an_uninterrupted_run(long_uninterrupted, tmp_path):
    """A real ``kill -9`` of a training process, at a random moment after its first checkpoint."""
    root = tmp_path / "runs"
    command = [str(Path(sys.executable).parent / "fashion-lightning"), "fit", *SETTINGS]
    command += [f"--data.source.root={long_uninterrupted['data_dir']}", f"--trainer.default_root_dir={root}"]
    last = root / "version_0" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(random.uniform(0, 0.3))
    finally:
        process.kill()  # SIGKILL: no handler runs, nothing is flushed or closed
        process.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]  # a whole file, whatever the moment
    assert killed_at < long_uninterrupted["steps"], "killed before the end"
    done = subprocess.run([*command, "--ckpt_path=last"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == long_uninterrupted["steps"]
    for name, expected in long_uninterrupted["weights"].items():
        assert torch.equal(resumed["state_dict"][name], expected), (name, killed_at)
    assert sorted(p.name for p in root.iterdir()) == ["version_0"], "TensorBoard goes on in the same folder"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_and_exits_clearly(signum, long_uninterrupted, tmp_path):
    root = tmp_path / "runs"
    command = [str(Path(sys.executable).parent / "fashion-lightning"), "fit", *SETTINGS]
    command += [f"--data.source.root={long_uninterrupted['data_dir']}", f"--trainer.default_root_dir={root}"]
    last = root / "version_0" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.uniform(0, 0.3))
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-2000:]
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    message = f"{signal.Signals(signum).name} received: stopped after step {stopped_at} and saved {last}."
    assert message in stderr and "Resume with --ckpt_path last" in stderr
    assert "Traceback" not in stderr
    assert stopped_at < long_uninterrupted["steps"]
    subprocess.run([*command, "--ckpt_path=last"], check=True, capture_output=True)
    resumed = torch.load(last, weights_only=True)
    for name, expected in long_uninterrupted["weights"].items():
        assert torch.equal(resumed["state_dict"][name], expected), (name, stopped_at)


def test_concurrent_runs_in_one_root_get_their_own_folders(long_uninterrupted, tmp_path):
    root = tmp_path / "runs"
    command = [
        str(Path(sys.executable).parent / "fashion-lightning"),
        "fit",
        *SETTINGS,
        "--trainer.max_epochs=1",
    ]
    command += [f"--data.source.root={long_uninterrupted['data_dir']}", f"--trainer.default_root_dir={root}"]
    runs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(3)]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read().decode()[-2000:]
    folders = sorted(p.name for p in root.iterdir())
    assert folders == ["version_0", "version_1", "version_2"]
    for folder in folders:
        assert len(list((root / folder).glob("events.out.tfevents.*"))) == 1, folder
        assert (root / folder / "config.yaml").is_file() and (
            root / folder / "checkpoints" / "last.ckpt"
        ).is_file()


def test_run_folders_claimed_at_the_same_moment_are_distinct(tmp_path):
    (tmp_path / "version_3").mkdir()
    start = threading.Barrier(8)

    def claim() -> str:
        start.wait()
        return claim_run_folder(tmp_path)

    with ThreadPoolExecutor(8) as pool:
        claimed = [future.result() for future in [pool.submit(claim) for _ in range(8)]]
    assert sorted(claimed, key=lambda name: int(name.split("_")[1])) == [f"version_{n}" for n in range(4, 12)]


def test_resume_from_the_checkpoint_of_a_validation_is_exact(uninterrupted, tmp_path):
    """The default cadence: last.ckpt after each validation (here after epoch 1), interrupted in epoch 2."""
    settings = [arg for arg in SETTINGS if not arg.startswith("--last_checkpoint.every_n_train_steps")]
    root = tmp_path / "runs"
    common = [f"--data.source.root={uninterrupted['data_dir']}", f"--trainer.default_root_dir={root}"]
    with pytest.raises(Interrupted):
        FashionLightningCLI(
            args=["fit", *settings, *common], trainer_defaults={"callbacks": [InterruptAt(15)]}
        )
    assert torch.load(root / "version_0/checkpoints/last.ckpt", weights_only=True)["global_step"] == 10
    resumed = FashionLightningCLI(args=["fit", *settings, *common, "--ckpt_path=last"])
    weights = resumed.model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in uninterrupted["weights"].items())
    assert epoch_curves(root / "version_0") == uninterrupted["curves"]


def test_signal_handlers_are_given_back_after_a_fit(uninterrupted, tmp_path):
    before = [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)]
    fit(uninterrupted["data_dir"], tmp_path / "runs", "--trainer.max_epochs=1")
    assert [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)] == before


class EpochImages(Callback):
    """The images each training epoch's figures count (called before the model's own epoch end)."""

    def __init__(self) -> None:
        self.counted: list[int] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.counted.append(pl_module.train_totals["images"])


def test_a_model_validated_from_a_mid_epoch_checkpoint_then_trained_afresh_counts_its_own_images(
    uninterrupted, tmp_path
):
    """The checkpoint's running training sums serve a resume only: a fit that does not resume, on
    the same model object, does not add the checkpoint's batches to its first epoch's figures."""
    root = tmp_path / "runs"
    with pytest.raises(Interrupted):
        fit(uninterrupted["data_dir"], root, callbacks=[InterruptAt(7)])
    args = [
        *SETTINGS,
        f"--data.source.root={uninterrupted['data_dir']}",
        f"--trainer.default_root_dir={root}",
    ]
    run = FashionLightningCLI(args=["validate", *args, f"--ckpt_path={root / LAST_CKPT}"])
    counter = EpochImages()
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, callbacks=[counter])
    trainer.fit(run.model, datamodule=run.datamodule)
    assert counter.counted == [len(run.datamodule.train_set)]


def test_a_run_without_checkpointing_stopped_by_a_signal_resumes_with_last(uninterrupted, tmp_path):
    """The stop's own checkpoint goes where a run's checkpoints go, so the resume it tells of finds it."""
    root, off = tmp_path / "runs", "--trainer.enable_checkpointing=false"
    with pytest.raises(Stopped, match="Resume with --ckpt_path last"):
        fit(uninterrupted["data_dir"], root, off, callbacks=[SignalAt(12)])
    assert torch.load(root / LAST_CKPT, weights_only=True)["global_step"] == 13
    resumed = fit(uninterrupted["data_dir"], root, off, "--ckpt_path=last")
    assert resumed.trainer.log_dir == str(root / "version_0")
    weights = resumed.model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in uninterrupted["weights"].items())


@pytest.mark.parametrize("step", [9, 19], ids=["epoch 1", "epoch 2"])
def test_a_stop_asked_during_an_epochs_last_step_waits_for_the_epochs_end(step, uninterrupted, tmp_path):
    """Lightning resumes a checkpoint written right after an epoch's last step with the next epoch,
    which would lose the epoch's training figures, validation and checkpoints: the stop comes after the
    next epoch's first step instead, and the resumed run ends as the uninterrupted one."""
    root = tmp_path / "runs"
    with pytest.raises(Stopped):
        fit(uninterrupted["data_dir"], root, callbacks=[SignalAt(step)])
    assert torch.load(root / LAST_CKPT, weights_only=True)["global_step"] == step + 2
    resumed = fit(uninterrupted["data_dir"], root, "--ckpt_path=last")
    weights = resumed.model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in uninterrupted["weights"].items())
    assert epoch_curves(root / "version_0") == uninterrupted["curves"]


def test_a_stop_asked_during_the_fits_last_step_lets_the_fit_end_whole(uninterrupted, tmp_path):
    root = tmp_path / "runs"
    run = fit(uninterrupted["data_dir"], root, callbacks=[SignalAt(29)])
    assert torch.load(root / LAST_CKPT, weights_only=True)["global_step"] == run.trainer.global_step == 30
    weights = run.model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in uninterrupted["weights"].items())
    assert epoch_curves(root / "version_0") == uninterrupted["curves"]


EMA = ["--weight_averaging=EMAWeightAveraging", "--weight_averaging.decay=0.8"]


@pytest.fixture(scope="module")
def averaged_uninterrupted(uninterrupted, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("resume-ema") / "runs"
    run = fit(uninterrupted["data_dir"], root, *EMA)
    return {"weights": run.model.state_dict(), "last": torch.load(root / LAST_CKPT, weights_only=True)}


@pytest.mark.parametrize(
    ("interrupt", "error", "saved_at"),
    [(InterruptAt(7), Interrupted, 5), (SignalAt(12), Stopped, 13)],
    ids=["crash mid-epoch", "SIGTERM mid-epoch (GracefulStop's checkpoint)"],
)
def test_resume_with_weight_averaging_is_exact(
    interrupt, error, saved_at, uninterrupted, averaged_uninterrupted, tmp_path
):
    """The trained weights, the averaged ones and the average's count all go on as if never interrupted."""
    root = tmp_path / "runs"
    with pytest.raises(error):
        fit(uninterrupted["data_dir"], root, *EMA, callbacks=[interrupt])
    assert torch.load(root / LAST_CKPT, weights_only=True)["global_step"] == saved_at
    resumed = fit(uninterrupted["data_dir"], root, *EMA, "--ckpt_path=last")
    weights = resumed.model.state_dict()  # after fit: the averaged weights
    for name, expected in averaged_uninterrupted["weights"].items():
        assert torch.equal(weights[name], expected), name
    last, expected = torch.load(root / LAST_CKPT, weights_only=True), averaged_uninterrupted["last"]
    for key in ("state_dict", "current_model_state", "averaging_state"):
        for name, value in expected[key].items():
            assert torch.equal(last[key][name], value), (key, name)


@pytest.mark.parametrize(
    ("changed", "refusal"),
    [
        ("--data.batch_size=40", "saved in the middle of an epoch, after 5 batches of 20 images on 1 device"),
        ("--data.val_size=60", "held out 40 of 240 images (split_seed 0) for validation; this run"),
        ("--data.split_seed=7", "this run would hold out 40 of 240 images (split_seed 7)"),
    ],
)
def test_a_resume_that_would_skip_or_leak_images_is_refused(changed, refusal, uninterrupted, tmp_path):
    """Another batch size mid-epoch would skip or repeat images; another split would train on the
    checkpoint's validation images. Either is refused, and the checkpoint is left as it was."""
    root = tmp_path / "runs"
    with pytest.raises(Interrupted):
        fit(uninterrupted["data_dir"], root, callbacks=[InterruptAt(7)])
    saved = (root / LAST_CKPT).read_bytes()
    with pytest.raises(ConfigError, match=re.escape(refusal)) as refused:
        fit(uninterrupted["data_dir"], root, "--ckpt_path=last", changed)
    assert "the training images changed" not in str(refused.value), "that is said only when it is so"
    assert (root / LAST_CKPT).read_bytes() == saved


def test_a_resume_whose_validation_images_changed_is_refused(uninterrupted, tmp_path):
    """As many training images as before, but other ones (a file renamed, one replaced by another): the
    same share held out would hold other images, and train on some of the checkpoint's."""
    data_dir, root = tmp_path / "data", tmp_path / "runs"
    shutil.copytree(uninterrupted["data_dir"], data_dir)
    with pytest.raises(Interrupted):
        fit(data_dir, root, callbacks=[InterruptAt(7)])
    write_tiny_fashion_mnist(data_dir, seed=1)  # 240 other training images
    with pytest.raises(ConfigError, match=re.escape("40 of 240 images (split_seed 0) but other images (the")):
        fit(data_dir, root, "--ckpt_path=last")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes read through /proc/self/io")
def test_the_cli_reads_a_checkpoints_settings_without_its_weights(tmp_path):
    """The CLI checks a checkpoint before Lightning loads it: a large one is not read whole for that."""
    path = tmp_path / "large.ckpt"
    weights = torch.zeros(2_000_000)  # 8 MB
    torch.save(
        {"state_dict": {"w": weights}, "epoch": 0, "global_step": 0, "pytorch-lightning_version": "2"}, path
    )

    def bytes_read() -> int:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
        return int(fields["rchar"])

    before = bytes_read()
    checkpoint = read_checkpoint(path)
    assert bytes_read() - before < 1_000_000
    assert torch.equal(checkpoint["state_dict"]["w"], weights), "the weights are there when used"


def test_a_checkpoint_in_torchs_format_before_1_6_is_read(tmp_path):
    """Not a zip archive, so it cannot be memory-mapped: it is read whole."""
    path = tmp_path / "legacy.ckpt"
    saved = {
        "state_dict": {"w": torch.ones(3)},
        "epoch": 4,
        "global_step": 40,
        "pytorch-lightning_version": "1",
    }
    torch.save(saved, path, _use_new_zipfile_serialization=False)
    checkpoint = read_checkpoint(path)
    assert checkpoint["epoch"] == 4 and torch.equal(checkpoint["state_dict"]["w"], torch.ones(3))
