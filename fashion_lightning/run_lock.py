"""One writer per run: a second ``fit`` into a run folder that is being trained is refused, naming the
process that trains it; a lock left behind by a killed process is taken over, and says so."""

from __future__ import annotations

import atexit
import datetime
import fcntl
import json
import os
import shutil
import socket
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from fashion_lightning.empty_event_files import remove_empty_event_files

LOCK = "run.lock"


class RunLockedError(RuntimeError):
    """The run folder is being trained by another process; the message names it."""


class RunLock(Callback):
    latest: Path | None = None  # the folder of the run this process trained last, for error messages

    """``run.lock`` in the run folder, held with the kernel's ``flock`` (released when the process ends,
    however it ends) and holding who trains the run: process, host and start time.

    Taken when made, before anything is written into the folder; given back when the fit ends or fails,
    or the process exits. A lock file with content but no holder was left by a killed
    process: it is taken over, with a message. Over NFS, Linux maps ``flock`` onto the server's locks.

    ``new_folder``: the folder was made for this fit. If the fit fails before its first step (but for a
    file system's error) and no checkpoint was written, the folder goes too: it holds nothing to resume
    or look at, and TensorBoard would list it as a run. A fit from another run's checkpoint starts at
    that checkpoint's step, not at 0. A folder that stays loses only the TensorBoard file this process
    opened, if it holds no event (``remove_empty_event_files``).
    """

    def __init__(self, folder: Path, new_folder: bool = False) -> None:
        self.path = Path(folder) / LOCK
        self.new_folder = new_folder
        self.first_step: int | None = None  # the step training starts from, once it does
        RunLock.latest = Path(folder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")  # noqa: SIM115 - held open for the run's whole length
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            self._file.close()
            raise RunLockedError(
                f"{folder} is being trained by {describe(holder)}; wait for it to end, or stop it (Ctrl+C "
                "or kill: it saves a checkpoint) and resume with --ckpt_path last"
            ) from None
        left = self._holder()
        if left:
            print(f"{folder}: took over the run lock left by {describe(left)}, which is no longer running")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        self._file.truncate(0)
        self._file.write(json.dumps(me))
        self._file.flush()
        atexit.register(self.release)

    def _holder(self) -> dict:
        self._file.seek(0)
        try:
            return json.loads(self._file.read() or "{}")
        except json.JSONDecodeError:
            return {"pid": "?", "host": "?", "started": "?"}

    def release(self) -> None:
        if not self._file.closed:
            self._file.truncate(0)  # empty: nobody holds it, and nobody died holding it
            self._file.close()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.release()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.first_step = trainer.global_step

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.release()  # a fit that fails or is stopped ends without teardown
        folder = self.path.parent
        trained = self.first_step is not None and trainer.global_step > self.first_step
        unused = self.new_folder and not trained and not any(folder.rglob("*.ckpt"))
        if unused and not isinstance(exception, OSError):  # a full disk's message names a file in it
            shutil.rmtree(folder, ignore_errors=True)
        else:  # a resumed run's folder, say: TensorBoard's file of no events goes
            remove_empty_event_files(trainer, exception)


def describe(holder: dict) -> str:
    return f"process {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')})"


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
