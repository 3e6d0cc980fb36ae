"""Waiting for a study's runs from the command line: a line per finished run and an overall bar with ETA."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from medtui.eta import run_eta, schedule_eta
from medtui.format import fmt_duration, fmt_metric, run_duration
from medtui.store.store import Store

TERMINAL = ("finished", "failed", "cancelled")
POLL_S = 1.0
SCHEDULE_EVERY = 10


def study_eta(runs: list[dict[str, Any]], parallel: int, now: float | None = None) -> float | None:
    """Seconds until every run is done, from the same per-run ETA as the runs list.

    A running run counts for its own ETA (measured img/s over its remaining steps and
    evaluations); a queued run for the mean duration of the finished ones, or, before any has
    finished, for the projected duration of the running ones. Runs start on the slot that frees
    first (:func:`medtui.eta.schedule_eta`). None while nothing has been measured yet.
    """
    now = time.time() if now is None else now
    running = [r for r in runs if r["status"] == "running"]
    left = [run_eta(r, now) for r in running]
    took = [r["finished_at"] - r["started_at"] for r in runs if r["status"] == "finished" and r["started_at"] and r["finished_at"]]
    if not took:  # nothing finished yet: a running run's elapsed time plus its ETA is what a run takes
        took = [now - r["started_at"] + e for r, e in zip(running, left) if e is not None and r["started_at"]]
    queued = sum(r["status"] == "queued" for r in runs)
    if (queued and not took) or any(e is None for e in left):
        return None
    mean = sum(took) / len(took) if took else 0.0
    return schedule_eta([*left, *[mean] * queued], parallel)


def _line(r: dict[str, Any], done: int, total: int) -> str:
    m = r.get("metrics") or {}
    head = "last" if "last" in m else "in_domain"
    metrics = f" · {head} {fmt_metric(head, m.get(head))}" + (f" · bwt {fmt_metric('bwt', m['bwt'])}" if m.get("bwt") is not None else "")
    err = f" · {r['error']}" if r["status"] != "finished" and r.get("error") else ""
    return f"[{done}/{total}] run {r['id']} {r['name']} {r['status']} in {fmt_duration(run_duration(r))}{metrics}{err}"


def wait_study(path: Path, run_ids: list[int], poll_s: float = POLL_S, remote: bool = False) -> int:
    """Wait until every run of ``run_ids`` has ended; returns 0 if all finished, else 1.

    The runs are ordinary background runs (or cluster jobs, with ``remote``, whose results are
    ingested on every poll): interrupting the wait (ctrl-c) leaves them going.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from medtui.jobs.queue import max_parallel, schedule

    ids = set(run_ids)
    seen: set[int] = set()
    console = Console(stderr=True, highlight=False)
    bar = Progress(TextColumn("study"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                   console=console, transient=False, disable=not sys.stderr.isatty())
    task = bar.add_task("study", total=len(ids), info="")
    first = True
    try:
        with bar:
            polls = 0
            while True:
                # workers start the next queued run themselves; scheduling here now and then also marks
                # dead workers failed (so the wait always ends) without taking the write lock every poll
                if polls % SCHEDULE_EVERY == 0:
                    schedule(path)
                polls += 1
                with Store(path) as store:
                    if remote:  # cluster jobs report through their own store files
                        from medtui.study.ingest import ingest_all

                        ingest_all(store)
                    runs = [r for r in store.list_runs() if r["id"] in ids]
                    parallel = max_parallel(store)
                done = [r for r in sorted(runs, key=lambda r: r["finished_at"] or 0) if r["status"] in TERMINAL]
                if first:
                    first = False
                    kept = [r["id"] for r in done]
                    seen.update(kept)
                    if kept:
                        bar.console.print(f"[{len(seen)}/{len(ids)}] {len(kept)} run(s) had already ended", markup=False)
                for r in done:
                    if r["id"] not in seen:
                        seen.add(r["id"])
                        bar.console.print(_line(r, len(seen), len(ids)), markup=False)
                eta = study_eta(runs, parallel)
                running = sum(r["status"] == "running" for r in runs)
                info = f"{running} running · ETA {fmt_duration(eta)}" if eta is not None else f"{running} running"
                bar.update(task, completed=len(seen), info=info)
                if len(seen) >= len(ids) or len(runs) < len(ids) and all(r["status"] in TERMINAL for r in runs):
                    break
                time.sleep(poll_s)
    except KeyboardInterrupt:
        console.print("stopped waiting; the runs keep going in the background (`medtui studies` shows their progress)")
        return 130
    return 0 if all(r["status"] == "finished" for r in runs) and len(runs) == len(ids) else 1
