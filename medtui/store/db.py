"""Opening the SQLite store: WAL, busy timeout, versioned schema migrations.

One connection per process or thread. The schema version lives in
``PRAGMA user_version``; each migration runs once, in order, in its own
transaction. Keep the database on local disk: WAL does not work on network
filesystems.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

import sqlite_utils

from medtui.errors import StoreError

DEFAULT_DB = "experiments.db"
BUSY_TIMEOUT_MS = 30_000


def default_db_path() -> Path:
    """``$MEDTUI_DB`` or ``experiments.db`` in the working directory."""
    return Path(os.environ.get("MEDTUI_DB") or DEFAULT_DB)


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": int,
            "name": str,
            "status": str,
            "paradigm": str,
            "tasks": str,
            "heldout": str,
            "model": str,
            "pretrained": str,
            "tune": str,
            "buffer_size": int,
            "seed": int,
            "config": str,
            "rows": str,
            "created_at": float,
            "updated_at": float,
            "started_at": float,
            "finished_at": float,
            "heartbeat_at": float,
            "host": str,
            "device": str,
            "gpu": str,
            "pid": int,
            "log_path": str,
            "git_commit": str,
            "git_dirty": int,
            "versions": str,
            "weights": str,
            "fingerprints": str,
            "error": str,
            "progress": str,
            "metrics": str,
            "last_stage": int,
            "cancel_requested": int,
        },
        pk="id",
        not_null={"status", "paradigm", "config", "created_at"},
        defaults={"last_stage": -1, "cancel_requested": 0, "buffer_size": 0},
    )
    db["runs"].create_index(["status"])
    db["runs"].create_index(["updated_at"])
    db["evaluations"].create(
        {
            "run_id": int,
            "row": int,
            "row_label": str,
            "task": str,
            "accuracy": float,
            "auc": float,
            "per_class": str,
            "n": int,
            "at": float,
        },
        pk=("run_id", "row", "task"),
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["steps"].create(
        {
            "id": int,
            "run_id": int,
            "stage": int,
            "step": int,
            "n_steps": int,
            "epoch": int,
            "loss": float,
            "lr": float,
            "throughput": float,
            "at": float,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["steps"].create_index(["run_id", "id"])
    db["events"].create(
        {"id": int, "run_id": int, "at": float, "level": str, "message": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["events"].create_index(["run_id", "id"])
    db["buffer"].create(
        {"run_id": int, "stage": int, "task": str, "count": int, "per_class": str, "indices": str},
        pk=("run_id", "stage", "task"),
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["checkpoints"].create(
        {"run_id": int, "stage": int, "path": str, "bytes": int, "at": float},
        pk=("run_id", "stage"),
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["settings"].create({"key": str, "value": str}, pk="key")


def _m2_studies(db: sqlite_utils.Database) -> None:
    """Studies (named grids of runs) and each run's place in one; existing runs get no study."""
    db["studies"].create(
        {"id": int, "name": str, "spec": str, "created_at": float, "updated_at": float},
        pk="id",
        not_null={"name", "spec", "created_at"},
    )
    db["studies"].create_index(["name"], unique=True)
    # plain ALTERs keep every existing row and column as it is
    db.execute("alter table runs add column study_id integer references studies(id)")
    db.execute("alter table runs add column study_key text")
    db["runs"].create_index(["study_id"])
    # runs executed elsewhere (a cluster job writing its own store file): where each stands in ingestion
    db["ingests"].create(
        {"run_id": int, "source": str, "job_id": str, "steps_after": int, "events_after": int, "done": int, "at": float},
        pk="run_id",
        foreign_keys=[("run_id", "runs", "id")],
        defaults={"steps_after": 0, "events_after": 0, "done": 0},
    )


def _m3_step_components(db: sqlite_utils.Database) -> None:
    """Loss components per logged step (JSON: component name → mean value), e.g. task, distill, penalty."""
    db["steps"].add_column("components", str)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_initial, _m2_studies, _m3_step_components]
"""Schema migrations, in order; the schema version is the number applied."""


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) the store at ``path``, migrated to the current schema.

    A file that is not an SQLite database, or one written by a newer medtui, gives a StoreError.
    """
    p = Path(path)
    if p.exists() and p.is_dir():
        raise StoreError(f"store {str(p)!r} is a directory, not a database file")
    if p.parent and not p.parent.exists():
        raise StoreError(f"folder of store {str(p)!r} does not exist")
    conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # a cluster job's own store file lives on a shared filesystem, read by the head from another
        # host: a rollback journal there, since WAL's shared memory does not work across hosts
        conn.execute(f"PRAGMA journal_mode={'DELETE' if os.environ.get('MEDTUI_STORE_JOURNAL') == 'delete' else 'WAL'}")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StoreError(f"{str(p)!r} is not a medtui store ({e})") from None
    db = sqlite_utils.Database(conn)
    if version > len(MIGRATIONS):
        conn.close()
        raise StoreError(f"store {str(p)!r} has schema version {version}, newer than this medtui ({len(MIGRATIONS)})")
    if version < len(MIGRATIONS):
        _migrate(db, version)
    return db


def _migrate(db: sqlite_utils.Database, version: int) -> None:
    """Apply the pending migrations, each in an immediate transaction (one process migrates, others wait)."""
    conn = db.conn
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current < number:
                MIGRATIONS[number - 1](db)
                conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
