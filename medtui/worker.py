"""``python -m medtui.worker RUN_ID --db PATH``: run one stored run (what background launches start)."""

from __future__ import annotations

import sys

from medtui.jobs.worker import main

if __name__ == "__main__":
    sys.exit(main())
