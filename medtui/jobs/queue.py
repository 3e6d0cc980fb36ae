"""Launching, watching and cancelling worker processes, and the run queue.

- :func:`launch` starts a run now, as its own process in a new session.
- :func:`enqueue` + :func:`schedule`: queued runs start, oldest first, whenever fewer than
  ``max_parallel`` runs are running; each is pinned to a GPU with ``CUDA_VISIBLE_DEVICES``
  when there are several. Every worker calls :func:`schedule` when it ends, and so do the
  CLI and the app, so queued runs start whether or not the app is open.
- :func:`reconcile` marks ``running`` runs whose process is gone or whose heartbeat is
  stale as ``failed``, with the reason; ``medtui resume`` continues them.

Nothing here imports torch.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from medtui.errors import StoreError, UsageError
from medtui.jobs.paths import log_path
from medtui.store.store import Store

if TYPE_CHECKING:
    from medtui.config import RunConfig

#: A running run whose heartbeat is older than this is considered dead.
STALE_S = 60.0
#: ... unless its process is alive on this machine: then only a much older heartbeat (a hung
#: worker) counts, so that a start slowed down by a loaded machine is never judged dead.
STALE_LOCAL_S = 600.0
#: A run just claimed by the scheduler has this long to start its process.
START_GRACE_S = 30.0


def _open(db: str | Path | Store) -> tuple[Store, bool]:
    if isinstance(db, Store):
        return db, False
    return Store(db), True


def gpu_ids() -> list[str]:
    """GPU ids this machine offers (``CUDA_VISIBLE_DEVICES`` if set, else what ``nvidia-smi`` lists)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()] if out.returncode == 0 else []


def max_parallel(store: Store) -> int:
    """How many runs may run at once: the ``max_parallel`` setting, ``$MEDTUI_MAX_PARALLEL``, else 1 per GPU (1 on CPU)."""
    value = store.get_setting("max_parallel") or os.environ.get("MEDTUI_MAX_PARALLEL")
    if value:
        try:
            n = int(value)
        except ValueError:
            raise UsageError(f"max_parallel must be a whole number, got {value!r}") from None
        if n < 1:
            raise UsageError(f"max_parallel must be >= 1, got {n}")
        return n
    return max(1, len(gpu_ids()))


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def reconcile(db: str | Path | Store) -> list[int]:
    """Mark dead ``running`` runs as ``failed`` (process gone, or heartbeat stale). Returns their ids.

    A run is judged on what was read, and marked failed only if it is still exactly that
    (same pid, same heartbeat): a worker that wrote its first heartbeat meanwhile is never
    failed by a stale reading. A run without a pid yet (being started) is judged by the
    time it was claimed or created, after a grace period. A read-only store is left as is.
    """
    store, owned = _open(db)
    dead = []
    try:
        if store.readonly:
            return []
        here = socket.gethostname()
        now = time.time()
        # runs executed elsewhere (cluster jobs) beat in their own store file; ingestion reports their end
        remote = {r[0] for r in store.db.execute("select run_id from ingests where done = 0")}
        for run in store.list_runs(status="running"):
            if run["id"] in remote:
                continue
            beat = run["heartbeat_at"] or run["started_at"] or run["updated_at"] or run["created_at"] or 0
            local = bool(run["pid"]) and run["host"] in (None, here)
            alive = local and pid_alive(run["pid"])
            reason = None
            if local and not alive:
                reason = f"worker process {run['pid']} died (no exit was recorded)"
            elif not run["pid"] and now - beat > START_GRACE_S:
                reason = "worker process never started"
            elif now - beat > (STALE_LOCAL_S if alive else STALE_S):
                reason = f"no heartbeat for {now - beat:.0f} s"
            if not reason:
                continue
            with store.write():
                marked = store.update_run(
                    run["id"], status="failed", error=reason, pid=None, finished_at=now,
                    where="status = 'running' and pid is ? and heartbeat_at is ?",
                    where_args=(run["pid"], run["heartbeat_at"]),
                )
                if marked:
                    store.log(run["id"], f"marked failed: {reason}", "error")
            if marked:
                dead.append(run["id"])
    finally:
        if owned:
            store.close()
    return dead


def spawn(db_path: str | Path, run_id: int, gpu: str | None = None, threads: int | None = None) -> int:
    """Start ``python -m medtui.worker RUN_ID`` in a new session (it outlives its parent); returns its pid.

    ``threads`` caps the worker's CPU threads (several CPU runs at once must not oversubscribe the cores).
    """
    db_path = Path(db_path).resolve()
    log = log_path(db_path, run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if threads is not None and "MEDTUI_THREADS" not in os.environ:
        env["MEDTUI_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log, "a", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "medtui.worker", str(run_id), "--db", str(db_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    # the pid is known now: record it at once (the worker confirms it when it starts), so a
    # slow start on a loaded machine is judged by its process, not by a missing heartbeat
    with Store(db_path) as store:
        store.update_run(run_id, pid=proc.pid, host=socket.gethostname(), heartbeat_at=time.time(), log_path=str(log),
                         where="status = 'running' and pid is null")
    return proc.pid


#: Statuses a run may be started from (a new run is queued; a resumed one failed or was cancelled).
STARTABLE: tuple[str, ...] = ("queued", "failed", "cancelled")


def _running(store: Store) -> int:
    """How many runs hold a slot (status running); call inside the write transaction that claims one."""
    return store.db.execute("select count(*) from runs where status = 'running'").fetchone()[0]


def _pick_gpu(store: Store, gpus: list[str]) -> str | None:
    """The least-used of ``gpus`` by running runs (None on a CPU machine)."""
    if len(gpus) > 1:
        busy = [r["gpu"] for r in store.list_runs(status="running") if r["gpu"]]
        return min(gpus, key=lambda g: (busy.count(g), gpus.index(g)))
    return gpus[0] if gpus else None


def _claim(store: Store, run_id: int, gpus: list[str]) -> tuple[bool, str | None]:
    """Mark a run as starting (status running, no pid yet) if it is startable; pick the least-used GPU.

    The check and the claim are one conditional UPDATE: of two launchers, exactly one wins.
    Returns (claimed, gpu).
    """
    gpu = _pick_gpu(store, gpus)
    claimed = store.update_run(
        run_id, status="running", pid=None, gpu=gpu, heartbeat_at=time.time(), error=None, cancel_requested=0,
        where=f"status in ({', '.join('?' * len(STARTABLE))})", where_args=STARTABLE,
    )
    return claimed, gpu


def launch(db_path: str | Path, run_id: int) -> int:
    """Start run ``run_id`` now, whatever the queue holds; returns the worker's pid."""
    store = Store(db_path)
    try:
        claimed, gpu = _claim(store, run_id, gpu_ids())
        if not claimed:
            status = store.get_run(run_id)["status"]
            raise UsageError(f"run {run_id} is {status}: it cannot be started" if status != "running" else f"run {run_id} is already running")
    finally:
        store.close()
    return spawn(db_path, run_id, gpu)


def launch_new(db_path: str | Path, config: RunConfig) -> tuple[int, bool]:
    """Store a new run of a resolved ``config`` and start its worker now if ``max_parallel`` leaves
    a slot, else leave it queued (it starts when a slot frees); returns (run id, started).

    Counting the running runs and storing the new one (already claimed when it starts: running,
    no pid yet) are one write transaction, so neither a scheduler (the app's refresh, a
    ``medtui queue``) nor another launch can come in between: the run is never started twice,
    and two launches never both take the last slot.
    """
    gpus = gpu_ids()
    with Store(db_path) as store:
        reconcile(store)
        limit = max_parallel(store)
        with store.write():
            running = _running(store)
            start = running < limit
            if start:
                gpu = _pick_gpu(store, gpus)
                run_id = store.create_run(config, status="running", gpu=gpu, heartbeat_at=time.time())
            else:
                run_id = store.create_run(config, status="queued")
    if not start:
        return run_id, False
    try:
        spawn(db_path, run_id, gpu)
    except OSError as e:
        with Store(db_path) as store:
            store.update_run(run_id, status="failed", finished_at=time.time(), error=f"the worker did not start: {e}")
        raise
    return run_id, True


def enqueue(db_path: str | Path, run_id: int) -> list[int]:
    """Put a run in the queue and start what the free slots allow; returns the ids started."""
    store = Store(db_path)
    try:
        store.update_run(run_id, status="queued", error=None, cancel_requested=0)
    finally:
        store.close()
    return schedule(db_path)


def schedule(db_path: str | Path) -> list[int]:
    """Start queued runs, oldest first, while fewer than ``max_parallel`` are running."""
    store = Store(db_path)
    started: list[tuple[int, str | None]] = []
    try:
        reconcile(store)
        gpus = gpu_ids()
        limit = max_parallel(store)
        # an immediate transaction: two schedulers never claim the same queued run
        with store.write():
            running = _running(store)
            free = max(0, limit - running)
            queued = [r[0] for r in store.db.execute("select id from runs where status = 'queued' and id not in (select run_id from ingests where done = 0) order by id limit ?", [free])]
            for run_id in queued:
                claimed, gpu = _claim(store, run_id, gpus)
                if claimed:
                    started.append((run_id, gpu))
    finally:
        store.close()
    # CPU-only machines: share the cores between the runs allowed at once
    threads = None if gpus else max(1, (os.cpu_count() or 1) // limit)
    for run_id, gpu in started:
        spawn(db_path, run_id, gpu, threads if limit > 1 else None)
    return [r for r, _ in started]


def cancel(db_path: str | Path, run_id: int) -> str:
    """Cancel a run: a queued one at once, a running one after its current step. Returns what was done."""
    store = Store(db_path)
    try:
        if store.update_run(run_id, status="cancelled", finished_at=time.time(), error="cancelled while queued", where="status = 'queued'"):
            return "cancelled (was queued)"
        run = store.get_run(run_id)
        status = run["status"]
        if status != "running":
            raise UsageError(f"run {run_id} is {status}, not running or queued: nothing to cancel")
        if not store.request_cancel(run_id):
            return "a cancel is already pending: the run stops after its current step"
        pid = run["pid"]
        if pid and run["host"] in (None, socket.gethostname()) and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        return "cancel requested: the run stops after its current step"
    finally:
        store.close()


def resumable(store: Store, run_id: int) -> None:
    """Raise UsageError unless run ``run_id`` can be resumed (failed or cancelled)."""
    run = store.get_run(run_id)
    if run["status"] in ("running", "queued"):
        raise UsageError(f"run {run_id} is {run['status']}: it cannot be resumed")
    if run["status"] == "finished":
        raise UsageError(f"run {run_id} already finished: nothing to resume")


def wait_for(db_path: str | Path, run_id: int, statuses: tuple[str, ...], timeout: float) -> str:
    """Poll until the run's status is one of ``statuses``; returns it (StoreError on timeout)."""
    deadline = time.time() + timeout
    while True:
        with Store(db_path) as store:
            status = store.get_run(run_id)["status"]
        if status in statuses or time.time() > deadline:
            if status not in statuses:
                raise StoreError(f"run {run_id} still {status} after {timeout:.0f} s")
            return status
        time.sleep(0.2)


def resume_point(store: Store, run_id: int) -> str:
    """Check that a run can be resumed and say where it will continue (``stage 2`` or ``the start``)."""
    resumable(store, run_id)
    latest = store.latest_checkpoint(run_id)
    return f"stage {latest[0]}" if latest else "the start (no stage checkpoint)"


def resume_detached(db_path: str | Path, run_id: int) -> str:
    """Resume a failed or cancelled run as a background worker; returns a message."""
    with Store(db_path, create=False) as store:
        reconcile(store)
        where = resume_point(store, run_id)
        store.log(run_id, f"resume requested: continuing after {where}")
    pid = launch(db_path, run_id)
    return f"resumed after {where} (pid {pid})"


def delete(db_path: str | Path, run_id: int) -> None:
    """Delete a run that is not running, with its results, log file and checkpoints."""
    from medtui.jobs.paths import checkpoint_dir

    with Store(db_path, create=False) as store:
        if store.get_run(run_id)["status"] == "running":
            raise UsageError(f"run {run_id} is running: cancel it first")
        store.delete_run(run_id)
    shutil.rmtree(checkpoint_dir(db_path, run_id), ignore_errors=True)
    log_path(db_path, run_id).unlink(missing_ok=True)
