"""Scale-out: runs as submitit jobs with their own store files, ingested into the main store exactly once."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from helpers import fast_config
from typer.testing import CliRunner

from medtui.cli import app
from medtui.store.store import Store
from medtui.study.cluster import ClusterOptions, job_store, parse_time, submit_job
from medtui.study.ingest import ingest_all, ingest_run, register

runner = CliRunner()

STUDY = """
epochs = 1
batch_size = 32
max_train = 32
max_test = 24
device = "cpu"
tasks = ["synth-cxr-a", "synth-derm"]
[study]
name = "cluster"
seeds = [0]
[study.grid]
paradigm = ["joint", "continual"]
"""


def count(db: Path, table: str, run_id: int) -> int:
    with sqlite3.connect(db) as c:
        return c.execute(f"select count(*) from {table} where run_id = ?", [run_id]).fetchone()[0]


def job_writes(src: Path, run_id: int, steps: range, finish: bool) -> None:
    """What a job would write into its own store: the run, some steps and log lines, a matrix row."""
    os.environ["MEDTUI_STORE_JOURNAL"] = "delete"
    try:
        with Store(src) as s:
            try:
                s.get_run(run_id)
            except Exception:
                s.create_run(fast_config(), status="running", id=run_id)
            for k in steps:
                s.db["steps"].insert({"run_id": run_id, "stage": 1, "step": k, "n_steps": 10, "epoch": 1, "loss": 1.0 / (k + 1),
                                      "lr": 1e-3, "throughput": 100.0, "at": time.time()})
                s.log(run_id, f"step {k}")
            for j, task in enumerate(("synth-cxr-a", "synth-derm")):
                s.record_evaluation(run_id, {"row": 0, "row_label": "zero-shot", "task": task, "accuracy": 0.5 + 0.1 * j,
                                             "auc": None, "per_class": [], "n": 10})
            if finish:
                s.update_run(run_id, status="finished", finished_at=time.time())
    finally:
        del os.environ["MEDTUI_STORE_JOURNAL"]


def _main_with_remote_run(tmp_path: Path) -> tuple[Path, Path, int]:
    main = tmp_path / "main.db"
    with Store(main) as s:
        rid = s.create_run(fast_config(), status="queued")
        src = job_store(main, rid)
        src.parent.mkdir(parents=True)
        with s.db.atomic():
            register(s, rid, src, "local:999999999")
    return main, src, rid


def test_ingestion_is_incremental_and_exactly_once(tmp_path: Path) -> None:
    main, src, rid = _main_with_remote_run(tmp_path)
    with Store(main) as s:
        assert ingest_run(s, rid) == 0  # the job has not written anything yet
    job_writes(src, rid, range(3), finish=False)
    with sqlite3.connect(src) as c:
        assert c.execute("pragma journal_mode").fetchone()[0] == "delete"
    with Store(main) as s:
        ingest_run(s, rid)
        ingest_run(s, rid)
        assert s.get_run(rid)["status"] == "running"
    assert count(main, "steps", rid) == 3 and count(main, "evaluations", rid) == 2
    job_writes(src, rid, range(3, 5), finish=True)
    with Store(main) as s:
        ingest_run(s, rid)
        assert ingest_run(s, rid) == 0  # done: nothing more to copy
        run = s.get_run(rid)
        assert run["status"] == "finished" and run["metrics"]["zero_shot"] == pytest.approx(0.55)
    assert count(main, "steps", rid) == count(src, "steps", rid) == 5
    assert count(main, "events", rid) == count(src, "events", rid)
    with sqlite3.connect(main) as c:
        assert [r[0] for r in c.execute("select step from steps where run_id = ? order by id", [rid])] == [0, 1, 2, 3, 4]


def _ingest_in_process(main: str) -> None:
    with Store(main) as s:
        ingest_all(s, check_jobs=False)


def test_concurrent_ingestion_copies_once(tmp_path: Path) -> None:
    main, src, rid = _main_with_remote_run(tmp_path)
    job_writes(src, rid, range(40), finish=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ingest_in_process, args=(str(main),)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    _ingest_in_process(str(main))
    assert count(main, "steps", rid) == 40
    assert count(main, "events", rid) == count(src, "events", rid)
    assert count(main, "evaluations", rid) == 2


def test_a_job_that_died_without_an_end_is_marked_failed(tmp_path: Path) -> None:
    main, src, rid = _main_with_remote_run(tmp_path)
    job_writes(src, rid, range(2), finish=False)  # "running" forever: the job (pid 999999999) is gone
    with Store(main) as s:
        out = ingest_all(s)
        run = s.get_run(rid)
    assert out["lost"] == 1 and run["status"] == "failed" and "without recording an end" in run["error"]


def test_local_queue_and_reconcile_leave_remote_runs_alone(tmp_path: Path) -> None:
    from medtui.jobs.queue import reconcile, schedule

    main, src, rid = _main_with_remote_run(tmp_path)
    assert schedule(main) == []
    with Store(main) as s:
        s.update_run(rid, status="running", heartbeat_at=time.time() - 3600, pid=None)
        assert reconcile(s) == []


def test_bad_cluster_options(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    db = tmp_path / "m.db"
    for args, needle in (
        (["--executor", "k8s"], "unknown executor"),
        (["--executor", "slurm", "--time", "4h"], "is not a time limit"),
        (["--executor", "slurm", "--gpus-per-run", "-1"], "--gpus-per-run must be >= 0"),
        (["--executor", "slurm", "--slurm-arg", "account"], "must be KEY=VALUE"),
    ):
        r = runner.invoke(app, ["study", "run", str(f), "--db", str(db), *args])
        assert r.exit_code == 2 and needle in r.stderr, r.output
    assert not db.exists()
    assert parse_time("4:00:00") == 240 and parse_time("1-00:30:00") == 1470 and parse_time("90") == 90


def test_slurm_submission_through_a_fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/sh\ncp "$1" "{tmp_path}/submitted.sh"\necho "Submitted batch job 4242"\n')
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # submitit looks for it before submitting
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    opts = ClusterOptions(executor="slurm", partition="gpu", gpus_per_run=2, cpus_per_run=8, time_min=parse_time("4:00:00"),
                          mem_gb=32, extra={"account": "proj"})
    job = submit_job(tmp_path / "m.db", 7, fast_config().to_dict(), opts)
    assert job == "slurm:4242"
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=8", "#SBATCH --time=240",
                 "#SBATCH --mem=32768M", "#SBATCH --account=proj", "#SBATCH --job-name=medtui-7"):
        assert line in script, line
    assert "submitit.core._submit" in script
    assert str(tmp_path / "m-files" / "jobs" / "run-7") in script


@pytest.mark.slow
def test_submitit_local_study_end_to_end(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    db = tmp_path / "m.db"
    r = runner.invoke(app, ["study", "run", str(f), "--executor", "submitit-local", "--max-parallel", "1", "--headless", "--json", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "submitted 2 job(s) through submitit-local" in r.stderr
    assert "--max-parallel limits the local queue" in r.stderr  # said, not silently ignored
    out = json.loads(r.stdout)
    assert [c["n"] for c in out["cells"]] == [1, 1]
    for rid in (1, 2):
        src = job_store(db, rid)
        assert src.is_file()
        assert count(db, "steps", rid) == count(src, "steps", rid) > 0
        assert count(db, "evaluations", rid) == count(src, "evaluations", rid) > 0
        d = json.loads(runner.invoke(app, ["show", str(rid), "--json", "--db", str(db)]).stdout)
        assert d["status"] == "finished" and d["checkpoints"] and Path(d["checkpoints"][-1]["path"]).is_file()
    before = [count(db, "steps", 1), count(db, "events", 1)]
    for _ in range(2):
        assert runner.invoke(app, ["sync", "--db", str(db)]).exit_code == 0
    assert [count(db, "steps", 1), count(db, "events", 1)] == before
    again = runner.invoke(app, ["study", "run", str(f), "--executor", "submitit-local", "--db", str(db)])
    assert again.exit_code == 0 and "0 added, 0 resumed, 2 finished kept" in again.stderr


def test_cancel_of_one_cluster_run_cancels_its_job(tmp_path: Path) -> None:
    import subprocess
    import sys

    # a job that has not started: its run is cancelled at once and nothing more is ingested
    main, src, rid = _main_with_remote_run(tmp_path)
    r = runner.invoke(app, ["cancel", str(rid), "--db", str(main)])
    assert r.exit_code == 0 and "had not started" in r.stderr, r.output
    with Store(main) as s:
        assert s.get_run(rid)["status"] == "cancelled"
        assert s.db.execute("select done from ingests where run_id = ?", [rid]).fetchone()[0] == 1
    # a job that runs: it is sent the cancel (SIGTERM for a local job); its own store reports the end
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store(main) as s:
            rid2 = s.create_run(fast_config(), status="queued")
            src2 = job_store(main, rid2)
            src2.parent.mkdir(parents=True)
            with s.db.atomic():
                register(s, rid2, src2, f"local:{job.pid}")
        job_writes(src2, rid2, range(2), finish=False)
        r = runner.invoke(app, ["cancel", str(rid2), "--db", str(main)])
        assert r.exit_code == 0 and f"cancel sent to cluster job local:{job.pid}" in r.stderr, r.output
        assert job.wait(10) == -15  # SIGTERM
        with Store(main) as s:
            assert s.get_run(rid2)["cancel_requested"] == 0  # the main store's flag is not what stops it
    finally:
        if job.poll() is None:
            job.kill()
