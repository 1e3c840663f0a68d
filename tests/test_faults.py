"""Real faults: a full disk, a folder that takes no files, two processes on one run, config files with
mistakes. Each ends in one line, loses nothing saved, and a resume afterwards is exact."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_image_folder import write_shapes
from test_resume import SETTINGS  # the notes' dropout net, 10 steps an epoch, a checkpoint every 5 steps

from fashion_lightning import checkpoint_io
from fashion_lightning.cli import FashionLightningCLI, main
from fashion_lightning.data import DataError, ImageFolder
from fashion_lightning.errors import ConfigError
from fashion_lightning.run_lock import LOCK


def args(data: Path, root: Path, *extra: str) -> list[str]:
    return ["fit", *SETTINGS, f"--data.source.root={data}", f"--trainer.default_root_dir={root}", *extra]


def mount_tmpfs(folder: Path, size: str, *options: str) -> bool:
    """A small tmpfs at ``folder``, where the machine lets this process mount one."""
    folder.mkdir(parents=True, exist_ok=True)
    option = ",".join([f"size={size}", *options])
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", option, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A folder on a 700 KiB disk, room for the first checkpoints and not for the run's last ones, and
    a function that frees space. Where no tmpfs can be mounted, the fourth checkpoint write fails with
    an injected ENOSPC instead."""
    disk = tmp_path / "disk"
    if mount_tmpfs(disk, "700k"):
        yield disk, lambda: subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        subprocess.run(["umount", str(disk)], capture_output=True)
        return
    writes = iter(range(1000))
    flush = checkpoint_io._flush

    def full_after_three(path: Path) -> None:
        if path.name.endswith(".partial") and next(writes) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        flush(path)

    monkeypatch.setattr(checkpoint_io, "_flush", full_after_three)
    yield disk, lambda: monkeypatch.setattr(checkpoint_io, "_flush", flush)


def test_a_full_disk_stops_the_run_in_one_line_and_the_resume_after_freeing_space_is_exact(
    tiny_data, tmp_path, small_disk, capsys
):
    disk, free_space = small_disk
    reference = FashionLightningCLI(args=args(tiny_data, tmp_path / "reference")).model.state_dict()
    with pytest.raises(SystemExit) as exit_info:
        main(args(tiny_data, disk))
    said = str(exit_info.value)
    assert said.startswith("error: no space left in ") and "a fit goes on with --ckpt_path last" in said, said
    assert "Traceback" not in capsys.readouterr().err
    last = disk / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)  # whole and loadable
    assert 0 < saved["global_step"] < 30
    assert not [p for p in disk.rglob("*") if p.name.endswith(".partial") or ".tmp" in p.name], (
        "no partial file"
    )

    free_space()
    resumed = FashionLightningCLI(args=args(tiny_data, disk, "--ckpt_path=last"))
    assert resumed.trainer.global_step == 30
    weights = resumed.model.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in reference.items())


def test_a_folder_that_takes_no_files_is_refused_before_training(tiny_data, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the runs' folder should be")
    with pytest.raises(SystemExit) as exit_info:
        main(args(tiny_data, blocker))
    assert f"trainer.default_root_dir: cannot write into {blocker}" in str(exit_info.value)
    read_only = tmp_path / "read-only"
    if mount_tmpfs(read_only, "1m", "ro"):
        try:
            with pytest.raises(SystemExit) as exit_info:
                main(args(tiny_data, read_only))
            assert "Read-only file system" in str(exit_info.value)
        finally:
            subprocess.run(["umount", str(read_only)], capture_output=True)
    assert "Traceback" not in capsys.readouterr().err


def test_checkpoints_are_flushed_to_disk_with_their_folder(tiny_data, tmp_path, monkeypatch):
    flushed = []
    fsync = os.fsync

    def recording(descriptor: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        fsync(descriptor)

    monkeypatch.setattr(checkpoint_io.os, "fsync", recording)
    root = tmp_path / "runs"
    FashionLightningCLI(args=args(tiny_data, root, "--trainer.max_epochs=1"))
    checkpoints = root / "version_0" / "checkpoints"
    assert str(checkpoints / ".last.ckpt.partial") in flushed, "the bytes, before the rename"
    assert str(checkpoints) in flushed, "the folder's entry, after the rename"


def fit_process(data: Path, root: Path, *extra: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "fashion-lightning"), *args(data, root, *extra)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_one_writer_per_run_and_a_killed_writers_lock_is_taken_over(tmp_path, no_system_copies):
    from tiny_idx import write_tiny_fashion_mnist

    data = write_tiny_fashion_mnist(tmp_path / "data", n_train=2440)
    root = tmp_path / "runs"
    first = fit_process(data, root, "--trainer.max_epochs=1000")  # still training when the second comes
    lock, last = root / "version_0" / LOCK, root / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert f'"pid": {first.pid}' in lock.read_text()
        second = fit_process(data, root, "--ckpt_path=last", "--trainer.max_epochs=1000")
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 1 and "Traceback" not in stderr
        assert f"{root / 'version_0'} is being trained by process {first.pid} on " in stderr
    finally:
        first.send_signal(signal.SIGKILL)  # dies holding the lock
        first.wait()
    assert f'"pid": {first.pid}' in lock.read_text(), "a killed process leaves its lock file"
    epochs = torch.load(last, weights_only=False)["epoch"] + 1  # the killed run's epoch, finished
    resume = args(data, root, "--ckpt_path=last", f"--trainer.max_epochs={epochs}")
    third = subprocess.run(
        [str(Path(sys.executable).parent / "fashion-lightning"), *resume],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"took over the run lock left by process {first.pid} on " in third.stdout + third.stderr
    assert lock.read_text() == "", "given back at the end"
    assert sorted(p.name for p in root.iterdir()) == ["version_0"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trainer:\n  max_epochs: 3\n  precision: [bf16\n", "broken.yaml, line 3"),
        ("model:\n  no_such_setting: 1\n", "broken.yaml: model.no_such_setting"),
        ("trainer:\n  max_epochs: abc\n", "broken.yaml: trainer.max_epochs"),
        (
            "# réglages\ntrainer:\n  max_epochs: 3\n".encode("latin-1"),
            "broken.yaml is not UTF-8 text (byte 0xe9",
        ),
    ],
    ids=["YAML syntax", "unknown key", "wrong type", "not UTF-8"],
)
def test_a_config_mistake_names_the_file_and_the_key(text, message, tiny_data, tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SystemExit) as exit_info:
        main([*args(tiny_data, tmp_path / "runs"), f"--config={broken}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_the_pictures_and_the_sweep_name_a_config_that_is_not_utf_8(tmp_path):
    from fashion_lightning.viz.cli import main as viz

    latin = tmp_path / "latin.yaml"
    latin.write_bytes("# réglages\ndata:\n  batch_size: 20\n".encode("latin-1"))
    with pytest.raises(SystemExit) as exit_info:
        viz(["batch", f"--config={latin}", f"--out={tmp_path / 'batch.png'}"])
    assert f"{latin} is not UTF-8 text" in str(exit_info.value.code)
    assert "Traceback" not in str(exit_info.value.code)
    pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")
    from fashion_lightning.sweep.space import read_space

    with pytest.raises(ConfigError, match="latin.yaml is not UTF-8 text"):
        read_space(latin)


def test_a_bad_value_given_after_a_config_is_not_blamed_on_the_file(tiny_data, tmp_path, capsys):
    config = tmp_path / "settings.yaml"
    config.write_text("data:\n  batch_size: 20\n")
    with pytest.raises(SystemExit):
        main([*args(tiny_data, tmp_path / "runs"), f"--config={config}", "--data.batch_size=abc"])
    err = capsys.readouterr().err
    assert "Got value: abc" in err and str(config) not in err, err


def test_a_full_disk_under_predict_export_and_pictures_is_one_line(tiny_data, tmp_path, capsys):
    """The other files a user writes: predict's CSV, an export, a picture; each on a disk too small."""
    from fashion_lightning.export import main as export
    from fashion_lightning.viz.cli import main as viz

    FashionLightningCLI(args=args(tiny_data, tmp_path / "runs", "--trainer.max_epochs=1"))
    checkpoint = tmp_path / "runs/version_0/checkpoints/last.ckpt"
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "64k"):
        pytest.skip("no tmpfs can be mounted here: the checkpoint test injects the fault instead")
    try:
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as filler:
            filler.write(b"\0" * (64 * 1024))  # the disk, full
        data = [f"--data.source.root={tiny_data}", "--data.source.download=false"]
        commands = [
            lambda: main(
                ["predict", f"--ckpt_path={checkpoint}", f"--predictions.output={disk / 'p.csv'}", *data]
            ),
            lambda: export([f"--ckpt_path={checkpoint}", "--format=onnx", f"--out={disk / 'model.onnx'}"]),
            lambda: export(
                [f"--ckpt_path={checkpoint}", "--format=torchscript", f"--out={disk / 'model.pt'}"]
            ),
            lambda: viz(["filters", f"--ckpt_path={checkpoint}", f"--out={disk / 'filters.png'}"]),
        ]
        for command in commands:
            with pytest.raises(SystemExit) as exit_info:
                command()
            said = str(exit_info.value)
            assert said.startswith(f"error: no space left in {disk} to write "), said
        assert sorted(p.name for p in disk.iterdir()) == ["filler"], "nothing half-written is left"
        assert "Traceback" not in capsys.readouterr().err
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_full_disk_under_an_image_folders_cache_is_one_line(tmp_path):
    """torch.save tells a full disk only as a short write: the cache's message says it is the space."""
    root = write_shapes(tmp_path / "photos")
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "64k"):
        pytest.skip("no tmpfs can be mounted here")
    try:
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as filler:
            filler.write(b"\0" * (60 * 1024))  # room for the folders, not for the images
        with pytest.raises(DataError) as refused:
            ImageFolder(str(root), size=16, cache_dir=str(disk / "cache"), workers=0).load(train=True)
        said = str(refused.value)
        assert said.startswith(f"no space left in {disk / 'cache'} to write "), said
        assert said.endswith("or give data.source.cache_dir a folder with room"), said
        assert sorted(p.name for p in (disk / "cache").iterdir()) == [], "nothing half-written is left"
    finally:
        unmounted = subprocess.run(["umount", str(disk)], capture_output=True)
    assert unmounted.returncode == 0, "nor held open: the error keeps no removed file's space in use"


def test_a_cache_write_that_fails_for_another_reason_is_named_with_it(tmp_path):
    """Any reason a write fails, not only a full disk: here a file size limit (EFBIG), as a quota's
    EDQUOT would be. torch's writer tells none of them; the message gives the system's own words."""
    root = write_shapes(tmp_path / "photos")
    cache = tmp_path / "cache"
    limited = f"""
import resource, signal
from fashion_lightning.data import DataError, ImageFolder
from fashion_lightning.errors import ConfigError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))
try:
    ImageFolder({str(root)!r}, size=16, cache_dir={str(cache)!r}, workers=0).load(train=True)
except DataError as err:
    print(err)
"""
    done = subprocess.run([sys.executable, "-c", limited], capture_output=True, text=True, timeout=120)
    said = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"cannot write the decoded images to {re.escape(str(cache))}/\S+\.pt \(File too large\); "
        r"choose a writable folder with data.source.cache_dir",
        said,
    ), (said, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert list(cache.iterdir()) == [], "nothing half-written is left"


def test_a_run_whose_last_checkpoint_was_never_written_resumes_from_its_newest(tiny_data, tmp_path, capsys):
    """A disk that filled up before the first last.ckpt: --ckpt_path last takes the best checkpoint."""
    root = tmp_path / "runs"
    FashionLightningCLI(args=args(tiny_data, root, "--trainer.max_epochs=1"))
    checkpoints = root / "version_0" / "checkpoints"
    (checkpoints / "last.ckpt").unlink()
    (best,) = checkpoints.glob("epoch=*.ckpt")
    resumed = FashionLightningCLI(args=args(tiny_data, root, "--trainer.max_epochs=2", "--ckpt_path=last"))
    assert f"has no last.ckpt (was the disk full?); using {best.name}" in capsys.readouterr().out
    assert resumed.trainer.global_step == 20 and sorted(p.name for p in root.iterdir()) == ["version_0"]


def test_a_full_disk_under_tensorboards_event_file_is_one_line(tiny_data, tmp_path):
    """TensorBoard writes its events (and the pictures in them) from a thread of its own."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "300k"):
        pytest.skip("no tmpfs can be mounted here")
    try:
        command = [str(Path(sys.executable).parent / "fashion-lightning"), *args(tiny_data, disk)]
        command += ["--pictures.every_n_epochs=1", "--trainer.enable_checkpointing=false"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"error: no space left in {disk / 'version_0'} (" in done.stderr


SIGTERM_AS_WORKERS_START = """
import os, signal, sys
from fashion_lightning.cli import main

sent = []

def sigterm_inside_the_fork_callbacks():
    if not sent:  # the first fork: the image folder's first decoding worker
        sent.append(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(10_000))  # the handler runs here, where Python drops the exception it raises

os.register_at_fork(after_in_parent=sigterm_inside_the_fork_callbacks)
main(sys.argv[1:])
"""


def test_sigterm_as_the_decoding_workers_start_still_stops_the_fit(tmp_path):
    """Python drops an exception raised in its after-fork callbacks, where a signal's handler may run
    as a DataLoader starts its workers: the fit went on to its end, after "Exception ignored in"."""
    root = write_shapes(tmp_path / "photos", per_class=40)
    command = [sys.executable, "-c", SIGTERM_AS_WORKERS_START, "fit", *SETTINGS]
    command += [f"--data.source={ImageFolder.__module__}.ImageFolder", f"--data.source.root={root}"]
    command += ["--data.source.size=28", "--data.source.workers=2", f"--data.source.cache_dir={tmp_path}"]
    command += [f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-2000:]
    assert done.stderr.rstrip().endswith("SIGTERM received: stopped")
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not list((tmp_path / "runs").glob("version_*")), "no run folder is left for a run that never began"


def test_sigterm_dropped_as_a_streamed_folders_workers_start_stops_the_fit_before_its_first_step(tmp_path):
    """The first workers here read the streamed images for the data's statistics, outside the decoding:
    the signal Python dropped there is raised as training starts."""
    root = write_shapes(tmp_path / "photos", per_class=40)
    command = [sys.executable, "-c", SIGTERM_AS_WORKERS_START, "fit", *SETTINGS]
    command += [f"--data.source={ImageFolder.__module__}.ImageFolder", f"--data.source.root={root}"]
    command += ["--data.source.size=28", "--data.source.workers=0", f"--data.source.cache_dir={tmp_path}"]
    command += ["--data.source.max_memory_mb=0.001", "--data.num_workers=2"]
    command += [f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-2000:]
    assert done.stderr.rstrip().endswith("SIGTERM received: stopped")
    assert not list((tmp_path / "runs").glob("version_*")), "no run folder is left for a run that never began"


def _image_folder_fit(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    command = [str(Path(sys.executable).parent / "fashion-lightning"), "fit", *SETTINGS]
    command += [f"--data.source={ImageFolder.__module__}.ImageFolder", f"--data.source.root={root}"]
    command += ["--data.source.size=28", "--data.source.workers=2", f"--data.source.cache_dir={tmp_path}"]
    return command + [f"--trainer.default_root_dir={tmp_path / 'runs'}", *extra]


def _children(pid: int) -> set[int]:
    return {
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    }


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _signal_the_group_and_wait(process: subprocess.Popen, signum: int, workers: set[int]) -> str:
    """What the command printed to stderr, once it ended and its ``workers`` did."""
    os.killpg(process.pid, signum)
    _, stderr = process.communicate(timeout=120)
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in workers), "the command's DataLoader workers outlived it"
    return stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_a_signal_to_the_whole_process_group_while_workers_decode_stops_in_one_line(signum, tmp_path):
    """A terminal's Ctrl+C (and a job scheduler's SIGTERM) goes to the whole process group. The workers
    leave it, and the main process stops them as it stops: killed by the signal, they raised in the
    main process wherever it stood, even in a loader's clean-up ("Exception ignored", a traceback)."""
    root = write_shapes(tmp_path / "photos", per_class=600)
    process = subprocess.Popen(
        _image_folder_fit(root, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for line in process.stdout:
        if line.startswith("ImageFolder: decoding"):
            break
    time.sleep(0.2)  # the workers at work
    stderr = _signal_the_group_and_wait(process, signum, _children(process.pid))
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert stderr.rstrip().endswith(f"{signal.Signals(signum).name} received: stopped"), stderr[-2000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]
    assert not list((tmp_path / "runs").glob("version_*")), "no run folder is left for a run that never began"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_a_signal_to_the_whole_process_group_while_workers_stream_batches_stops_with_a_checkpoint(
    signum, tmp_path
):
    """Training from a folder streamed by workers, a SIGTERM to the group killed them, and the fit
    ended in torch's "DataLoader worker is killed by signal" (3 runs of 6), or stopped with a traceback."""
    root = write_shapes(tmp_path / "photos", per_class=300)
    streamed = ["--data.source.max_memory_mb=0.001", "--data.num_workers=2", "--trainer.max_epochs=50"]
    process = subprocess.Popen(
        _image_folder_fit(root, tmp_path, *streamed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("version_*/checkpoints/*.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(process.pid)
    assert workers, "the fit reads its batches with worker processes"
    stderr = _signal_the_group_and_wait(process, signum, workers)
    assert process.returncode == 128 + signum, stderr[-2000:]
    last_line = stderr.rstrip().splitlines()[-1]
    assert last_line.startswith(f"{signal.Signals(signum).name} received: stopped after step"), stderr[-2000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]
    assert (tmp_path / "runs/version_0/checkpoints/last.ckpt").is_file()


def test_ctrl_c_to_one_ddp_rank_stops_every_rank_at_one_step_and_the_resume_is_exact(tmp_path):
    """``kill -INT`` may reach one rank of a DDP fit (a terminal's Ctrl+C reaches all): every rank stops
    after the same step, the command says so once, naming the signal, and a resume ends where an
    uninterrupted DDP fit does (2 ranks of 600 images, 30 steps an epoch)."""
    from tiny_idx import write_tiny_fashion_mnist

    data = write_tiny_fashion_mnist(tmp_path / "data", n_train=1240)
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]

    def command(root: str) -> list[str]:
        script = str(Path(sys.executable).parent / "fashion-lightning")
        return [script, *args(data, tmp_path / root), *ddp]

    subprocess.run(command("uninterrupted"), check=True, capture_output=True, timeout=300)
    uninterrupted = torch.load(tmp_path / "uninterrupted/version_0/checkpoints/last.ckpt", weights_only=True)
    process = subprocess.Popen(command("runs"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "runs/version_0/checkpoints/last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    (rank_1,) = _children(process.pid)  # Lightning starts the other rank as a child of the command
    os.kill(rank_1, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    assert process.returncode == 128 + signal.SIGINT, stderr[-2000:]
    assert stderr.count("received: stopped") == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert f"SIGINT received: stopped after step {stopped_at} and saved {last}." in stderr
    assert stopped_at < uninterrupted["global_step"] and not _running(rank_1)
    subprocess.run([*command("runs"), "--ckpt_path=last"], check=True, capture_output=True, timeout=300)
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == uninterrupted["global_step"]
    for name, expected in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], expected), (name, stopped_at)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_sigterm_while_an_image_folder_is_decoded_stops_in_one_line_and_leaves_no_run(signum, tmp_path):
    """Before the first step there is nothing to save: the command ends in one line, and the run folder
    made for it goes (SIGTERM's default action killed the process, leaving it behind; Ctrl+C ended in
    Lightning's shutdown, with status 1)."""
    root = write_shapes(tmp_path / "photos", per_class=600)  # seconds of decoding, in this process
    command = [str(Path(sys.executable).parent / "fashion-lightning"), "fit", *SETTINGS]
    command += [f"--data.source={ImageFolder.__module__}.ImageFolder", f"--data.source.root={root}"]
    command += [
        "--data.source.size=28",
        "--data.source.workers=0",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
    ]
    command += [f"--data.source.cache_dir={tmp_path / 'cache'}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("ImageFolder: decoding"):
            break
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert (
        stderr.rstrip().endswith(f"{signal.Signals(signum).name} received: stopped")
        and "Traceback" not in stderr
    ), stderr[-2000:]
    assert not list((tmp_path / "runs").glob("version_*")), "no run folder is left for a run that never began"
