"""Reliability under load and faults: many workers on one store, readers polling, SIGKILL at awkward moments.

These start real worker processes on tiny synthetic runs (one epoch, a few dozen
images), so each test costs seconds of CPU per worker; they are marked slow.
"""

from __future__ import annotations

import os
import signal
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


# -- SIGKILL at awkward moments ----------------------------------------------------------------------
KILL_RUN = dict(tasks=("synth-cxr-a", "synth-derm"), heldout=("synth-blood",), epochs=2, batch_size=16,
                max_train=48, max_test=160, eval_batch_size=16)


def _evals(s: Store, rid: int, row: int) -> int:
    return s.db.execute("select count(*) from evaluations where run_id = ? and row = ?", [rid, row]).fetchone()[0]


#: Where to kill: a test over the run's stored state, polled every few milliseconds.
KILL_POINTS = {
    "just after start": lambda s, r: r["pid"] is not None and not (r["progress"] or {}),
    "during a stage": lambda s, r: r["last_stage"] == 1 and (r["progress"] or {}).get("stage") == 2 and (r["progress"] or {}).get("step", 0) > 0,
    # stage 2 has trained all its steps, its evaluation row is not stored yet: the worker is evaluating
    "during evaluation": lambda s, r: r["last_stage"] == 1 and (r["progress"] or {}).get("stage") == 2
    and (r["progress"] or {}).get("step") == (r["progress"] or {}).get("n_steps") and _evals(s, r["id"], 2) < 3,
}


def _kill_at_points(db: Path, killed: dict[str, int], timeout: float = 300) -> None:
    """Poll the runs together and SIGKILL each worker when its run reaches its kill point."""
    pending, deadline = dict(killed), time.time() + timeout
    while pending and time.time() < deadline:
        with Store(db) as s:
            for point, rid in list(pending.items()):
                run = s.get_run(rid)
                if run["status"] == "running" and KILL_POINTS[point](s, run):
                    os.kill(run["pid"], signal.SIGKILL)
                    del pending[point]
                else:
                    assert run["status"] in ("queued", "running"), f"run ended before the kill point {point!r}: {run['status']} {run['error']}"
        time.sleep(0.01)
    assert not pending, f"kill points never reached: {list(pending)}"


@pytest.mark.slow
def test_sigkill_at_several_points_shows_failed_and_resume_gives_the_same_matrix(db: Path) -> None:
    with Store(db) as s:
        s.set_setting("max_parallel", "4")
        ref = s.create_run(fast_config(name="uninterrupted", **KILL_RUN))
        killed = {point: s.create_run(fast_config(name=f"killed {point}", **KILL_RUN)) for point in KILL_POINTS}
    for rid in (ref, *killed.values()):
        launch(db, rid)
    _kill_at_points(db, killed)
    for rid in killed.values():  # the SIGKILLed worker is seen as dead, never as finished or running
        deadline = time.time() + 30
        while True:
            reconcile(db)
            with Store(db) as s:
                run = s.get_run(rid)
            if run["status"] == "failed" or time.time() > deadline:
                break
            time.sleep(0.2)
        assert run["status"] == "failed" and "died" in run["error"], (run["status"], run["error"])
    for rid in killed.values():  # in the background, side by side
        r = subprocess.run([*CLI, "resume", str(rid), "--detach", "--db", str(db)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "resumed after" in r.stderr, r.stderr
    runs = wait_all(db, [ref, *killed.values()], 600)
    assert {r["status"] for r in runs.values()} == {"finished"}
    with Store(db) as s:
        want = s.detail(ref)["matrix"]
        for point, rid in killed.items():
            assert s.detail(rid)["matrix"] == want, point
    print(f"\nreliability: {len(killed)} SIGKILLs ({', '.join(KILL_POINTS)}), {len(killed)} resumes, matrices equal the uninterrupted run's")


# -- kill -9 in the middle of store writes ------------------------------------------------------------
WRITER = """
import sys, time
from medtui.store.store import Store
store = Store(sys.argv[1]); rid = int(sys.argv[2]); batch = 0
while True:
    with store.write():  # one transaction of 200 log lines: all of it or none of it
        for i in range(200):
            store.log(rid, f"batch {batch} line {i}")
        store.update_run(rid, progress={"batch": batch})
    batch += 1
"""
KILLS = 8


@pytest.mark.slow
def test_kill_9_during_store_writes_never_corrupts_the_store(db: Path) -> None:
    import random

    with Store(db) as s:
        rid = s.create_run(fast_config(name="writer"), status="running")
    rng = random.Random(0)
    for k in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(rid)])
        with Store(db) as s:  # let it get going before the kill lands at a random moment
            base = s.db.execute("select count(*) from events where run_id = ?", [rid]).fetchone()[0]
        while True:
            with Store(db) as s:
                if s.db.execute("select count(*) from events where run_id = ?", [rid]).fetchone()[0] > base:
                    break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok", f"kill {k + 1}"
            n = conn.execute("select count(*) from events where run_id = ?", [rid]).fetchone()[0]
            assert n % 200 == 0, f"kill {k + 1}: a half-written transaction survived ({n} lines)"
        finally:
            conn.close()
    with Store(db) as s:  # and the store is still fully usable
        s.log(rid, "after the kills")
        assert s.get_run(rid)["progress"]["batch"] >= 0
    print(f"\nreliability: {KILLS} kill -9 during store writes, integrity_check ok after each")
