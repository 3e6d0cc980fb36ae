"""``python -m medtui``: the same as the ``medtui`` command."""

from __future__ import annotations

import sys

from medtui.cli import main

if __name__ == "__main__":
    sys.exit(main())
