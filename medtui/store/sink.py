"""The store as an event sink: what the engine reports lands in SQLite as it happens.

Each event is written in its own short transaction (``BEGIN IMMEDIATE``), so a
finished stage's evaluations are committed before the next stage starts and killing
the process loses at most the step in flight. A write that still finds the store
locked after SQLite's busy timeout is retried a few times with backoff (and logged)
instead of failing the run: a transaction either commits whole or not at all, so
retrying it is safe.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from medtui.events import (
    BufferUpdated,
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
    StepLogged,
    TaskEvaluated,
)
from medtui.format import fmt_duration
from medtui.store.store import Store

log = logging.getLogger("medtui.store")

#: Further attempts at a write that found the store locked, and the first wait (doubling, capped).
RETRIES = 6
BACKOFF_S = 0.5
BACKOFF_MAX_S = 8.0


def is_locked(error: BaseException) -> bool:
    """Whether an SQLite error means "another connection holds the lock" (worth retrying)."""
    text = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class StoreSink:
    """Writes one run's events into a :class:`Store`, retrying writes that find the store locked."""

    def __init__(self, store: Store, run_id: int, retries: int = RETRIES, backoff_s: float = BACKOFF_S) -> None:
        self.store = store
        self.run_id = run_id
        self.retries, self.backoff_s = retries, backoff_s
        #: How many writes had to be retried (reported in the run's log).
        self.retried = 0
        self.progress: dict[str, Any] = dict(store.get_run(run_id).get("progress") or {})
        self._cells: list[TaskEvaluated] = []

    def _progress(self, **fields: Any) -> None:
        now = time.time()
        # `at` lets a reader take the time since this write off the ETA (medtui.eta)
        self.progress.update(fields, at=now)
        self.store.update_run(self.run_id, progress=self.progress, heartbeat_at=now)

    def __call__(self, event: Event) -> None:
        """Record one event; a locked store is waited out (bounded retries with backoff).

        The cells of one evaluation point arrive together and are written together (one
        transaction, one metrics refresh) when the next event comes, which is always before the
        next stage: the row's ``StageFinished``, or the run's end.
        """
        if isinstance(event, TaskEvaluated):
            if self._cells and self._cells[0].row != event.row:
                self.flush()
            self._cells.append(event)
            return
        self.flush()
        self._write(lambda: self._record(event), type(event).__name__)

    def flush(self) -> None:
        """Write the evaluation cells held back so far."""
        if self._cells:
            cells = [c.to_dict() for c in self._cells]
            self._write(lambda: self.store.record_evaluations(self.run_id, cells), "TaskEvaluated")
            self._cells.clear()

    def _write(self, record: Callable[[], None], what: str) -> None:
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                # one transaction per event: a retry never writes half an event twice
                with self.store.write():
                    record()
                return
            except sqlite3.OperationalError as e:
                if not is_locked(e) or attempt == self.retries:
                    raise
                self.retried += 1
                log.warning("run %s: store busy (%s) writing %s; retry %d/%d in %.1f s",
                            self.run_id, e, what, attempt + 1, self.retries, wait)
                time.sleep(wait)
                wait = min(wait * 2, BACKOFF_MAX_S)

    def _record(self, event: Event) -> None:
        s, rid = self.store, self.run_id
        if isinstance(event, RunStarted):
            s.update_run(
                rid,
                rows=event.rows,
                device=event.device,
                weights=event.weights,
                fingerprints=event.fingerprints,
            )
            # rows_done: rows 0..start_row are finished when resuming, none when starting
            self._progress(
                n_stages=len(event.rows) - 1, stage=event.start_row, step=0, n_steps=0,
                plan=event.plan, rows_done=event.start_row + 1 if event.start_row else 0,
                n_params=event.n_params, n_trainable=event.n_trainable,
            )
            s.log(rid, f"{event.n_params:,} parameters, {event.n_trainable:,} trained; weights: {event.weights}; device {event.device}")
        elif isinstance(event, StageStarted):
            self._progress(stage=event.stage, label=event.label, step=0, n_steps=event.n_steps, epoch=1)
            s.log(rid, f"stage {event.stage}: {event.label} ({event.n_samples} samples, {event.n_steps} steps)")
        elif isinstance(event, StepLogged):
            with s.write():
                row = {k: v for k, v in event.to_dict().items() if k != "kind"}
                row["components"] = json.dumps(row.get("components") or {})
                s._insert("steps", {"run_id": rid, "at": time.time(), **row})
                self._progress(step=event.step, n_steps=event.n_steps, epoch=event.epoch, loss=event.loss, throughput=event.throughput)
        elif isinstance(event, BufferUpdated):
            with s.write():
                for task, count in event.per_task.items():
                    idx = event.indices.get(task, [])
                    s._insert(
                        "buffer",
                        {
                            "run_id": rid,
                            "stage": event.stage,
                            "task": task,
                            "count": count,
                            "per_class": json.dumps(event.per_class.get(task, [])),
                            "indices": json.dumps(idx),
                        },
                        replace_pk=("run_id", "stage", "task"),
                    )
            s.log(rid, f"buffer after stage {event.stage}: " + ", ".join(f"{t} {n}" for t, n in event.per_task.items()))
        elif isinstance(event, StageFinished):
            with s.write():
                if event.checkpoint:
                    p = Path(event.checkpoint)
                    s._insert(
                        "checkpoints",
                        {"run_id": rid, "stage": event.stage, "path": str(p), "bytes": p.stat().st_size, "at": time.time()},
                        replace_pk=("run_id", "stage"),
                    )
                s.update_run(rid, last_stage=event.stage)
                # the zero-shot row is evaluation only: its time measures the evaluation rate
                timing = {"eval_s": event.seconds} if event.stage == 0 else {}
                self._progress(stage=event.stage, finished_stage=event.stage, rows_done=event.stage + 1, **timing)
            if event.stage:
                s.log(rid, f"stage {event.stage} done in {fmt_duration(event.seconds)}")
        elif isinstance(event, LogLine):
            s.log(rid, event.message, event.level)
        elif isinstance(event, RunFinished):
            s.update_run(rid, status=event.status, finished_at=time.time(), error=event.error, pid=None)
            s.log(rid, f"run {event.status}" + (f": {event.error}" if event.error else ""), "error" if event.status == "failed" else "info")
