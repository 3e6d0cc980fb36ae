"""Background workers: detached runs outlive their parent, cancel, kill + resume, queue, liveness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medtui.jobs.queue import cancel, enqueue, launch, reconcile, wait_for
from medtui.store.store import Store
from helpers import fast_config

CLI = [sys.executable, "-m", "medtui"]


def poll(db: Path, run_id: int, cond, timeout: float = 120.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with Store(db) as s:
            run = s.get_run(run_id)
        if cond(run):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached the condition; last: {run['status']} {run['progress']}")


def new_run(db: Path, **overrides: object) -> int:
    with Store(db) as s:
        return s.create_run(fast_config(**overrides))


def test_detached_worker_outlives_its_parent(db: Path) -> None:
    # a parent process launches the run and exits at once
    rid = new_run(db)
    code = f"from medtui.jobs.queue import launch; print(launch({str(db)!r}, {rid}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.strip())
    assert out.returncode == 0
    run = poll(db, rid, lambda r: r["pid"] == pid and r["status"] == "running")
    assert os.getsid(pid) != os.getsid(0), "the worker must run in its own session"
    assert wait_for(db, rid, ("finished", "failed"), 180) == "finished"
    with Store(db) as s:
        d = s.detail(rid)
    assert all(v is not None for row in d["matrix"] for v in row)
    assert Path(run["log_path"]).read_text().count("eval [") == 6


def test_cancel_keeps_results_so_far(db: Path) -> None:
    rid = new_run(db, epochs=50)
    launch(db, rid)
    poll(db, rid, lambda r: (r["progress"] or {}).get("step", 0) > 0)
    assert "cancel requested" in cancel(db, rid)
    assert wait_for(db, rid, ("cancelled", "failed", "finished"), 60) == "cancelled"
    with Store(db) as s:
        d = s.detail(rid)
    # row 0 is kept and is the zero-shot row of the same config (which training length does not change)
    from medtui.engine.run import run_experiment
    from medtui.events import ListSink, TaskEvaluated

    ref = ListSink()
    run_experiment(fast_config(epochs=1), ref)
    zero_shot = {e.task: e.accuracy for e in ref.of(TaskEvaluated) if e.row == 0}
    assert d["matrix"][0] == [zero_shot[t] for t in d["columns"]]
    assert all(v is None for row in d["matrix"][1:] for v in row)  # no stage finished
    assert d["pid"] is None


def test_killed_worker_is_failed_and_resume_completes_the_same_matrix(db: Path) -> None:
    args = ["--tasks", "synth-cxr-a,synth-derm,synth-histo", "--epochs", "2", "--max-train", "128", "--max-test", "48", "--device", "cpu", "--buffer-size", "30"]
    proc = subprocess.Popen([*CLI, "run", "--headless", "--db", str(db), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rid = int(proc.stdout.readline())
    poll(db, rid, lambda r: r["last_stage"] >= 1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert reconcile(db) == [rid]
    with Store(db) as s:
        run = s.get_run(rid)
        assert run["status"] == "failed" and "died" in run["error"]
        partial = s.detail(rid)
    assert partial["matrix"][1][0] is not None  # the finished stage survived the kill

    r = subprocess.run([*CLI, "resume", str(rid), "--db", str(db)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming run" in r.stderr
    ref = subprocess.run([*CLI, "run", "--headless", "--json", "--db", str(db), *args], capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    with Store(db) as s:
        resumed = s.detail(rid)
    assert resumed["status"] == "finished"
    assert resumed["matrix"] == json.loads(ref.stdout)["matrix"]
    assert resumed["buffer"]["per_task"] == json.loads(ref.stdout)["buffer"]["per_task"]


def test_queue_starts_the_next_run_when_a_slot_frees(db: Path) -> None:
    with Store(db) as s:
        s.set_setting("max_parallel", "1")
    first, second = new_run(db), new_run(db)
    assert enqueue(db, first) == [first]
    assert enqueue(db, second) == []  # no free slot
    with Store(db) as s:
        assert s.get_run(second)["status"] == "queued"
    # nobody calls schedule(): the first worker starts the second when it ends
    assert wait_for(db, first, ("finished",), 180) == "finished"
    assert wait_for(db, second, ("finished",), 180) == "finished"


def test_dead_pid_and_stale_heartbeat_are_failed(db: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    a, b = new_run(db), new_run(db)
    with Store(db) as s:
        s.update_run(a, status="running", pid=dead.pid, heartbeat_at=time.time())
        s.update_run(b, status="running", pid=None, host="elsewhere", heartbeat_at=time.time() - 3600)
    assert sorted(reconcile(db)) == [a, b]
    with Store(db) as s:
        assert "died" in s.get_run(a)["error"]
        assert "heartbeat" in s.get_run(b)["error"] or "never started" in s.get_run(b)["error"]


def test_logs_and_queue_commands_on_a_detached_run(db: Path) -> None:
    args = ["--tasks", "synth-cxr-a", "--epochs", "1", "--max-train", "64", "--max-test", "32", "--device", "cpu", "--db", str(db)]
    out = subprocess.run([*CLI, "run", "--detach", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rid = int(out.stdout.strip())
    q = json.loads(subprocess.run([*CLI, "queue", "--json", "--db", str(db)], capture_output=True, text=True, timeout=60).stdout)
    assert q["max_parallel"] == 1
    # -f follows the log until the run ends, then returns
    follow = subprocess.run([*CLI, "logs", str(rid), "-f", "--db", str(db)], capture_output=True, text=True, timeout=180)
    assert follow.returncode == 0
    assert "eval [zero-shot] synth-cxr-a" in follow.stdout and "run finished" in follow.stdout
    tail = subprocess.run([*CLI, "logs", str(rid), "-n", "1", "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert tail.stdout.strip().endswith("run finished") and len(tail.stdout.strip().splitlines()) == 1
