"""The Python API of the run store: runs, their accuracy matrices, steps, log lines, buffer, checkpoints.

JSON columns hold lists and dicts; timestamps are UNIX seconds (floats). Metrics
are computed from the stored matrix (see :mod:`medtui.metrics`) and cached in
``runs.metrics`` whenever an evaluation lands, so listings need no recomputation.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import sqlite_utils

from medtui.config import RunConfig, from_mapping, stage_labels
from medtui.errors import StoreError
from medtui.metrics import compute_metrics
from medtui.store.db import connect, default_db_path, write_transaction

STATUSES: tuple[str, ...] = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE: tuple[str, ...] = ("queued", "running")
_JSON_COLUMNS = ("tasks", "heldout", "config", "rows", "versions", "fingerprints", "progress", "metrics")
#: Columns a run listing needs (everything but the bulky config).
LIST_COLUMNS = (
    "id, name, status, paradigm, tasks, heldout, model, pretrained, tune, buffer_size, seed, rows, created_at, updated_at, "
    "started_at, finished_at, heartbeat_at, host, device, gpu, pid, error, progress, metrics, last_stage, "
    "cancel_requested, weights"
)


def _loads(row: dict[str, Any]) -> dict[str, Any]:
    for k in _JSON_COLUMNS:
        if k in row and isinstance(row[k], str):
            row[k] = json.loads(row[k])
    return row


class Store:
    """A handle on one SQLite store file (one connection: use one Store per thread).

    Every write goes through :meth:`write` (``BEGIN IMMEDIATE``), in short transactions.
    ``readonly`` opens the file with SQLite's ``mode=ro`` (nothing can be written).
    """

    def __init__(self, path: str | Path | None = None, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.readonly = readonly
        self.db: sqlite_utils.Database = connect(self.path, readonly=readonly, create=create)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------
    def write(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction holding the write lock from its first statement (nests as a savepoint)."""
        return write_transaction(self.db.conn)

    def _insert(self, table: str, row: Mapping[str, Any], replace_pk: tuple[str, ...] = ()) -> int:
        """Insert ``row`` (plain SQL: no schema look-ups inside the transaction); upsert on ``replace_pk``."""
        cols = list(row)
        sql = f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})"
        if replace_pk:
            rest = [c for c in cols if c not in replace_pk]
            sql += f" on conflict ({', '.join(replace_pk)}) do " + (
                "update set " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "nothing"
            )
        with self.write():
            return int(self.db.execute(sql, [row[c] for c in cols]).lastrowid)

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, config: RunConfig, status: str = "queued", **fields: Any) -> int:
        """Record a new run of a resolved ``config``; returns its id."""
        now = time.time()
        row = {
            "name": config.name,
            "status": status,
            "paradigm": config.paradigm,
            "tasks": json.dumps(list(config.tasks)),
            "heldout": json.dumps(list(config.heldout)),
            "model": config.model,
            "pretrained": config.pretrained,
            "tune": config.tune,
            "buffer_size": config.buffer_size,
            "seed": config.seed,
            "config": json.dumps(config.to_dict()),
            "rows": json.dumps(["zero-shot", *stage_labels(config)]),
            "created_at": now,
            "updated_at": now,
            "progress": json.dumps({}),
            "metrics": json.dumps({}),
            "last_stage": -1,
            "cancel_requested": 0,
        }
        row.update({k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items()})
        return self._insert("runs", row)

    def update_run(self, run_id: int, *, where: str = "", where_args: tuple[Any, ...] = (), **fields: Any) -> bool:
        """Set columns of a run (dict/list values are stored as JSON); returns whether a row changed.

        ``where`` adds a condition (SQL over the run's columns, with ``where_args``) so that a
        check and its update are one statement: the update happens only if the run still
        matches (no other process can change it in between).
        """
        enc = {k: json.dumps(v) if k in _JSON_COLUMNS and not isinstance(v, str) else v for k, v in fields.items()}
        enc["updated_at"] = time.time()
        sql = f"update runs set {', '.join(f'{k} = ?' for k in enc)} where id = ?" + (f" and ({where})" if where else "")
        with self.write():
            changed = self.db.execute(sql, [*enc.values(), run_id, *where_args]).rowcount
        if not changed and not where:
            raise StoreError(f"no run with id {run_id} in {self.path}")
        return bool(changed)

    def get_run(self, run_id: int) -> dict[str, Any]:
        """A run's row with JSON columns decoded; StoreError if there is no such run."""
        rows = list(self.db.query("select * from runs where id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run with id {run_id} in {self.path}")
        return _loads(rows[0])

    def resolve_ref(self, ref: str | int) -> int:
        """A run id from a reference: its id, or its exact name (most recent if several)."""
        if isinstance(ref, int) or str(ref).isdigit():
            self.get_run(int(ref))
            return int(ref)
        rows = list(self.db.query("select id from runs where name = ? order by id desc limit 1", [ref]))
        if not rows:
            raise StoreError(f"no run with id or name {ref!r} in {self.path}")
        return int(rows[0]["id"])

    def config(self, run_id: int) -> RunConfig:
        """The resolved config a run was started with."""
        return from_mapping(self.get_run(run_id)["config"], origin=f"run {run_id}")

    def list_runs(self, status: str | None = None, limit: int | None = None, updated_after: float | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, without their configs (optionally only those changed after a time)."""
        sql = f"select {LIST_COLUMNS} from runs"
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if updated_after is not None:
            where.append("updated_at > ?")
            args.append(updated_after)
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by id desc"
        if limit:
            sql += f" limit {int(limit)}"
        return [_loads(r) for r in self.db.query(sql, args)]

    def delete_run(self, run_id: int) -> dict[str, Any]:
        """Remove a run and everything recorded for it; returns the deleted row."""
        run = self.get_run(run_id)
        with self.write():
            for table in ("evaluations", "steps", "events", "buffer", "checkpoints", "ingests"):
                self.db.execute(f"delete from {table} where run_id = ?", [run_id])
            self.db.execute("delete from runs where id = ?", [run_id])
        return run

    def request_cancel(self, run_id: int) -> bool:
        """Ask a running run to stop after its current step (the worker polls this flag).

        Returns False when a cancel was already pending (or the run is no longer running).
        """
        return self.update_run(run_id, cancel_requested=1, where="status = 'running' and not cancel_requested")

    def cancel_requested(self, run_id: int) -> bool:
        """Whether a cancel was requested for the run."""
        row = self.db.execute("select cancel_requested from runs where id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    # -- results -------------------------------------------------------------------------------
    def matrix(self, run_id: int, run: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run's accuracy matrix, AUC matrix and per-class accuracies (None where not evaluated)."""
        run = run or self.get_run(run_id)
        columns = list(run["tasks"]) + list(run["heldout"])
        rows = list(run["rows"])
        acc: list[list[float | None]] = [[None] * len(columns) for _ in rows]
        auc: list[list[float | None]] = [[None] * len(columns) for _ in rows]
        per_class: dict[str, dict[str, list[float | None]]] = {}
        col = {c: j for j, c in enumerate(columns)}
        for e in self.db.query("select row, task, accuracy, auc, per_class from evaluations where run_id = ?", [run_id]):
            i, j = e["row"], col.get(e["task"])
            if j is None or i >= len(rows):
                continue
            acc[i][j] = e["accuracy"]
            auc[i][j] = e["auc"]
            per_class.setdefault(rows[i], {})[e["task"]] = json.loads(e["per_class"] or "[]")
        return {"rows": rows, "columns": columns, "heldout": list(run["heldout"]), "matrix": acc, "auc": auc, "per_class": per_class}

    def record_evaluation(self, run_id: int, ev: dict[str, Any]) -> None:
        """Store one cell (upsert) and refresh the run's cached metrics, in one transaction."""
        self.record_evaluations(run_id, [ev])

    def record_evaluations(self, run_id: int, evs: list[dict[str, Any]]) -> None:
        """Store cells (an evaluation point's row) and refresh the cached metrics once, in one transaction.

        The cost of a row is its cells plus one metrics refresh, however long the run has become.
        """
        if not evs:
            return
        with self.write():
            now = time.time()
            for ev in evs:
                self._insert(
                    "evaluations",
                    {
                        "run_id": run_id,
                        "row": ev["row"],
                        "row_label": ev["row_label"],
                        "task": ev["task"],
                        "accuracy": ev["accuracy"],
                        "auc": ev["auc"],
                        "per_class": json.dumps(ev["per_class"]),
                        "n": ev["n"],
                        "at": now,
                    },
                    replace_pk=("run_id", "row", "task"),
                )
            self.refresh_metrics(run_id)

    def refresh_metrics(self, run_id: int) -> dict[str, float | None]:
        """Recompute the run's metrics from its stored accuracies and cache them."""
        row = self.db.execute("select paradigm, tasks, heldout, rows from runs where id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id} in {self.path}")
        paradigm, tasks, heldout, rows = row[0], json.loads(row[1]), json.loads(row[2]), json.loads(row[3])
        col = {c: j for j, c in enumerate(tasks + heldout)}
        acc: list[list[float | None]] = [[None] * len(col) for _ in rows]
        # accuracies only: the per-class lists and AUCs are not needed for the metrics
        for i, task, a in self.db.execute("select row, task, accuracy from evaluations where run_id = ?", [run_id]):
            j = col.get(task)
            if j is not None and i < len(rows):
                acc[i][j] = a
        metrics = compute_metrics(acc, paradigm, len(tasks))
        self.update_run(run_id, metrics=metrics)
        return metrics

    def buffer(self, run_id: int, run: dict[str, Any] | None = None) -> dict[str, Any]:
        """The replay buffer after the last recorded stage: budget, per-task and per-class counts."""
        run = run or self.get_run(run_id)
        last = self.db.execute("select max(stage) from buffer where run_id = ?", [run_id]).fetchone()[0]
        per_task: dict[str, int] = {}
        per_class: dict[str, list[int]] = {}
        if last is not None:
            for r in self.db.query("select task, count, per_class from buffer where run_id = ? and stage = ? order by rowid", [run_id, last]):
                per_task[r["task"]] = r["count"]
                per_class[r["task"]] = json.loads(r["per_class"] or "[]")
        return {"budget": run["buffer_size"], "per_task": per_task, "per_class": per_class, "stage": last}

    def steps(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Logged training steps (loss, its ``components`` as a dict, lr, throughput) after row id ``after_id``."""
        sql = "select * from steps where run_id = ? and id > ? order by id"
        if limit:
            sql += f" limit {int(limit)}"
        rows = list(self.db.query(sql, [run_id, after_id]))
        for r in rows:
            r["components"] = json.loads(r.get("components") or "{}")
        return rows

    def events(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Log lines of a run after row id ``after_id``, oldest first."""
        sql = "select * from events where run_id = ? and id > ? order by id"
        if limit:
            sql += f" limit {int(limit)}"
        return list(self.db.query(sql, [run_id, after_id]))

    def log(self, run_id: int, message: str, level: str = "info") -> None:
        """Append a log line to a run."""
        self._insert("events", {"run_id": run_id, "at": time.time(), "level": level, "message": message})

    def checkpoints(self, run_id: int) -> list[dict[str, Any]]:
        """Checkpoint records of a run, latest stage last."""
        return list(self.db.query("select * from checkpoints where run_id = ? order by stage", [run_id]))

    def latest_checkpoint(self, run_id: int) -> tuple[int, Path] | None:
        """The newest stage whose checkpoint file still exists, with its path."""
        for c in reversed(self.checkpoints(run_id)):
            if c["path"] and Path(c["path"]).is_file():
                return int(c["stage"]), Path(c["path"])
        return None

    def detail(self, run_id: int) -> dict[str, Any]:
        """Everything about one run as a JSON-ready dict (what ``medtui show --json`` prints)."""
        run = self.get_run(run_id)
        m = self.matrix(run_id, run)
        return {
            "id": run["id"],
            "name": run["name"],
            "status": run["status"],
            "paradigm": run["paradigm"],
            "config": run["config"],
            "rows": m["rows"],
            "columns": m["columns"],
            "heldout": m["heldout"],
            "matrix": m["matrix"],
            "auc": m["auc"],
            "per_class": m["per_class"],
            "metrics": run["metrics"] or {},
            "buffer": {k: v for k, v in self.buffer(run_id, run).items() if k in ("budget", "per_task", "per_class")},
            "pid": run["pid"],
            "progress": run["progress"] or {},
            "error": run["error"],
            "device": run["device"],
            "gpu": run["gpu"],
            "host": run["host"],
            "weights": run["weights"],
            "created_at": run["created_at"],
            "started_at": run["started_at"],
            "finished_at": run["finished_at"],
            "heartbeat_at": run["heartbeat_at"],
            "log_path": run["log_path"],
            "git": {"commit": run["git_commit"], "dirty": None if run["git_dirty"] is None else bool(run["git_dirty"])},
            "versions": run["versions"] or {},
            "fingerprints": run["fingerprints"] or {},
            "checkpoints": [{"stage": c["stage"], "path": c["path"], "bytes": c["bytes"]} for c in self.checkpoints(run_id)],
        }

    # -- settings -----------------------------------------------------------------------------
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        """A stored setting (e.g. ``max_parallel``)."""
        row = self.db.execute("select value from settings where key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting."""
        self._insert("settings", {"key": key, "value": value}, replace_pk=("key",))

    def iter_ids(self, status: str | None = None) -> Iterator[int]:
        """Run ids, oldest first (optionally of one status)."""
        sql = "select id from runs" + (" where status = ?" if status else "") + " order by id"
        for row in self.db.execute(sql, [status] if status else []):
            yield int(row[0])
