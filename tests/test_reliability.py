"""Reliability under load and faults: many workers on one store, readers polling, SIGKILL at awkward moments.

These start real worker processes on tiny synthetic runs (one epoch, a few dozen
images), so each test costs seconds of CPU per worker; they are marked slow.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from medtui.jobs.queue import launch, reconcile
from medtui.store.store import Store
from helpers import fast_config

CLI = [sys.executable, "-m", "medtui"]
TINY = dict(tasks=("synth-cxr-a",), epochs=1, batch_size=16, max_train=32, max_test=16, eval_batch_size=32)


class Readers:
    """Threads that poll the store as the app and ``medtui runs``/``show`` do, recording every error."""

    def __init__(self, db: Path, n: int = 3, every_s: float = 0.05) -> None:
        self.db, self.every_s = db, every_s
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.statuses: set[str] = set()
        self.failures: list[str] = []
        self.polls = 0
        self.threads = [threading.Thread(target=self._poll, daemon=True) for _ in range(n)]

    def _poll(self) -> None:
        while not self.stop.is_set():
            try:
                with Store(self.db) as s:
                    reconcile(s)
                    for r in s.list_runs():
                        d = s.detail(r["id"])
                        self.statuses.add(d["status"])
                        if d["status"] == "failed":
                            self.failures.append(f"run {d['id']}: {d['error']}")
                self.polls += 1
            except Exception as e:  # noqa: BLE001 - the test counts every failure
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(self.every_s)

    def __enter__(self) -> "Readers":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def wait_all(db: Path, ids: list[int], timeout: float) -> dict[int, dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with Store(db) as s:
            runs = {i: s.get_run(i) for i in ids}
        if all(r["status"] not in ("queued", "running") for r in runs.values()):
            return runs
        time.sleep(0.5)
    raise AssertionError(f"runs still active after {timeout} s: {[(i, r['status']) for i, r in runs.items()]}")


@pytest.mark.slow
def test_eight_detached_runs_on_one_store_with_readers(db: Path) -> None:
    with Store(db) as s:
        s.set_setting("max_parallel", "8")
        ids = [s.create_run(fast_config(name=f"load {i}", seed=i, **TINY)) for i in range(8)]
    with Readers(db) as readers:
        for rid in ids:
            launch(db, rid)
        runs = wait_all(db, ids, 600)
    logs = "".join(Path(r["log_path"]).read_text() for r in runs.values() if r["log_path"])
    assert "database is locked" not in logs
    assert not readers.errors, readers.errors[:3]
    assert readers.polls > 0
    assert "failed" not in readers.statuses, f"a run was judged dead: {readers.failures[:3]}"
    assert {r["status"] for r in runs.values()} == {"finished"}, [(i, r["status"], r["error"]) for i, r in runs.items()]
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    conn.close()
