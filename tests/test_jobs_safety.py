"""Starting and watching workers safely: one claim per run, the parallel limit, pids at spawn, liveness, cancel, heartbeat."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtui.cli import app
from medtui.errors import UsageError
from medtui.jobs import queue as jobs
from medtui.jobs.worker import Heartbeat
from medtui.store.store import Store
from helpers import fast_config

CLI = [sys.executable, "-m", "medtui"]
TINY = ["--tasks", "synth-cxr-a", "--epochs", "1", "--batch-size", "16", "--max-train", "32", "--max-test", "16", "--device", "cpu"]


def test_two_launchers_racing_claim_a_run_once(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db) as s:
        rid = s.create_run(fast_config())
    spawned: list[int] = []
    monkeypatch.setattr(jobs, "spawn", lambda path, run_id, gpu=None, threads=None: spawned.append(run_id) or 4242)
    both_checked = threading.Barrier(2, timeout=5)
    # both launchers reach the claim together: each has read the run as startable by then
    monkeypatch.setattr(jobs, "gpu_ids", lambda: (both_checked.wait(), [])[1])
    results: list[object] = []

    def go() -> None:
        try:
            results.append(jobs.launch(db, rid))
        except UsageError as e:
            results.append(e)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert spawned == [rid], "exactly one launcher may start the run"
    assert sum(isinstance(r, UsageError) and "already running" in str(r) for r in results) == 1


def test_a_scheduler_between_storing_and_starting_a_launch_does_not_take_it(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's refresh runs the scheduler every few tenths of a second; landing right after
    the launched run is stored, it must neither start the run itself nor make the launch fail."""
    spawned: list[int] = []
    monkeypatch.setattr(jobs, "spawn", lambda path, run_id, gpu=None, threads=None: spawned.append(run_id) or 4242)
    real = Store.create_run

    schedulers: list[threading.Thread] = []

    def stored_then_scheduled(self: Store, *args: object, **kwargs: object) -> int:
        run_id = real(self, *args, **kwargs)
        schedulers.append(threading.Thread(target=jobs.schedule, args=(db,)))  # another process's scheduler, now
        schedulers[-1].start()
        return run_id

    monkeypatch.setattr(Store, "create_run", stored_then_scheduled)
    rid, started = jobs.launch_new(db, fast_config())
    schedulers[0].join(timeout=60)
    assert not schedulers[0].is_alive()
    assert started and spawned == [rid], "the launch starts the run, once"
    with Store(db) as s:
        run = s.get_run(rid)
    assert run["status"] == "running" and run["heartbeat_at"] is not None


def test_a_launch_whose_worker_cannot_start_is_failed_with_the_reason(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exec(*args: object, **kwargs: object) -> int:
        raise OSError("no such interpreter")

    monkeypatch.setattr(jobs, "spawn", no_exec)
    with pytest.raises(OSError):
        jobs.launch_new(db, fast_config())
    with Store(db) as s:
        (run,) = s.list_runs()
    assert run["status"] == "failed" and "did not start: no such interpreter" in run["error"]


def test_detach_respects_max_parallel_and_says_so(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[int] = []
    monkeypatch.setattr(jobs, "spawn", lambda path, run_id, gpu=None, threads=None: spawned.append(run_id) or 4242)
    runner = CliRunner()
    assert runner.invoke(app, ["queue", "--max-parallel", "1", "--db", str(db)]).exit_code == 0
    first = runner.invoke(app, ["run", "--detach", *TINY, "--db", str(db)])
    second = runner.invoke(app, ["run", "--detach", *TINY, "--db", str(db)])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    a, b = int(first.stdout.split()[0]), int(second.stdout.split()[0])
    assert spawned == [a]
    assert "queued: 1 running, at most 1 at once" in second.stderr
    with Store(db) as s:
        assert s.get_run(b)["status"] == "queued"


def test_an_app_launch_respects_max_parallel_too(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[int] = []
    monkeypatch.setattr(jobs, "spawn", lambda path, run_id, gpu=None, threads=None: spawned.append(run_id) or 4242)
    with Store(db) as s:
        s.set_setting("max_parallel", "1")
    first, started_first = jobs.launch_new(db, fast_config())
    second, started_second = jobs.launch_new(db, fast_config())
    assert (started_first, started_second) == (True, False) and spawned == [first]
    with Store(db) as s:
        assert s.get_run(second)["status"] == "queued"
        s.update_run(first, status="finished", finished_at=time.time())
    assert jobs.schedule(db) == [second], "the queued launch starts when the slot frees"


def test_pid_is_recorded_at_spawn(db: Path) -> None:
    with Store(db) as s:
        rid = s.create_run(fast_config())
    claimed, _ = jobs._claim(Store(db), rid, [])
    assert claimed
    pid = jobs.spawn(db, rid)
    try:
        with Store(db) as s:
            run = s.get_run(rid)  # read at once: the worker has not even imported medtui yet
        assert run["pid"] == pid and run["status"] == "running"
    finally:
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not jobs.pid_alive(pid):
            break
        time.sleep(0.1)
    assert jobs.reconcile(db) == [rid]


@pytest.mark.slow
def test_a_starting_headless_run_never_shows_failed(db: Path) -> None:
    proc = subprocess.Popen([*CLI, "run", "--headless", *TINY, "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: set[str] = set()
    while proc.poll() is None:
        if db.exists():
            try:
                with Store(db) as s:
                    jobs.reconcile(s)
                    seen |= {r["status"] for r in s.list_runs()}
            except Exception:  # the store may not have its schema yet in the first milliseconds
                pass
        time.sleep(0.02)
    assert proc.returncode == 0
    assert "running" in seen and "failed" not in seen, seen


def test_second_cancel_says_one_is_pending(db: Path) -> None:
    with Store(db) as s:
        rid = s.create_run(fast_config(), status="running", pid=None, heartbeat_at=time.time())
    assert "cancel requested" in jobs.cancel(db, rid)
    assert "already pending" in jobs.cancel(db, rid)


def test_reconcile_does_not_fail_a_run_that_beat_after_it_was_read(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db) as s:
        rid = s.create_run(fast_config(), status="running", pid=None, heartbeat_at=time.time() - 3600)
    real = Store.list_runs

    def read_then_worker_beats(self: Store, *a: object, **k: object) -> list:
        rows = real(self, *a, **k)
        with Store(db) as w:  # the worker starts between the reading and the judgement
            w.update_run(rid, pid=os.getpid(), heartbeat_at=time.time())
        return rows

    monkeypatch.setattr(Store, "list_runs", read_then_worker_beats)
    assert jobs.reconcile(db) == []
    monkeypatch.setattr(Store, "list_runs", real)
    with Store(db) as s:
        assert s.get_run(rid)["status"] == "running"


def test_heartbeat_logs_failures_and_fails_the_run_when_it_cannot_write(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    with Store(db) as s:
        rid = s.create_run(fast_config(), status="running")

    def locked(self: Store, *a: object, **k: object) -> bool:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Store, "update_run", locked)
    stop, out = threading.Event(), io.StringIO()
    heart = Heartbeat(db, rid, stop, every_s=0.02, fail_after_s=0.3, log_stream=out)
    heart.start()
    assert stop.wait(5), "the run must be stopped when its heartbeat cannot be written"
    heart.join(5)
    assert heart.failure and "heartbeat could not be written" in heart.failure and "locked" in heart.failure
    text = out.getvalue()
    assert text.count("cannot write the heartbeat") == 1 and "stopping the run" in text


def test_a_cancel_asked_for_while_the_worker_starts_is_kept(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medtui.jobs import worker

    with Store(db) as s:
        rid = s.create_run(fast_config(), status="running", pid=None, heartbeat_at=time.time())
    assert "cancel requested" in jobs.cancel(db, rid)  # claimed, worker not started yet
    monkeypatch.setattr(worker, "provenance", lambda: {})
    code = worker.execute(db, rid, handle_signals=False)
    with Store(db) as s:
        run = s.get_run(rid)
    assert code == 1 and run["status"] == "cancelled", (run["status"], run["error"])
