"""Reading a run's scalars back from its TensorBoard event files, with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


class EventsError(RuntimeError):
    """No TensorBoard run where one was expected; the message says where to look."""


def read_scalars(logdir: Path) -> tuple[Path, dict[str, list[tuple[int, float]]]]:
    """Every scalar of a run as ``{tag: [(step, value), ...]}``.

    ``logdir`` is a run folder (``version_N``), or any folder above runs (``runs/fast``, ``runs``), in
    which case the most recent run under it is read; the folder actually read is returned with the
    scalars.
    """
    if not logdir.is_dir():
        raise EventsError(
            f"--logdir {logdir} is not a folder; give a run folder such as runs/dropout/version_0"
        )
    if not any(logdir.glob("events.out.tfevents.*")):
        runs = {events.parent for events in logdir.rglob("events.out.tfevents.*")}
        if not runs:
            raise EventsError(f"no TensorBoard event files in {logdir} or its subfolders: train first")
        logdir = max(
            runs, key=lambda folder: max(f.stat().st_mtime for f in folder.glob("events.out.tfevents.*"))
        )
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    if not scalars:
        raise EventsError(f"{logdir} holds no scalars yet: has the run finished an epoch?")
    return logdir, scalars
