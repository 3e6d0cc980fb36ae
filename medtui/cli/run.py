"""``medtui run`` and ``medtui resume``: start runs in the foreground, the background or the queue."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer

from medtui.cli import DB_HELP, app
from medtui.cli.common import db_path, open_app, open_store, print_json
from medtui.config import RunConfig, load_toml
from medtui.errors import UsageError
from medtui.store.store import Store


def build_config(config_file: Optional[Path], overrides: dict[str, Any], tasks_file: Optional[Path] = None) -> RunConfig:
    """The run's config: the TOML file (or the built-in default), flags on top, resolved and checked.

    ``tasks_file`` adds the ``[[task]]`` declarations of another TOML file. Task names and the
    model name are checked here, before anything is stored.
    """
    from medtui.validate import check_config

    base = load_toml(config_file) if config_file else RunConfig()
    if tasks_file is not None:
        declared = load_toml(tasks_file).user_tasks
        names = {t.get("name") for t in declared}
        base = replace(base, user_tasks=tuple(t for t in base.user_tasks if t.get("name") not in names) + declared)
    given = {k: v for k, v in overrides.items() if v is not None}
    method, opts = given.pop("method", None), given.pop("opts", None)
    if method is not None and method != base.method:
        base = replace(base, method=method, method_opts={})  # another method's options do not carry over
    if opts:
        base = replace(base, method_opts={**base.method_opts, **parse_opts(opts)})
    for key in ("tasks", "heldout", "lora_targets"):
        if key in given:
            given[key] = tuple(t for t in (s.strip() for s in given[key].split(",")) if t)
    return check_config(replace(base, **given))


def parse_opts(items: list[str]) -> dict[str, Any]:
    """``--opt KEY=VALUE`` flags as a dict; values read as TOML scalars (``0.5``, ``3``, ``true``) or strings."""
    from medtui.methods import parse_value

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--opt {item!r}: expected KEY=VALUE (e.g. --opt lambda=0.5)")
        out[key.strip()] = parse_value(value.strip())
    return out


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Experiment TOML file (flags override it)."),
    tasks_file: Optional[Path] = typer.Option(None, "--tasks-file", help="A TOML file of [[task]] declarations (your own datasets)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Training sequence, comma-separated task names."),
    heldout: Optional[str] = typer.Option(None, "--heldout", help="Held-out tasks (evaluated, never trained), comma-separated."),
    paradigm: Optional[str] = typer.Option(None, "--paradigm", help="specialized | joint | continual"),
    method: Optional[str] = typer.Option(None, "--method", help="Continual method: naive, lwf, ewc, wise-ft, zscl (`medtui methods`)."),
    opt: Optional[list[str]] = typer.Option(None, "--opt", help="A method option KEY=VALUE (repeatable)."),
    joint_sampling: Optional[str] = typer.Option(None, "--joint-sampling", help="Joint batches: balanced (default) | proportional."),
    buffer_size: Optional[int] = typer.Option(None, "--buffer-size", help="Rehearsal buffer in samples (continual, any method)."),
    model: Optional[str] = typer.Option(None, "--model", help="open_clip architecture, hf-hub:ORG/REPO or local-dir:PATH."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Pretrained tag (e.g. openai), checkpoint PATH, or none."),
    tune: Optional[str] = typer.Option(None, "--tune", help="full | vision | head | lora"),
    lora_rank: Optional[int] = typer.Option(None, "--lora-rank", help="LoRA rank r (with --tune lora; default 8)."),
    lora_alpha: Optional[float] = typer.Option(None, "--lora-alpha", help="LoRA alpha; adapters are scaled by alpha/r (default 16)."),
    lora_targets: Optional[str] = typer.Option(
        None, "--lora-targets", help="LoRA target modules, comma-separated (default: attention and MLP projections)."
    ),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per stage."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training batch size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: 1e-3 from scratch, 1e-5 pretrained)."),
    text_lr_scale: Optional[float] = typer.Option(
        None, "--text-lr-scale", help="Text tower's learning rate as a multiple of --lr (full and lora tuning; default 1)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda[:i]"),
    name: Optional[str] = typer.Option(None, "--name", help="Run name."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Cap each task's train split (stratified subsample)."),
    max_test: Optional[int] = typer.Option(None, "--max-test", help="Cap each task's test split (stratified subsample)."),
    eval_every: Optional[int] = typer.Option(
        None, "--eval-every", help="Evaluate every task after every N-th stage and the last (other stages: their own tasks only)."
    ),
    deterministic: Optional[bool] = typer.Option(
        None, "--deterministic/--fast-kernels", help="Deterministic GPU kernels (exact resumes on GPU; slower)."
    ),
    amp: Optional[str] = typer.Option(
        None, "--amp", help="Mixed precision: auto (bf16 on CUDA, off on the CPU) | bf16 (CUDA, or a CPU with bf16 instructions) | fp16 (CUDA) | off."
    ),
    shots: Optional[int] = typer.Option(None, "--shots", help="K labelled training samples per class per task (seeded; 0 = all)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Where MedMNIST .npz files live (default: $MEDTUI_DATA_DIR or a cache dir)."),
    headless: bool = typer.Option(False, "--headless", help="Run in the foreground, without the app."),
    detach: bool = typer.Option(False, "--detach", help="Start in the background, print the run id and return."),
    queue: bool = typer.Option(False, "--queue", help="Add to the queue; it starts when a slot is free."),
    json_out: bool = typer.Option(False, "--json", help="With --headless: print the finished run as JSON instead of the id."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> int:
    """Run an experiment (no flags: the built-in default on synthetic tasks with a tiny model)."""
    if sum((headless, detach, queue)) > 1:
        raise UsageError("choose one of --headless, --detach and --queue")
    if json_out and not headless:
        raise UsageError("--json goes with --headless")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise UsageError(f"--data-dir {data_dir!r} is not a directory")
    cfg = build_config(
        config,
        dict(
            tasks=tasks, heldout=heldout, paradigm=paradigm, method=method, opts=opt, joint_sampling=joint_sampling, buffer_size=buffer_size, model=model, pretrained=pretrained,
            tune=tune, epochs=epochs, batch_size=batch_size, lr=lr, text_lr_scale=text_lr_scale, seed=seed, device=device, name=name,
            max_train=max_train, max_test=max_test, eval_every=eval_every, deterministic=deterministic, amp=amp, shots=shots, data_dir=data_dir,
            lora_rank=lora_rank, lora_alpha=lora_alpha, lora_targets=lora_targets,
        ),
        tasks_file,
    )
    from medtui.validate import task_notes

    path = db_path(db)
    notes = task_notes(cfg)
    with open_store(db, create=True, write=True) as store:
        # a headless run is this process: its pid and a first heartbeat go in with the record,
        # so that no liveness check sees a "running" run without either
        own = dict(pid=os.getpid(), host=socket.gethostname(), heartbeat_at=time.time()) if headless else {}
        run_id = store.create_run(cfg, status="running" if headless else "queued", **own)
        for note in notes:  # said once, here and in the run's log
            store.log(run_id, f"note: {note}", "warning")
    for note in notes:
        typer.echo(f"medtui: note: {note}", err=True)
    if headless:
        return _foreground(path, run_id, json_out)
    from medtui.jobs.queue import enqueue

    # --detach and the app launch both go through the queue: max_parallel holds for every start
    started = enqueue(path, run_id)
    if queue or detach:
        typer.echo(run_id)
        typer.echo(_start_message(path, run_id, run_id in started), err=True)
        return 0
    open_app(str(path), run_id)
    return 0


def _start_message(path: Path, run_id: int, started: bool) -> str:
    """What became of a background start: its pid, or why it waits in the queue."""
    from medtui.jobs.queue import max_parallel

    with Store(path) as store:
        run = store.get_run(run_id)
        running = len(store.list_runs(status="running"))
        limit = max_parallel(store)
    if started:
        return f"run {run_id} started in the background (pid {run['pid'] or '?'}); `medtui logs {run_id} -f` follows it"
    return (f"run {run_id} queued: {running} running, at most {limit} at once (`medtui queue --max-parallel N` changes it); "
            "it starts when a slot frees")


def _foreground(path: Path, run_id: int, json_out: bool = False) -> int:
    """Run ``run_id`` in this process: say what it will do, show live progress with an ETA, end with the matrix.

    Everything for people goes to stderr (the plan, the progress, the heat table, where the result is
    and what to type next); stdout gets the run id first (or the run as JSON at the end). Bad input
    found once the run has started (a missing or malformed data file, weights that cannot be loaded)
    ends with one error line and exit code 2, like any other input error.
    """
    from medtui.cli.progress import AfterStart, PlainProgress, RichProgress, is_terminal, outro, plan_intro, stderr_console
    from medtui.cli.tables import heat_table, metrics_table
    from medtui.jobs.worker import execute

    if not json_out:
        typer.echo(run_id)
        sys.stdout.flush()
    console = stderr_console()
    with Store(path) as store:
        intro = plan_intro(run_id, store.get_run(run_id)["config"])
    if is_terminal():
        bar = RichProgress(console, intro)
        with bar:
            code = execute(path, run_id, extra_sink=AfterStart(bar))
    else:
        code = execute(path, run_id, extra_sink=AfterStart(PlainProgress(sys.stderr, intro)))
    with Store(path) as store:
        detail = store.detail(run_id)
    if code == 2:
        typer.echo(f"medtui: error: {detail['error']}", err=True)
        return 2
    if json_out:
        print_json(detail)
    else:
        console.print(heat_table(detail, title=f"run {run_id} · {detail['name']} · {detail['status']} · accuracy (%)"))
        console.print(metrics_table(detail["metrics"]))
    if detail["status"] != "finished":
        typer.echo(f"medtui: run {run_id} {detail['status']}: {detail['error']}", err=True)
    for line in outro(detail, path):
        typer.echo(line, err=True)  # not wrapped: the path stays one piece to copy
    return code


@app.command()
def resume(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id or name."),
    detach: bool = typer.Option(False, "--detach", help="Resume in the background and return."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> int:
    """Continue a failed or cancelled run from its last finished stage."""
    from medtui.jobs.queue import reconcile, resume_detached, resume_point

    path = db_path(db)
    with open_store(db, write=True) as store:
        run_id = store.resolve_ref(run_ref)
        if detach:
            where = None
        else:
            reconcile(store)
            where = resume_point(store, run_id)
            # claimed in one conditional update (a concurrent resume or launch cannot also claim it),
            # with this process's pid and a heartbeat so that no liveness check fails it meanwhile
            if not store.update_run(run_id, status="running", pid=os.getpid(), host=socket.gethostname(), heartbeat_at=time.time(),
                                    error=None, cancel_requested=0, where="status in ('failed', 'cancelled')"):
                raise UsageError(f"run {run_id} is {store.get_run(run_id)['status']}: it cannot be resumed")
            store.log(run_id, f"resume requested: continuing after {where}")
    if detach:
        typer.echo(run_id)
        typer.echo(f"run {run_id}: {resume_detached(path, run_id)}", err=True)
        return 0
    typer.echo(f"resuming run {run_id} after {where}", err=True)
    with contextlib.suppress(BrokenPipeError):
        return _foreground(path, run_id)
    return 1
