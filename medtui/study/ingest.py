"""Bringing results of runs executed elsewhere (cluster jobs) into the main store, exactly once.

A cluster job never opens the main store: it writes its run into a store file of its own, in
the run's job folder (on the shared filesystem), with a rollback journal. The head (``study
show``, ``medtui sync``, the Study screen, ``study run --headless``) reads that file read-only
and copies what is new into the main store. An ``ingests`` row per run records the source
and how far its steps and log lines were copied; each ingestion of a run happens in one
``BEGIN IMMEDIATE`` transaction of the main store that re-reads those marks first, so running
it twice, or in two processes at once, copies every row once. Evaluations, buffer contents and
checkpoints are upserts (idempotent by their keys); the run's columns are overwritten.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from medtui.store.store import Store

#: Run columns copied from a job's store (everything the job itself sets).
RUN_FIELDS = ("status", "rows", "started_at", "finished_at", "heartbeat_at", "host", "device", "gpu", "log_path", "git_commit",
              "git_dirty", "versions", "weights", "fingerprints", "error", "progress", "metrics", "last_stage")
TERMINAL = ("finished", "failed", "cancelled")


def register(store: Store, run_id: int, source: Path, job_id: str | None = None) -> None:
    """Record that run ``run_id`` executes elsewhere and writes into ``source`` (call inside the creating transaction)."""
    store.db.execute(
        "insert into ingests (run_id, source, job_id, steps_after, events_after, done, at) values (?, ?, ?, 0, 0, 0, ?) "
        "on conflict(run_id) do update set source = excluded.source, job_id = excluded.job_id, done = 0, at = excluded.at",
        [run_id, str(source), job_id, time.time()],
    )


def _open_source(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        conn.execute("select 1 from runs limit 1")
        return conn
    except sqlite3.Error:  # being created, or locked for a moment: the next ingestion gets it
        return None


def ingest_run(store: Store, run_id: int) -> int:
    """Copy what is new in run ``run_id``'s job store into the main store; returns how many rows were copied.

    Nothing happens when the job has not written its store yet or when the run is already done.
    """
    conn = store.db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("select source, steps_after, events_after, done from ingests where run_id = ?", [run_id]).fetchone()
        if row is None or row[3]:
            conn.execute("COMMIT")
            return 0
        source, steps_after, events_after, _ = row
        src = _open_source(Path(source))
        if src is None:
            conn.execute("COMMIT")
            return 0
        try:
            copied = _copy(store, src, run_id, steps_after, events_after)
        finally:
            src.close()
        conn.execute("COMMIT")
        return copied
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _copy(store: Store, src: sqlite3.Connection, run_id: int, steps_after: int, events_after: int) -> int:
    run = src.execute(f"select {', '.join(RUN_FIELDS)} from runs where id = ?", [run_id]).fetchone()
    if run is None:
        return 0
    db = store.db
    n = 0
    for table, pk in (("evaluations", ("run_id", "row", "task")), ("buffer", ("run_id", "stage", "task")), ("checkpoints", ("run_id", "stage"))):
        rows = [dict(r) for r in src.execute(f"select * from {table} where run_id = ?", [run_id])]
        if rows:
            db[table].upsert_all(rows, pk=pk)
            n += len(rows)
    last_step, last_event = steps_after, events_after
    steps = [dict(r) for r in src.execute("select * from steps where run_id = ? and id > ? order by id", [run_id, steps_after])]
    if steps:
        last_step = steps[-1]["id"]
        db["steps"].insert_all([{k: v for k, v in s.items() if k != "id"} for s in steps])
        n += len(steps)
    events = [dict(r) for r in src.execute("select * from events where run_id = ? and id > ? order by id", [run_id, events_after])]
    if events:
        last_event = events[-1]["id"]
        db["events"].insert_all([{k: v for k, v in e.items() if k != "id"} for e in events])
        n += len(events)
    fields = {k: run[k] for k in RUN_FIELDS}
    fields["updated_at"] = time.time()
    sets = ", ".join(f"{k} = ?" for k in fields)
    db.execute(f"update runs set {sets} where id = ?", [*fields.values(), run_id])
    db.execute("update ingests set steps_after = ?, events_after = ?, done = ?, at = ? where run_id = ?",
               [last_step, last_event, int(run["status"] in TERMINAL), time.time(), run_id])
    return n + 1


def pending(store: Store) -> list[dict[str, Any]]:
    """Runs executing elsewhere that are not done: run id, source, job id."""
    return [dict(zip(("run_id", "source", "job_id"), r)) for r in store.db.execute("select run_id, source, job_id from ingests where done = 0")]


def ingest_all(store: Store, check_jobs: bool = True) -> dict[str, int]:
    """Ingest every pending run; with ``check_jobs``, a job that ended without its store saying so is marked failed.

    Returns counts: ``runs`` looked at, ``rows`` copied, ``lost`` (jobs gone without a final status).
    """
    out = {"runs": 0, "rows": 0, "lost": 0}
    for p in pending(store):
        out["runs"] += 1
        out["rows"] += ingest_run(store, p["run_id"])
        if check_jobs and p["job_id"]:
            out["lost"] += _check_job(store, p)
    return out


def _check_job(store: Store, p: dict[str, Any]) -> int:
    """Mark a run failed (or cancelled) when its job has ended but its store never recorded an end."""
    from medtui.study.cluster import job_state

    state = job_state(p["job_id"], Path(p["source"]).parent)
    if state in (None, "RUNNING", "PENDING", "UNKNOWN", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED"):
        return 0
    # the job is over: one last ingestion picks up a final status written just before it ended
    ingest_run(store, p["run_id"])
    row = store.db.execute("select done from ingests where run_id = ?", [p["run_id"]]).fetchone()
    if row is None or row[0]:
        return 0
    status = "cancelled" if state.startswith("CANCELLED") else "failed"
    with store.write():
        store.db.execute("update runs set status = ?, error = ?, finished_at = ?, updated_at = ? where id = ?",
                         [status, f"job {p['job_id']} ended ({state}) without recording an end", time.time(), time.time(), p["run_id"]])
        store.db.execute("update ingests set done = 1, at = ? where run_id = ?", [time.time(), p["run_id"]])
    store.log(p["run_id"], f"job {p['job_id']} ended ({state}); marked {status}", "error")
    return 1
