"""Ctrl+C and SIGTERM outside a fit's training steps (``GracefulStop`` handles them within): the
command stops where it stands, in one line."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A command stopped by Ctrl+C or SIGTERM where it stood. A ``BaseException``, as
    ``KeyboardInterrupt`` is, so that no ``except Exception`` on the way takes it for another error (a
    damaged file) or drops it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} received: stopped")


_received: int | None = None  # the signal stop_at_once was called for
_between_batches = False  # inside stops_between_batches
_installed_by: int | None = None  # the process that installed stop_at_once


def stop_at_once_on_signals() -> dict:
    """Install ``stop_at_once`` for SIGINT and SIGTERM (from the main thread); the handlers it replaces,
    for ``restore_signals``."""
    global _received, _installed_by
    _received, _installed_by = None, os.getpid()
    return {signum: signal.signal(signum, stop_at_once) for signum in SIGNALS}


def restore_signals(previous: dict) -> None:
    """Put back the handlers ``stop_at_once_on_signals`` replaced, and forget any signal it noted: a
    later fit in this process (a notebook's) must not stop for it."""
    global _received
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    _received = None


def stop_at_once(signum: int, frame) -> None:
    """Ctrl+C's and SIGTERM's handler outside a fit's steps, where ``GracefulStop``'s takes over: an
    exception, so that what was begun is cleaned up (SIGTERM's default kills the process where it
    stands, which left a new run folder holding only its lock while an image folder was being decoded;
    Ctrl+C's KeyboardInterrupt, Lightning answers with a shutdown of its own and status 1), and the
    command ends as a fit stopped by ``GracefulStop`` does, with status 128 + the signal.
    The signal is kept too, for ``raise_if_stopped``: Python drops an exception raised in the callbacks
    it runs after a fork, as when the signal comes while a DataLoader starts its workers. A second one
    is raised at once, wherever it comes."""
    global _received
    if os.getpid() != _installed_by:
        # a DataLoader worker forked from this process, not yet in a group of its own
        # (own_process_group): the process stops it as it stops
        return
    again, _received = _received is not None, signum
    if again or not _between_batches:
        raise Interrupted(signum)


def own_process_group(worker_id: int) -> None:
    """A DataLoader's ``worker_init_fn``: the worker leaves the process group, so that Ctrl+C in a terminal
    and a job scheduler's SIGTERM to the group reach the main process alone, which stops its workers as
    it stops. Killed by the signal (torch's SIGTERM handler in a worker kills it so unless its parent
    sent it), a worker died with batches unsent, and torch raised that in the main process wherever it
    stood, even in the loader's clean-up."""
    os.setpgid(0, 0)


def raise_if_stopped() -> None:
    """Raise ``Interrupted`` for a signal that ``stop_at_once`` kept and did not (or could not) raise."""
    if _received is not None:
        raise Interrupted(_received)


@contextlib.contextmanager
def stops_between_batches() -> Iterator[None]:
    """Ctrl+C and SIGTERM only noted inside, for ``raise_if_stopped`` to raise between a DataLoader's batches.
    Raised as the loader starts its workers, its exception was dropped ("Exception ignored in:
    _releaseLock") and the fit went on, or it left the workers half started (tracebacks of torch's and
    multiprocessing's own)."""
    global _between_batches
    _between_batches = True
    try:
        yield
    except Exception:
        if _received is not None:  # a worker signalled too, before it left the process group
            raise Interrupted(_received) from None
        raise
    finally:
        _between_batches = False
    raise_if_stopped()
