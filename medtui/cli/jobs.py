"""Job commands: ``cancel``, ``queue``, ``logs``, ``delete``, ``serve``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from medtui.cli import DB_HELP, app
from medtui.cli.common import db_path, open_store, print_json, store_is_read_only
from medtui.eta import fmt_eta, run_eta
from medtui.format import fmt_duration, progress_text
from medtui.errors import UsageError

#: More runs at once than any machine this targets could hold (a typo guard).
MAX_PARALLEL = 256


@app.command()
def cancel(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id or name."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Cancel a run: it stops after its current step and keeps its results so far."""
    from medtui.jobs.queue import cancel as cancel_run
    from medtui.study.cluster import cancel_cluster_run
    from medtui.study.ingest import pending

    with open_store(db, write=True) as store:
        run_id = store.resolve_ref(run_ref)
        remote = next((p for p in pending(store) if p["run_id"] == run_id), None)
    # a run executing as a cluster job writes its own store: its job is what has to stop
    done = cancel_run(db_path(db), run_id) if remote is None else cancel_cluster_run(db_path(db), remote)
    typer.echo(f"run {run_id}: {done}", err=True)


@app.command()
def queue(
    max_parallel: Optional[int] = typer.Option(None, "--max-parallel", help="Set how many runs may run at once (stored in the store)."),
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Show running and queued runs; start queued ones if slots are free."""
    from medtui.jobs.queue import max_parallel as limit_of, schedule

    path = db_path(db)
    if max_parallel is not None:
        if not 1 <= max_parallel <= MAX_PARALLEL:
            raise UsageError(f"--max-parallel must be in 1..{MAX_PARALLEL}, got {max_parallel}")
        with open_store(db, create=True) as store:
            store.set_setting("max_parallel", str(max_parallel))
    if not path.exists():
        raise UsageError(f"no store at {path} (start a run first, or pass --db)")
    if not store_is_read_only(path):
        schedule(path)
    with open_store(db) as store:
        limit = limit_of(store)
        running = store.list_runs(status="running")
        queued = list(reversed(store.list_runs(status="queued")))
    if json_out:
        print_json(
            {
                "max_parallel": limit,
                "running": [{"id": r["id"], "name": r["name"], "pid": r["pid"], "gpu": r["gpu"], "progress": r["progress"],
                             "eta_s": run_eta(r)} for r in running],
                "queued": [{"id": r["id"], "name": r["name"], "position": i + 1} for i, r in enumerate(queued)],
            }
        )
        return
    etas = [run_eta(r) for r in running]
    known = [e for e in etas if e is not None]
    done = f"; the running ones done in {fmt_duration(max(known))}" if known and len(known) == len(etas) else ""
    typer.echo(f"{len(running)} running, {len(queued)} queued, at most {limit} at once{done}")
    for r, eta in zip(running, etas):
        gpu = f" gpu {r['gpu']}" if r["gpu"] else ""
        typer.echo(f"  running  #{r['id']} {r['name']}  pid {r['pid'] or '?'}{gpu}  {progress_text(r)} · {fmt_eta(eta)}")
    for i, r in enumerate(queued, start=1):
        typer.echo(f"  queued {i:>2} #{r['id']} {r['name']}")


@app.command()
def logs(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id or name."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the run ends."),
    lines: int = typer.Option(0, "--lines", "-n", help="Only the last N lines (0: all)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Print a run's log file (``-f`` follows it while the run is active)."""
    from medtui.jobs.paths import log_path
    from medtui.jobs.queue import reconcile

    if lines < 0:
        raise UsageError(f"--lines must be >= 0, got {lines}")
    with open_store(db) as store:
        run_id = store.resolve_ref(run_ref)
        run = store.get_run(run_id)
    path = Path(run["log_path"]) if run["log_path"] else log_path(db_path(db), run_id)
    active = ("running", "queued")
    if not path.is_file() and not (follow and run["status"] in active):
        raise UsageError(f"run {run_id} has no log file yet (status {run['status']})")
    pos = 0
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        if lines:
            text = "".join(text.splitlines(keepends=True)[-lines:])
        typer.echo(text, nl=False)
        pos = path.stat().st_size
    status = run["status"]
    while follow and status in active:
        time.sleep(0.5)
        with open_store(db) as store:
            reconcile(store)
            status = store.get_run(run_id)["status"]
        # read after the status: the worker writes a line before the status it reports
        if path.is_file() and path.stat().st_size > pos:
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(pos)
                typer.echo(f.read(), nl=False)
                pos = f.tell()


@app.command()
def delete(
    run_refs: list[str] = typer.Argument(..., metavar="RUN...", help="Run ids or names."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Delete runs with their results, logs and checkpoints (not while running)."""
    from medtui.jobs.queue import delete as delete_run

    with open_store(db, write=True) as store:
        ids = [store.resolve_ref(r) for r in run_refs]
        for run_id in ids:
            if store.get_run(run_id)["status"] == "running":
                raise UsageError(f"run {run_id} is running: cancel it first")
    if not yes:
        typer.confirm(f"delete run(s) {', '.join(map(str, ids))} and their files?", abort=True, err=True)
    for run_id in ids:
        delete_run(db_path(db), run_id)
    typer.echo(f"deleted {len(ids)} run(s)", err=True)


@app.command()
def serve(
    port: int = typer.Option(8000, "--port", help="Port on localhost."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Serve the app to a browser on localhost only (for an SSH tunnel: ssh -L PORT:localhost:PORT host)."""
    import shlex
    import sys

    from textual_serve.server import Server

    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be in 1..65535, got {port}")
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "medtui", "--db", str(db_path(db).resolve())))
    typer.echo(f"serving on http://localhost:{port} (tunnel: ssh -L {port}:localhost:{port} HOST)", err=True)
    Server(command, host="localhost", port=port, title="medtui").serve()
