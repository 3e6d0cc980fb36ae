"""Helpers shared by the CLI commands: the store path, JSON output, formatting."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from medtui.store.db import default_db_path
from medtui.store.store import Store


def db_path(db: str | None) -> Path:
    """The store path from ``--db``, ``$MEDTUI_DB`` or the default."""
    return Path(db).expanduser() if db else default_db_path()


def open_store(db: str | None, create: bool = False) -> Store:
    """Open the store named by ``--db`` (or the default); a missing store is an error unless ``create``."""
    return Store(db_path(db), create=create)


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def open_app(db: str | None, run_id: int | None = None) -> None:
    """Open the Textual app on the store (optionally on one run)."""
    from medtui.tui.app import make_app

    make_app(db_path(db), open_run=run_id).run()
