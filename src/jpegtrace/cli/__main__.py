"""``python -m jpegtrace.cli``: the same as the ``jpegtrace`` command."""

import sys

from .main import main

sys.exit(main())
