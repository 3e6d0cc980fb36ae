"""Opening the SQLite store: WAL, busy timeout, versioned schema migrations.

One connection per process or thread. The schema version lives in
``PRAGMA user_version``; each migration runs once, in order, in its own
transaction. Keep the database on local disk: WAL does not work on network
filesystems.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote

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


_savepoints = itertools.count()


def is_read_only(path: str | Path) -> bool:
    """Whether the store file must not be written: no write permission for us, or none at all.

    A file with every write bit cleared counts as read-only even for root: someone meant it so.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError:
        return False
    return not os.access(p, os.W_OK) or not mode & 0o222


def _check_path(p: Path, readonly: bool, create: bool) -> None:
    """Refuse, before SQLite touches anything, paths that cannot hold the store asked for."""
    if p.is_dir():
        raise StoreError(f"store {str(p)!r} is a directory, not a database file")
    if not p.parent.is_dir():
        raise StoreError(f"folder of store {str(p)!r} does not exist")
    if not p.exists():
        if readonly or not create:
            raise StoreError(f"no store at {p} (start a run first, or pass --db)")
        if not os.access(p.parent, os.W_OK):
            raise StoreError(f"cannot create store {str(p)!r}: its folder is not writable")
        return
    # The file itself is never opened here: closing any descriptor of a database file drops
    # every POSIX lock this process holds on it, including those of SQLite connections
    # already open in other threads (another process could then delete the live -wal file).
    # SQLite's first read tells a file that is not a database.
    if not readonly:
        if is_read_only(p):
            raise StoreError(f"store {str(p)!r} is read-only: this command writes to it")
        if not os.access(p.parent, os.W_OK):
            raise StoreError(f"store {str(p)!r} cannot be written: its folder is not writable (SQLite keeps its -wal file there)")


def _open_sqlite(p: Path, readonly: bool) -> sqlite3.Connection:
    if not readonly:
        return sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True)
    uri = f"file:{quote(str(p.resolve()))}?mode=ro"
    wal = Path(f"{p}-wal")
    # without a pending -wal file the store file holds everything: read it as immutable, which
    # creates no -shm/-wal files beside it (a read-only store stays exactly as it was)
    if not wal.exists() or wal.stat().st_size == 0:
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True)


def connect(path: str | Path, readonly: bool = False, create: bool = True) -> sqlite_utils.Database:
    """Open the store at ``path`` (creating it if ``create``), migrated to the current schema.

    ``readonly`` opens it with SQLite's ``mode=ro``: nothing is migrated, switched to WAL or
    written (a store of an older schema is read through a migrated copy in memory). A directory, a missing folder, a read-only file opened for writing, a file that is
    not a medtui store, or one written by a newer medtui give a one-line StoreError, and
    nothing is created or changed.
    """
    p = Path(path)
    _check_path(p, readonly, create)
    conn = _open_sqlite(p, readonly)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        foreign = version == 0 and conn.execute(
            "select count(*) from sqlite_master where type = 'table' and name not like 'sqlite_%'"
        ).fetchone()[0]
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StoreError(f"{str(p)!r} is not a medtui store ({e})") from None
    if version > len(MIGRATIONS):
        conn.close()
        raise StoreError(f"store {str(p)!r} has schema version {version}, newer than this medtui ({len(MIGRATIONS)}): upgrade medtui")
    if foreign:
        conn.close()
        raise StoreError(f"{str(p)!r} is not a medtui store (an SQLite database with other tables)")
    if readonly:
        if version < len(MIGRATIONS):
            conn = _migrated_copy(conn, p, version)
        conn.execute("PRAGMA query_only=ON")
        return sqlite_utils.Database(conn)
    try:
        # a cluster job's own store file lives on a shared filesystem, read by the head from another
        # host: a rollback journal there, since WAL's shared memory does not work across hosts
        conn.execute(f"PRAGMA journal_mode={'DELETE' if os.environ.get('MEDTUI_STORE_JOURNAL') == 'delete' else 'WAL'}")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StoreError(f"cannot open store {str(p)!r} for writing ({e})") from None
    db = sqlite_utils.Database(conn)
    if version < len(MIGRATIONS):
        _migrate(db, version)
    return db


def _migrated_copy(conn: sqlite3.Connection, p: Path, version: int) -> sqlite3.Connection:
    """An in-memory copy of an older read-only store, migrated to the current schema (the file is untouched).

    Closes ``conn``. Reads see the store as it was when it was opened.
    """
    mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=True)
    try:
        conn.backup(mem)
    except sqlite3.DatabaseError as e:
        mem.close()
        raise StoreError(f"cannot read store {str(p)!r} ({e})") from None
    finally:
        conn.close()
    mem.execute("PRAGMA foreign_keys=ON")
    _migrate(sqlite_utils.Database(mem), version)
    return mem


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes SQLite's write lock at its start (``BEGIN IMMEDIATE``).

    In WAL mode a deferred transaction that reads and then writes fails at once with
    "database is locked" when another connection committed in between, whatever the busy
    timeout; an immediate one waits its turn (up to the busy timeout) before reading anything.
    Inside an open transaction this is a savepoint, so the calls nest.
    """
    if conn.in_transaction:
        name = f"medtui_{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate(db: sqlite_utils.Database, version: int) -> None:
    """Apply the pending migrations, each in an immediate transaction (one process migrates, others wait)."""
    conn = db.conn
    for number in range(version + 1, len(MIGRATIONS) + 1):
        with write_transaction(conn):
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current < number:
                MIGRATIONS[number - 1](db)
                conn.execute(f"PRAGMA user_version={number}")
