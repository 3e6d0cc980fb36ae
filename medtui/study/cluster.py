"""Running a study's runs as cluster jobs through submitit: one job per run, each with its own store file.

No two processes on different hosts ever write one SQLite file: the head keeps the main
store on its local disk; each job writes its run into ``<store>-files/jobs/run-<id>/run.db``
(on the shared filesystem, in rollback-journal mode, written by that job alone) beside its
checkpoints, log and submitit's files; the head ingests those files into the main store
(:mod:`medtui.study.ingest`). A resubmitted job finds its store file and checkpoints and
resumes from its last finished stage.

Executors: ``slurm`` (``sbatch`` through submitit's ``SlurmExecutor``) and ``submitit-local``
(submitit's ``LocalExecutor``: the same job code in a local subprocess, for machines without
Slurm and for the tests). Job ids are stored as ``slurm:<id>`` / ``local:<pid>``.
Importing this module does not import submitit or torch.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtui.errors import UsageError

EXECUTORS: tuple[str, ...] = ("local", "slurm", "submitit-local")
_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?$")


@dataclass(frozen=True)
class ClusterOptions:
    """What each job asks of the cluster."""

    executor: str = "slurm"
    partition: str | None = None
    gpus_per_run: int = 1
    cpus_per_run: int | None = None
    time_min: int = 240
    mem_gb: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


def parse_time(text: str) -> int:
    """Minutes from a Slurm time limit: ``4:00:00``, ``90:00`` (mm:ss is not used: h:mm), ``1-12:00:00``, or minutes."""
    t = text.strip()
    if t.isdigit():
        minutes = int(t)
    else:
        m = _TIME.match(t)
        if not m:
            raise UsageError(f"--time {text!r} is not a time limit (use H:MM:SS, D-H:MM:SS or minutes)")
        days, hours, mins, secs = (int(g) if g else 0 for g in m.groups())
        minutes = days * 1440 + hours * 60 + mins + (1 if secs else 0)
    if minutes < 1:
        raise UsageError(f"--time {text!r} must be at least one minute")
    return minutes


def check_options(opts: ClusterOptions) -> None:
    """Raise UsageError for options that cannot work (before anything is stored)."""
    if opts.executor not in EXECUTORS:
        raise UsageError(f"unknown executor {opts.executor!r}: choose one of {', '.join(EXECUTORS)}")
    if opts.gpus_per_run < 0:
        raise UsageError(f"--gpus-per-run must be >= 0, got {opts.gpus_per_run}")
    if opts.cpus_per_run is not None and opts.cpus_per_run < 1:
        raise UsageError(f"--cpus-per-run must be >= 1, got {opts.cpus_per_run}")
    if opts.mem_gb is not None and not opts.mem_gb > 0:
        raise UsageError(f"--mem-gb must be > 0, got {opts.mem_gb}")
    if opts.executor == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("--executor slurm needs Slurm's sbatch on PATH (not found here)")


def job_dir(db_path: Path, run_id: int) -> Path:
    """The folder of run ``run_id``'s job: its store file, checkpoints, log and submitit's files."""
    db_path = Path(db_path).resolve()
    return db_path.parent / f"{db_path.stem}-files" / "jobs" / f"run-{run_id}"


def job_store(db_path: Path, run_id: int) -> Path:
    """The store file a job writes its run into."""
    return job_dir(db_path, run_id) / "run.db"


def run_job(job_db: str, run_id: int, config: dict[str, Any]) -> int:
    """What a job executes: record the run in the job's own store (once), then run or resume it there."""
    os.environ["MEDTUI_STORE_JOURNAL"] = "delete"
    from medtui.config import from_mapping
    from medtui.errors import StoreError
    from medtui.jobs.worker import execute
    from medtui.store.store import Store

    with Store(job_db) as s:
        try:
            s.get_run(run_id)
        except StoreError:
            s.create_run(from_mapping(config, origin=f"run {run_id}"), status="running", id=run_id)
    return execute(job_db, run_id)


def _executor(opts: ClusterOptions, folder: Path, name: str) -> Any:
    import submitit

    if opts.executor == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=opts.time_min)
        return ex
    ex = submitit.SlurmExecutor(folder=folder)
    params: dict[str, Any] = {"job_name": name, "time": opts.time_min, "ntasks_per_node": 1, "signal_delay_s": 120}
    if opts.partition:
        params["partition"] = opts.partition
    if opts.gpus_per_run:
        params["gpus_per_node"] = opts.gpus_per_run
    if opts.cpus_per_run:
        params["cpus_per_task"] = opts.cpus_per_run
    if opts.mem_gb:
        params["mem"] = f"{int(opts.mem_gb * 1024)}M"
    if opts.extra:
        params["additional_parameters"] = dict(opts.extra)
    ex.update_parameters(**params)
    return ex


def submit_job(db_path: Path, run_id: int, config: dict[str, Any], opts: ClusterOptions) -> str:
    """Submit one run as a job; returns its stored job id (``slurm:123`` / ``local:4567``)."""
    folder = job_dir(db_path, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    ex = _executor(opts, folder, f"medtui-{run_id}")
    job = ex.submit(run_job, str(job_store(db_path, run_id)), run_id, config)
    kind = "local" if opts.executor == "submitit-local" else "slurm"
    return f"{kind}:{job.job_id}"


def job_state(job_id: str, folder: Path) -> str | None:
    """The scheduler's state of a job (``RUNNING``, ``COMPLETED``, ``FAILED``, ``CANCELLED``…), None if unknown."""
    kind, _, jid = job_id.partition(":")
    if kind == "local":
        from medtui.jobs.queue import pid_alive

        if jid.isdigit() and pid_alive(int(jid)):
            return "RUNNING"
        return "COMPLETED" if any(folder.glob(f"{jid}_*result.pkl")) else "FAILED"
    if kind == "slurm":
        if shutil.which("sacct") is None and shutil.which("squeue") is None:
            return None
        import submitit

        try:
            return str(submitit.SlurmJob(folder=folder, job_id=jid).state)
        except Exception:  # sacct briefly unavailable: decide on a later call
            return None
    return None


def cancel_cluster_run(db_path: str | Path, pending_run: dict[str, Any]) -> str:
    """Cancel a run that executes as a cluster job (a row of :func:`medtui.study.ingest.pending`); returns what was done.

    Its job is cancelled (the run stops after its current step, and its own store, ingested as
    usual, says so). A job that has not started yet never will report: its run is marked
    cancelled here and nothing more is ingested for it.
    """
    import time

    from medtui.store.store import Store

    run_id, source, job_id = pending_run["run_id"], Path(pending_run["source"]), pending_run["job_id"]
    if job_id:
        cancel_job(job_id, source.parent)
    if not source.exists():
        with Store(db_path) as store, store.write():
            store.update_run(run_id, status="cancelled", error="cancelled before its job started", finished_at=time.time())
            store.db.execute("update ingests set done = 1 where run_id = ?", [run_id])
        return f"cancelled (its cluster job {job_id or '(not submitted)'} had not started)"
    return f"cancel sent to cluster job {job_id}: the run stops after its current step and is ingested as cancelled"


def cancel_job(job_id: str, folder: Path) -> None:
    """Cancel a job (``scancel`` through submitit; SIGTERM for a local one): the run stops after its current step."""
    kind, _, jid = job_id.partition(":")
    if kind == "local" and jid.isdigit():
        from medtui.jobs.queue import pid_alive

        if pid_alive(int(jid)):
            os.kill(int(jid), signal.SIGTERM)
    elif kind == "slurm":
        import submitit

        submitit.SlurmJob(folder=folder, job_id=jid).cancel(check=False)
