"""Ctrl+C and SIGTERM outside a fit's training steps (``GracefulStop`` handles them within): the
command stops where it stands, in one line."""

from __future__ import annotations

import contextlib
import multiprocessing
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


def stop_at_once_on_signals() -> dict:
    """Install ``stop_at_once`` for SIGINT and SIGTERM (from the main thread); the handlers it replaces."""
    global _received
    _received = None
    return {signum: signal.signal(signum, stop_at_once) for signum in SIGNALS}


def stop_at_once(signum: int, frame) -> None:
    """Ctrl+C's and SIGTERM's handler outside a fit's steps, where ``GracefulStop``'s takes over: an
    exception, so that what was begun is cleaned up (SIGTERM's default kills the process where it
    stands, which left a new run folder holding only its lock while an image folder was being decoded;
    Ctrl+C's KeyboardInterrupt, Lightning answers with a shutdown of its own and status 1), and the
    command ends as a fit stopped by ``GracefulStop`` does, with status 128 + the signal.
    The signal is kept too, for ``raise_if_stopped``: Python drops an exception raised in the callbacks
    it runs after a fork, as when the signal comes while a DataLoader starts its workers."""
    global _received
    if multiprocessing.parent_process() is not None:  # a process forked from this one (a DDP rank)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _received = signum
    if not _between_batches:
        raise Interrupted(signum)


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
    finally:
        _between_batches = False
    raise_if_stopped()
