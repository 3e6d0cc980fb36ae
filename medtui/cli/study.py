"""Study commands: ``study run|show|cancel|delete|plot``, ``studies``.

A study is a named grid of ordinary runs; these commands create, queue, watch, aggregate
and remove them. Every check (the file, the grid, each cell's config, a name already used
with another spec) happens before anything is stored.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from medtui.cli import DB_HELP, MedtuiGroup, app
from medtui.cli.common import db_path, open_store, print_json
from medtui.cli.tables import console, new_table
from medtui.errors import UsageError
from medtui.format import fmt_time

#: Metrics of the text table on a terminal narrower than 150 columns (``--metrics all`` shows every one).
NARROW_METRICS = ("last", "forgetting", "in_domain", "bwt", "aia", "cross", "heldout")

study_app = typer.Typer(cls=MedtuiGroup, help="Studies: grids of runs over paradigms, buffers, methods, orders and seeds.",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(study_app, name="study")


def _counts(status: dict[str, int]) -> str:
    order = ("finished", "running", "queued", "failed", "cancelled")
    return ", ".join(f"{status[s]} {s}" for s in order if status.get(s)) or "no runs"


def _dry_run(plan: Any, path: Path, json_out: bool) -> None:
    """Print the cells and planned runs (and, for a stored study, what a submission would do)."""
    from medtui.study.store import find_study, same_spec, study_runs

    info = plan.to_json()
    if path.exists():
        with open_store(str(path)) as store:
            existing = find_study(store, plan.spec.name)
            if existing is not None:
                have = {r["study_key"]: r["status"] for r in study_runs(store, existing["id"])}
                keys = [r.key for r in plan.runs]
                info["existing"] = {
                    "same_spec": same_spec(existing["spec"], plan.spec),
                    "keep": sum(have.get(k) == "finished" for k in keys),
                    "resume": sum(have.get(k) in ("failed", "cancelled") for k in keys),
                    "active": sum(have.get(k) in ("queued", "running") for k in keys),
                    "add": sum(k not in have for k in keys),
                }
    if json_out:
        print_json(info)
        return
    out = console()
    t = new_table("#", *info["varying"], "runs", "orders", title=f"study {info['study']}: {len(info['cells'])} cells, {info['runs']} runs (nothing stored)",
                  right=("#", "runs", "orders"))
    for i, c in enumerate(info["cells"], start=1):
        vals = ["—" if c["values"].get(a) is None else str(c["values"][a]) for a in info["varying"]]
        t.add_row(str(i), *vals, str(c["n"]), str(len(c["orders"])))
    out.print(t)
    if "existing" in info:
        e = info["existing"]
        out.print(f"already stored: would keep {e['keep']}, resume {e['resume']}, leave {e['active']} active, add {e['add']}"
                  + ("" if e["same_spec"] else " (different spec: needs --force)"))


@study_app.command("run")
def study_run(
    study_file: Path = typer.Argument(..., metavar="STUDY.toml", help="Study file: a run config plus a [study] table."),
    headless: bool = typer.Option(False, "--headless", help="Wait for the runs, a line per finished run and an overall progress bar."),
    max_parallel: Optional[int] = typer.Option(None, "--max-parallel", help="Runs at once (stored in the store, as `medtui queue --max-parallel`)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the cells and the planned runs; store nothing."),
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout (the plan with --dry-run; the results with --headless)."),
    force: bool = typer.Option(False, "--force", help="Extend a study of this name stored with a different spec."),
    name: Optional[str] = typer.Option(None, "--name", help="Study name (overrides study.name)."),
    executor: str = typer.Option("local", "--executor", help="local (this machine's queue) | slurm | submitit-local (slurm's code path, locally)."),
    partition: Optional[str] = typer.Option(None, "--partition", help="Slurm partition."),
    gpus_per_run: int = typer.Option(1, "--gpus-per-run", help="GPUs per Slurm job."),
    cpus_per_run: Optional[int] = typer.Option(None, "--cpus-per-run", help="CPUs per Slurm job."),
    time_limit: str = typer.Option("4:00:00", "--time", help="Time limit per Slurm job (H:MM:SS, D-H:MM:SS or minutes)."),
    mem_gb: Optional[float] = typer.Option(None, "--mem-gb", help="Memory per Slurm job, in GB."),
    slurm_arg: list[str] = typer.Option([], "--slurm-arg", help="Another sbatch option, KEY=VALUE (repeatable), e.g. account=proj."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> int:
    """Create and queue every run of a study (re-running resumes it: finished runs are kept)."""
    from medtui.study.cluster import ClusterOptions, check_options, parse_time
    from medtui.study.expand import expand
    from medtui.study.spec import load_study

    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"--max-parallel must be >= 1, got {max_parallel}")
    extra = {}
    for a in slurm_arg:
        k, eq, v = a.partition("=")
        if not eq or not k.strip():
            raise UsageError(f"--slurm-arg {a!r} must be KEY=VALUE")
        extra[k.strip()] = v.strip()
    opts = ClusterOptions(executor=executor, partition=partition, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
                          time_min=parse_time(time_limit), mem_gb=mem_gb, extra=extra)
    check_options(opts)
    plan = expand(load_study(study_file, name=name))
    path = db_path(db)
    if dry_run:
        _dry_run(plan, path, json_out)
        return 0
    from medtui.jobs.queue import schedule
    from medtui.store.store import Store
    from medtui.study.store import submit

    remote = opts.executor != "local"
    with Store(path) as store:
        from medtui.study.cluster import job_store

        sub = submit(store, plan, force=force, remote=(lambda rid: job_store(path, rid)) if remote else None)
        if max_parallel is not None:
            store.set_setting("max_parallel", str(max_parallel))
    if remote:
        if max_parallel is not None:
            typer.echo(f"note: --max-parallel limits the local queue; the {opts.executor} jobs start as "
                       f"{'the cluster schedules them' if opts.executor == 'slurm' else 'submitit starts them (all at once)'}",
                       err=True)
        _submit_jobs(path, sub.added + sub.resumed, opts)
    schedule(path)
    typer.echo(
        f"study {plan.spec.name!r} (id {sub.study_id}): {len(plan.runs)} runs in {len(plan.cells)} cells — "
        f"{len(sub.added)} added, {len(sub.resumed)} resumed, {len(sub.kept)} finished kept, {len(sub.active)} already queued or running",
        err=True,
    )
    if not headless:
        if json_out:
            print_json({"study": plan.spec.name, **sub.to_json()})
        else:
            typer.echo(f"`medtui study show {plan.spec.name}` aggregates them; `--headless` waits for them", err=True)
        return 0
    from medtui.cli.study_wait import wait_study

    code = wait_study(path, sub.run_ids, remote=remote)
    with open_store(str(path)) as store:
        from medtui.study.aggregate import aggregate

        result = aggregate(store, sub.study_id)
    if json_out:
        print_json(result)
    else:
        _print_results(result, None, False)
    return code


def _submit_jobs(path: Path, run_ids: list[int], opts: Any) -> None:
    """Submit each run as a cluster job and record its job id; a run whose submission fails is marked failed."""
    import time

    from medtui.store.store import Store
    from medtui.study.cluster import submit_job

    failed = []
    for run_id in run_ids:
        with Store(path) as store:
            config = store.get_run(run_id)["config"]
        try:
            job_id = submit_job(path, run_id, config, opts)
        except Exception as e:  # sbatch refused (partition, limits...): say so on the run, resume later
            with Store(path) as store:
                store.update_run(run_id, status="failed", error=f"job submission failed: {' '.join(str(e).split())[:300]}", finished_at=time.time())
                store.db.execute("update ingests set done = 1 where run_id = ?", [run_id])
            failed.append(run_id)
            continue
        with Store(path) as store:
            store.db.execute("update ingests set job_id = ? where run_id = ?", [job_id, run_id])
            store.log(run_id, f"submitted as job {job_id} ({opts.executor})")
    typer.echo(f"submitted {len(run_ids) - len(failed)} job(s) through {opts.executor}"
               + (f"; {len(failed)} submission(s) failed (runs {', '.join(map(str, failed))}; re-run the study to retry)" if failed else ""), err=True)


def _sync(store: Any) -> dict[str, int]:
    """Ingest results of runs executed as cluster jobs (a no-op when there are none)."""
    from medtui.study.ingest import ingest_all

    return ingest_all(store)


def _fitting_metrics(result: dict[str, Any], width: int) -> list[str]:
    """The narrow-terminal metrics that fit beside the axis columns (each metric column is about 13 wide)."""
    axes = sum(max([len(a)] + [len(str(c["values"].get(a))) for c in result["cells"]]) + 1 for a in result["varying"])
    room = max(1, (width - axes - 6) // 13)
    return [m for m in NARROW_METRICS if m in result["metric_names"]][:room]


def _print_results(result: dict[str, Any], only: list[str] | None, with_matrices: bool, every: bool = False) -> None:
    from medtui.study.export import matrix_rows, results_table

    out = console()
    if only is None and not every and out.width < 150:
        only = _fitting_metrics(result, out.width)
    out.print(f"[bold]study {result['study']}[/] · {result['runs']} of {result['planned']} planned runs: {_counts(result['status'])}")
    header, rows = results_table(result, only)
    t = new_table(*header, title="mean ± std over seeds and orders (%)", right=header[len(result["varying"]):])
    for r in rows:
        t.add_row(*r)
    out.print(t)
    incomplete = [c for c in result["cells"] if not c["complete"]]
    if incomplete:
        out.print(f"{len(incomplete)} cell(s) incomplete: n is finished/planned; only finished runs are averaged")
    if with_matrices:
        for c in result["cells"]:
            if not c["n"]:
                continue
            mh, mr = matrix_rows(c)
            mt = new_table(*mh, title=f"{c['label']}: mean ± std accuracy matrix over {c['n']} runs (%)", right=mh[1:])
            for r in mr:
                mt.add_row(*r)
            out.print(mt)


@study_app.command("show")
def study_show(
    study_ref: str = typer.Argument(..., metavar="STUDY", help="Study name or id."),
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout (the documented study format)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | markdown | latex | csv"),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Only these metrics, comma-separated (e.g. last,bwt,forgetting), or all."),
    matrices: bool = typer.Option(False, "--matrices", help="Also print each cell's mean ± std accuracy matrix (table format)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Aggregate a study: a row per cell, every metric as mean ± std with n, mean matrices."""
    from medtui.jobs.queue import reconcile
    from medtui.study.aggregate import METRIC_ORDER, aggregate
    from medtui.study.export import FORMATS, to_csv, to_latex, to_markdown

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    only = [m.strip() for m in metrics.split(",") if m.strip()] if metrics and metrics != "all" else None
    for m in only or []:
        if m not in METRIC_ORDER:
            raise UsageError(f"unknown metric {m!r}: choose from {', '.join(METRIC_ORDER)}")
    with open_store(db) as store:
        reconcile(store)
        _sync(store)
        result = aggregate(store, study_ref)
    if json_out:
        print_json(result)
    elif fmt == "markdown":
        sys.stdout.write(to_markdown(result, only))
    elif fmt == "latex":
        sys.stdout.write(to_latex(result, only))
    elif fmt == "csv":
        sys.stdout.write(to_csv(result))
    else:
        _print_results(result, only if metrics else None, matrices, every=metrics == "all")


@study_app.command("plot")
def study_plot(
    study_ref: str = typer.Argument(..., metavar="STUDY", help="Study name or id."),
    out: Path = typer.Option(..., "--out", help="Folder to write the figures into (created if missing)."),
    fmt: str = typer.Option("png", "--format", "-f", help="png | pdf | svg"),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Metrics to plot against the axis (default: last,forgetting,bwt)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Write the study's figures: metric vs buffer size, mean matrix heat maps, per-task accuracy across stages."""
    from medtui.study.aggregate import METRIC_ORDER, aggregate
    from medtui.study.plot import FORMATS, plot_study

    if fmt not in FORMATS:
        raise UsageError(f"unknown figure format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a folder")
    only = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    for m in only or []:
        if m not in METRIC_ORDER:
            raise UsageError(f"unknown metric {m!r}: choose from {', '.join(METRIC_ORDER)}")
    with open_store(db) as store:
        result = aggregate(store, study_ref)
    if not any(c["n"] for c in result["cells"]):
        raise UsageError(f"study {result['study']!r} has no finished run to plot yet")
    for p in plot_study(result, out, fmt, only):
        typer.echo(str(p))


@study_app.command("cancel")
def study_cancel(
    study_ref: str = typer.Argument(..., metavar="STUDY", help="Study name or id."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Cancel every queued or running run of a study (finished runs are kept)."""
    from medtui.jobs.queue import cancel
    from medtui.study.cluster import cancel_cluster_run
    from medtui.study.ingest import pending
    from medtui.study.store import get_study, study_runs

    with open_store(db) as store:
        study = get_study(store, study_ref)
        active = [r["id"] for r in study_runs(store, study["id"]) if r["status"] in ("queued", "running")]
        remote = {p["run_id"]: p for p in pending(store)}
    for run_id in active:
        p = remote.get(run_id)
        if p is None:
            cancel(db_path(db), run_id)
        else:
            cancel_cluster_run(db_path(db), p)
    typer.echo(f"study {study['name']!r}: cancel requested for {len(active)} run(s)", err=True)


@study_app.command("delete")
def study_delete(
    study_ref: str = typer.Argument(..., metavar="STUDY", help="Study name or id."),
    keep_runs: bool = typer.Option(False, "--keep-runs", help="Keep the study's runs as ordinary runs."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Delete a study, with its runs (their results, logs, checkpoints) unless --keep-runs."""
    from medtui.jobs.queue import delete as delete_run
    from medtui.study.store import delete_study, get_study, study_runs

    with open_store(db) as store:
        study = get_study(store, study_ref)
        runs = study_runs(store, study["id"])
    running = [r["id"] for r in runs if r["status"] == "running"]
    if running and not keep_runs:
        raise UsageError(f"study {study['name']!r} has {len(running)} running run(s): `medtui study cancel {study['name']}` first, or --keep-runs")
    what = f"its {len(runs)} run(s) are kept" if keep_runs else f"and its {len(runs)} run(s) with their files"
    if not yes:
        typer.confirm(f"delete study {study['name']!r} ({what})?", abort=True, err=True)
    if not keep_runs:
        for r in runs:
            delete_run(db_path(db), r["id"])
    with open_store(db) as store:
        delete_study(store, study["id"])
    typer.echo(f"deleted study {study['name']!r}" + (f"; kept {len(runs)} run(s)" if keep_runs else f" and {len(runs)} run(s)"), err=True)


@app.command()
def studies(
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """List studies with their progress."""
    from medtui.study.store import list_studies

    rows: list[dict[str, Any]] = []
    if db_path(db).exists():
        with open_store(db) as store:
            _sync(store)
            rows = list_studies(store)
    if json_out:
        print_json(rows)
        return
    out = console()
    if not rows:
        out.print("no studies yet: `medtui study run STUDY.toml` (see examples/)")
        return
    t = new_table("id", "name", "done", "status", "axes", "created", right=("id", "done"), wrap=("status", "axes"))
    for r in rows:
        t.add_row(str(r["id"]), r["name"], f"{r['status'].get('finished', 0)}/{r['runs']}", _counts(r["status"]),
                  ",".join(r["axes"]) or "—", fmt_time(r["created_at"]))
    out.print(t)


@app.command()
def sync(
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Bring results of runs executed as cluster jobs (their own store files) into the store, once each."""
    with open_store(db) as store:
        counts = _sync(store)
    if json_out:
        print_json(counts)
    else:
        typer.echo(f"{counts['runs']} run(s) executing elsewhere looked at, {counts['rows']} row(s) copied, "
                   f"{counts['lost']} job(s) ended without a result", err=True)
