"""Helpers shared by the CLI commands: the store path, JSON output, formatting.

The store is the one the user named: ``medtui --db PATH CMD`` and ``medtui CMD --db PATH``
mean the same (naming two different stores is an error), else ``$MEDTUI_DB`` or
``./experiments.db``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

try:  # Typer >= 0.29 vendors click; older releases use the click package itself
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click import get_current_context  # type: ignore[no-redef]

from medtui.errors import StoreError, UsageError
from medtui.store.db import default_db_path, is_read_only
from medtui.store.store import Store


def _global_db() -> str | None:
    """The ``--db`` given before the command (``medtui --db PATH CMD``), if any."""
    ctx = get_current_context(silent=True)
    return ctx.find_root().params.get("db") if ctx is not None else None


def db_path(db: str | None) -> Path:
    """The store path from the command's ``--db``, the global ``--db``, ``$MEDTUI_DB`` or the default."""
    root = _global_db()
    if db and root and Path(db).expanduser().resolve() != Path(root).expanduser().resolve():
        raise UsageError(f"two different stores named: --db {root} before the command and --db {db} after it")
    chosen = db or root
    path = Path(chosen).expanduser() if chosen else default_db_path()
    # checked here, for every command, before anything is opened or created
    if path.is_dir():
        raise StoreError(f"store {str(path)!r} is a directory, not a database file")
    if not path.parent.is_dir():
        raise StoreError(f"folder of store {str(path)!r} does not exist")
    return path


def store_is_read_only(path: Path) -> bool:
    """Whether a store can only be read here (the file, or the folder SQLite writes its -wal file in)."""
    return path.exists() and (is_read_only(path) or not os.access(path.parent, os.W_OK))


def open_store(db: str | None, create: bool = False, write: bool = False) -> Store:
    """Open the store named by ``--db`` (or the default); a missing store is an error unless ``create``.

    A command that only reads (neither ``create`` nor ``write``) opens a store it may not
    write read-only (nothing migrated, nothing reconciled); one that writes gets an error.
    """
    path = db_path(db)
    if create or write:
        return Store(path, create=create)
    return Store(path, create=False, readonly=store_is_read_only(path))


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def open_app(db: str | None, run_id: int | None = None) -> None:
    """Open the Textual app on the store (optionally on one run)."""
    from medtui.tui.app import make_app

    make_app(db_path(db), open_run=run_id).run()
