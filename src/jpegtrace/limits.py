"""A time limit for the work on one input of a batch run (``--time-limit``)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from .errors import TimeLimitError


@contextlib.contextmanager
def time_limit(seconds: float | None, path: str | os.PathLike | None = None) -> Iterator[None]:
    """Raise :class:`~jpegtrace.errors.TimeLimitError` in the block when it runs longer than ``seconds``.

    Parameters
    ----------
    seconds : float or None
        The limit; None for none.
    path : path-like, optional
        The input worked on, named by the error (``path: took longer than N s``).

    Raises
    ------
    TimeLimitError
        From inside the block, once the time is up.
    ValueError
        For a limit that is not positive, or where there is no SIGALRM to keep it (Windows) or
        the caller is not the main thread (signals are delivered there only).

    Notes
    -----
    A real-time interval timer (``setitimer(ITIMER_REAL)``) sends SIGALRM, whose handler raises the
    error in the main thread. Python runs the handler between bytecodes, so a long call into native
    code (decoding a huge image, one strip of convolutions) finishes before the error is raised:
    the limit is kept within about the longest such call. The block must not hold resources that
    an exception at any point would leak; the analysis holds only memory. Limits do not nest: an
    inner one replaces an outer one's timer.
    """
    if seconds is None:
        yield
        return
    if not seconds > 0:
        raise ValueError(f"a time limit must be positive, got {seconds!r}")
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        raise ValueError("a time limit needs SIGALRM (Unix) and the main thread")

    def expired(signum, frame):
        raise TimeLimitError(path, f"took longer than {seconds:g} s (time limit)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def alarm_deferred() -> Iterator[None]:
    """Hold back SIGALRM (a :func:`time_limit` expiring) for the block, which must not be interrupted
    half-way (restoring a redirected file descriptor); it is delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
