"""Browsing commands: ``runs``, ``show``, ``compare``, ``datasets``, ``models``."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer
from rich.console import Console

from medtui.cli import DB_HELP, app
from medtui.cli.common import db_path, open_store, print_json
from medtui.cli.tables import console, heat_table, metrics_table, new_table
from medtui.eta import fmt_eta, run_eta
from medtui.format import fmt_duration, fmt_metric, fmt_time, fmt_trained, progress_text, run_duration
from medtui.errors import UsageError
from medtui.store.compare import EXPORTERS, FORMATS, compare as compare_runs, sections


def _out() -> Console:
    return console()


def _list_row(run: dict[str, Any]) -> dict[str, Any]:
    m = run.get("metrics") or {}
    return {
        "id": run["id"],
        "name": run["name"],
        "status": run["status"],
        "paradigm": run["paradigm"],
        "tasks": run["tasks"],
        "heldout": run["heldout"],
        "buffer_size": run["buffer_size"],
        "model": run["model"],
        "pretrained": run["pretrained"],
        "progress": run.get("progress") or {},
        "metrics": m,
        "created_at": run["created_at"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "duration_s": run_duration(run),
        "eta_s": run_eta(run),
        "pid": run["pid"],
        "error": run["error"],
    }


@app.command()
def runs(
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many (newest first)."),
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """List runs, newest first."""
    from medtui.jobs.queue import reconcile
    from medtui.store.store import STATUSES

    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown status {status!r}: choose one of {', '.join(STATUSES)}")
    if limit is not None and limit <= 0:
        raise UsageError(f"--limit must be > 0, got {limit}")
    rows: list[dict[str, Any]] = []
    if db_path(db).exists():
        with open_store(db) as store:
            reconcile(store)
            rows = store.list_runs(status=status, limit=limit)
    if json_out:
        print_json([_list_row(r) for r in rows])
        return
    out = _out()
    if not rows:
        out.print("no runs yet: `medtui run --headless` starts the default one")
        return
    wide = out.width >= 120
    cols = ["id", "name", "status", "paradigm", "buf", "last", "bwt", "forget", "took"]
    if wide:
        cols[4:4] = ["model", "tasks"]
        cols.insert(-1, "started")
    t = new_table(*cols, right=("id", "buf", "last", "bwt", "forget", "took"))
    lines = []
    for r in rows:
        m = r.get("metrics") or {}
        values = {
            "id": str(r["id"]), "name": r["name"] or "", "status": progress_text(r), "paradigm": r["paradigm"],
            "model": r["model"], "tasks": ",".join(t.removeprefix("synth-") for t in r["tasks"]),
            "buf": str(r["buffer_size"] or ""), "last": fmt_metric("last", m.get("last", m.get("in_domain"))),
            "bwt": fmt_metric("bwt", m.get("bwt")), "forget": fmt_metric("forgetting", m.get("forgetting")),
            "started": fmt_time(r["started_at"]),
            # a running run's "took" is the time it still needs
            "took": fmt_eta(run_eta(r)) if r["status"] == "running" else fmt_duration(run_duration(r)),
        }
        lines.append([values[c] for c in cols])
    # the name (and the tasks) get what the other columns leave of the terminal: nothing else is ever cut
    natural = {c: max(len(c), *(len(v[i]) for v in lines)) for i, c in enumerate(cols)}
    elastic = [c for c in ("name", "tasks") if c in cols]
    room = out.width - sum(w for c, w in natural.items() if c not in elastic) - 2 * (len(cols) - 1)
    for col in t.columns:
        if col.header in elastic:
            col.max_width = max(len(col.header), min(24, room // len(elastic)))
    for line in lines:
        t.add_row(*line)
    out.print(t)


@app.command()
def show(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id or name."),
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Show one run: config, accuracy matrix, metrics, buffer."""
    from medtui.jobs.queue import reconcile

    with open_store(db) as store:
        reconcile(store)
        detail = store.detail(store.resolve_ref(run_ref))
    if json_out:
        print_json(detail)
        return
    out = _out()
    out.print(f"[bold]run {detail['id']}[/] · {detail['name']} · {detail['status']}" + (f" · {detail['error']}" if detail["error"] else ""))
    cfg = detail["config"]
    out.print(
        f"{cfg['paradigm']} · {_protocol_extra(cfg)} · {cfg['model']} ({detail['weights'] or cfg['pretrained'] or 'random'}) · "
        f"tune {cfg['tune']} · {cfg['epochs']} epochs · bs {cfg['batch_size']} · lr {cfg['lr']} · seed {cfg['seed']}"
        + (f" · {cfg['shots']} shots" if cfg.get("shots") else "")
        + f" · {detail['device'] or cfg['device']}"
        + (f" · amp {cfg['amp']}" if cfg.get("amp", "auto") != "auto" else ""),
        markup=False,
    )
    if detail["status"] == "running":
        out.print(f"{progress_text(detail)} · {fmt_eta(run_eta(detail))}")
    if cfg.get("tune") == "lora":
        targets = ", ".join(cfg.get("lora_targets") or []) or "defaults for the architecture"
        out.print(f"lora rank {cfg['lora_rank']} · alpha {cfg['lora_alpha']} · targets {targets}", markup=False)
    trained = fmt_trained(detail.get("progress"))
    if trained:
        out.print(trained, markup=False)
    out.print(heat_table(detail))
    out.print(metrics_table(detail["metrics"]))
    if detail["buffer"]["per_task"]:
        out.print("buffer: " + ", ".join(f"{t} {n}" for t, n in detail["buffer"]["per_task"].items()) + f" (budget {detail['buffer']['budget']})")


def _protocol_extra(cfg: dict[str, Any]) -> str:
    """What goes with the protocol: the method and buffer (continual) or the sampling (joint)."""
    from medtui.format import fmt_method

    if cfg["paradigm"] == "joint":
        return f"sampling {cfg.get('joint_sampling', 'proportional')}"
    if cfg["paradigm"] == "continual":
        return f"method {fmt_method(cfg)} · buffer {cfg['buffer_size']}"
    return "from pre-trained each"


@app.command()
def methods(json_out: bool = typer.Option(False, "--json", help="JSON to stdout.")) -> None:
    """List the continual methods: what each does, its options with defaults, the paper it follows."""
    from medtui.methods import describe

    items = describe()
    if json_out:
        print_json(items)
        return
    out = _out()
    for m in items:
        out.print(f"[bold]{m['name']}[/] — {m['description']}")
        out.print(f"  paper: {m['paper']}", markup=False)
        for o in m["options"]:
            out.print(f"  --opt {o['name']}={o['default']!r:<8} ({o['type']}) {o['help']}", markup=False)
        if not m["options"]:
            out.print("  (no options)")


@app.command()
def compare(
    run_refs: list[str] = typer.Argument(..., metavar="RUN...", help="Two or more run ids or names (the first is the baseline)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | markdown | latex | csv | json"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Compare runs side by side: differing config first, metrics with deltas, matrices."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if len(run_refs) < 2:
        raise UsageError("compare needs at least two runs")
    with open_store(db) as store:
        ids = [store.resolve_ref(r) for r in run_refs]
        c = compare_runs(store, ids)
    if fmt != "table":
        sys.stdout.write(EXPORTERS[fmt](c))
        return
    out = _out()
    heads = c.labels
    if sum(len(h) + 2 for h in heads) + len("forgetting") > out.width:
        # long names: the columns are headed by id only, never by a cut name
        heads = [f"#{r['id']}" for r in c.runs]
        out.print("runs: " + " · ".join(c.labels))
    n_tables = 2 if c.config_diff else 1  # the matrices come as heat tables instead
    for title, header, rows in sections(c)[:n_tables]:
        header = [header[0], *heads]
        wrap = header[1:] if title.startswith("Config") else ()
        t = new_table(*header, title=title, right=() if wrap else header[1:], wrap=wrap)
        for r in rows:
            t.add_row(*r)
        out.print(t)
    for label, r in zip(c.labels, c.runs):
        out.print()
        out.print(heat_table(r, title=f"accuracy (%) {label} · {r['paradigm']} · {r['status']}"))


@app.command()
def datasets(
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout."),
    all_sizes: bool = typer.Option(False, "--all-sizes", help="List every MedMNIST size (default: 28 px and the ones on disk)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Where MedMNIST .npz files live."),
    tasks_file: Optional[str] = typer.Option(None, "--tasks-file", help="A TOML file of [[task]] declarations to list too."),
) -> None:
    """List the tasks medtui knows, by domain, with classes and split sizes."""
    from pathlib import Path

    from medtui.data.registry import TaskRegistry

    user: list[dict[str, Any]] = []
    if tasks_file:
        from medtui.config import load_toml

        user = [dict(t) for t in load_toml(Path(tasks_file)).user_tasks]
    reg = TaskRegistry(data_dir, user)
    items = []
    for spec in reg.specs():
        if spec.options.get("note"):
            typer.echo(f"medtui: note: {spec.options['note']}", err=True)
        available = reg.available(spec)
        if spec.source == "medmnist" and not all_sizes and spec.image_size != 28 and not available:
            continue
        items.append(
            {
                "name": spec.name,
                "domain": spec.domain,
                "source": spec.source,
                "classes": list(spec.classes),
                "templates": list(spec.templates),
                "image_size": spec.image_size,
                "channels": spec.channels,
                "splits": {k: spec.options.get(f"n_{k}") for k in ("train", "val", "test") if spec.options.get(f"n_{k}") is not None},
                "available": available,
                "description": spec.description,
            }
        )
    if json_out:
        print_json({"data_dir": str(reg.data_dir), "tasks": items})
        return
    out = _out()
    typer.echo(f"MedMNIST files are looked up in {reg.data_dir}", err=True)
    wide = out.width >= 120
    t = new_table("domain", "task", "classes", "px", "train/val/test", "on disk", right=("px", "train/val/test"))
    for col in t.columns:
        col.max_width = 60 if col.header == "classes" else 24
    for it in sorted(items, key=lambda i: (i["domain"], i["name"])):
        sp = it["splits"]
        classes = f"{len(it['classes'])}" + (": " + ", ".join(it["classes"]) if wide else "")
        t.add_row(
            it["domain"], it["name"], classes, str(it["image_size"]),
            "/".join(str(sp.get(k, "?")) for k in ("train", "val", "test")), "yes" if it["available"] else "no",
        )
    out.print(t)


#: Words that mark a medical checkpoint (listed first by ``medtui models``).
MEDICAL = ("biomed", "pubmed", "medical", "rad", "path", "chexzero", "quilt")


def _is_medical(name: str) -> bool:
    low = name.lower()
    return any(w in low for w in MEDICAL)


@app.command()
def models(
    pattern: Optional[str] = typer.Argument(None, metavar="[FILTER]", help="Only models whose name contains this (any case), e.g. vit."),
    cached: bool = typer.Option(False, "--cached", help="Only models with weights already on disk (and the tiny configs)."),
    json_out: bool = typer.Option(False, "--json", help="JSON to stdout."),
    all_models: bool = typer.Option(False, "--all", help="Every architecture, not only those with weights or tiny configs."),
) -> None:
    """List model architectures, their pretrained tags and which weights are cached; medical checkpoints first."""
    from medtui.models import clip
    from medtui.models.catalog import HUB_MODELS, architectures, tiny_models

    tiny = set(tiny_models())
    word = (pattern or "").lower()
    items = []
    for hub in HUB_MODELS:
        items.append({"name": hub, "tiny": False, "medical": _is_medical(hub),
                      "pretrained": [{"tag": "(hub)", "cached": clip.hub_cached(hub), "source": hub}]})
    for arch in architectures():
        if word and word not in arch.lower():
            continue  # before asking open_clip for tags: a filter makes the listing quick
        tags = clip.pretrained_tags(arch)
        if not tags and arch not in tiny and not all_models:
            continue
        items.append(
            {
                "name": arch,
                "tiny": arch in tiny,
                "medical": _is_medical(arch),
                "pretrained": [{"tag": t, "cached": clip.weights_cached(arch, t), "source": clip.weights_source(arch, t)} for t in tags],
            }
        )
    if word:
        items = [it for it in items if word in it["name"].lower()]
    if cached:
        items = [it for it in items if it["tiny"] or any(p["cached"] for p in it["pretrained"])]
    # medical checkpoints first, then the tiny test configs, then the rest in catalogue order
    items.sort(key=lambda it: (not it["medical"], not it["tiny"]))
    if json_out:
        print_json(items)
        return
    out = _out()
    if not items:
        out.print(f"no model matches {pattern!r}" + (" with cached weights" if cached else ""))
        return
    # long hub ids fold instead of squeezing the tags off an 80-column terminal
    t = new_table("model", "weights (✓ cached)", wrap=("model", "weights (✓ cached)"))
    t.columns[0].max_width = 40
    for it in items:
        if it["tiny"]:
            desc = "random init (tiny test config)"
        else:
            desc = " ".join(p["tag"] + (" ✓" if p["cached"] else "") for p in it["pretrained"])
        t.add_row(it["name"] + (" (medical)" if it["medical"] else ""), desc)
    out.print(t)
