"""The exceptions jpegtrace raises for bad input; each carries the offending path and a reason."""

from __future__ import annotations

import os


class JpegTraceError(Exception):
    """An input jpegtrace cannot use: an unreadable image, a bad weights file, a bad option.

    Attributes
    ----------
    path : str or None
        The file concerned, when there is one.
    reason : str
        One line saying what is wrong.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fsdecode(path)
        self.reason = reason
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path is not None else self.reason


class ImageReadError(JpegTraceError):
    """An image file that cannot be read or decoded."""


class ModelError(JpegTraceError):
    """A weights file that is missing, unreadable or does not match the network."""


class TimeLimitError(JpegTraceError):
    """Work on one input that ran past its time limit (:func:`jpegtrace.limits.time_limit`)."""
