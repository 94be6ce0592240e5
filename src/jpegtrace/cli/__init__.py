"""The ``jpegtrace`` command line: a thin layer over the Python API, one module per command.

:mod:`~jpegtrace.cli.main` builds the parser; :mod:`~jpegtrace.cli.common` holds what the commands
share (one-line errors, argument types, model, data and output options).
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
