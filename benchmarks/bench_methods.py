"""Every continual method on the default synthetic sequence: the accuracy-matrix metrics side by side.

    python benchmarks/bench_methods.py --seeds 3            # the table in BENCHMARKS.md
    python benchmarks/bench_methods.py --max-train 300 --epochs 2 --methods naive,lwf
    python benchmarks/bench_methods.py --seeds 3 --text-lr-scale 0.1   # the text tower at a tenth of the rate

Two settings, both with the tiny CLIP on the CPU and the same seeds for every row (``--seeds N``:
seeds ``--seed`` … ``--seed`` + N − 1, cells mean ± sample sd; the held-out start is trained once,
at ``--seed``):

- **sequence** — the default five-task sequence from random weights (forgetting, bwt, last, avg);
- **held-out** — a "pre-trained" start (the tiny CLIP first fine-tuned on ``synth-cxr-a`` by a
  medtui joint run, ``--pretrain-epochs``), then the other four tasks in sequence with
  ``synth-cxr-a`` held out: ``heldout`` is how much of what the start knew survives after the
  last stage (the zero-shot retention that WiSE-FT and ZSCL are for; 50% is chance). This
  setting uses the tiny ViT (``--heldout-model``, layer norm like CLIP's ViT towers): on the
  ResNet tiny CLIP the batch-norm statistics, re-estimated on every new domain, decide the
  held-out accuracy whatever the method (measured: chance for naive, wise-ft and zscl alike
  from the first RGB task on).

Rows: naive, each method at its default options, rehearsal with a 200-sample buffer, and each
method with that buffer. Prints one line per row as it finishes, then a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medtui.config import DEFAULT_TASKS, RunConfig, resolve  # noqa: E402
from medtui.engine.run import export_clip_weights, run_experiment  # noqa: E402
from medtui.events import ListSink  # noqa: E402
from medtui.methods import method_names  # noqa: E402
from medtui.metrics import compute_metrics  # noqa: E402

COLUMNS = ("last", "avg", "bwt", "forgetting", "transfer", "heldout")
HELD = "synth-cxr-a"


def metrics_of(cfg: RunConfig) -> dict[str, float | None]:
    """Run ``cfg`` in this process and compute its metrics."""
    sink = ListSink()
    run_experiment(resolve(cfg), sink)
    return compute_metrics(sink.matrix(), cfg.paradigm, len(cfg.tasks))


def pretrain(base: RunConfig, folder: Path) -> tuple[Path, float]:
    """A tiny-CLIP checkpoint fine-tuned on ``synth-cxr-a`` (a medtui joint run), as an open_clip weights file,
    and its test accuracy on that task."""
    cfg = resolve(replace(base, tasks=(HELD,), heldout=(), paradigm="joint", method="naive", method_opts={}, buffer_size=0))
    sink = ListSink()
    run_experiment(cfg, sink, checkpoint_dir=folder)
    return export_clip_weights(folder / "stage-1.pt", folder / "tiny-cxr-a.pt"), float(sink.matrix()[1][0])


def rows(methods: list[str], buffer: int) -> list[tuple[str, str, int]]:
    """(label, method, buffer) for naive, each method, rehearsal, and each method with rehearsal."""
    out = [(m, m, 0) for m in methods]
    if buffer:
        out += [(f"rehearsal {buffer}" if m == "naive" else f"{m} + rehearsal {buffer}", m, buffer) for m in methods]
    return out


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def fmt_cell(xs: list[float | None]) -> str:
    """One value, or mean ± sample sd over seeds ("—" when the metric does not exist)."""
    known = [x for x in xs if x is not None]
    if not known:
        return "—"
    if len(known) == 1:
        return fmt(known[0])
    return f"{100 * statistics.fmean(known):.1f} ± {100 * statistics.stdev(known):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(method_names()))
    ap.add_argument("--buffer", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--max-test", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1, help="Seeds per row, from --seed on (cells: mean ± sd).")
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="The sequence (default: the five synthetic tasks).")
    ap.add_argument("--no-heldout", action="store_true", help="Skip the held-out setting (the heldout column stays empty).")
    ap.add_argument("--heldout-model", default="medtui-tiny-vit", help="Model of the held-out setting (default: the tiny ViT).")
    ap.add_argument("--text-lr-scale", type=float, default=1.0,
                    help="The text tower's learning rate as a multiple of the rate, in every run (default 1).")
    ap.add_argument("--pretrain-epochs", type=int, default=20, help="Epochs of the held-out setting's start on synth-cxr-a.")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    base = RunConfig(epochs=args.epochs, max_train=args.max_train, max_test=args.max_test, seed=args.seed, device="cpu",
                     keep_checkpoints=0, text_lr_scale=args.text_lr_scale)
    import torch

    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    seeds = list(range(args.seed, args.seed + args.seeds))
    print(f"torch {torch.__version__}, seed(s) {', '.join(map(str, seeds))}, {args.epochs} epochs, max_train {args.max_train or 'all'}, "
          f"text lr x{args.text_lr_scale:g}, "
          f"sequence {', '.join(tasks)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        held_base = replace(base, model=args.heldout_model)
        weights = None
        if not args.no_heldout:
            weights, start = pretrain(replace(held_base, keep_checkpoints=1, epochs=args.pretrain_epochs), Path(tmp))
            print(f"held-out setting: {args.heldout_model} fine-tuned on {HELD} for {args.pretrain_epochs} epochs "
                  f"({time.perf_counter() - t0:.0f} s): {100 * start:.1f}% on its test split at the start", flush=True)
        table = []
        for label, method, buffer in rows(methods, args.buffer):
            per_seed = []
            for seed in seeds:
                t0 = time.perf_counter()
                seq = metrics_of(replace(base, tasks=tasks, method=method, buffer_size=buffer, seed=seed))
                rest = tuple(t for t in DEFAULT_TASKS if t != HELD)
                held = {"heldout": None} if weights is None else metrics_of(replace(
                    held_base, tasks=rest, heldout=(HELD,), pretrained=str(weights), lr=1e-3, method=method,
                    buffer_size=buffer, seed=seed))
                values = [seq["last"], seq["avg"], seq["bwt"], seq["forgetting"], seq["transfer"], held["heldout"]]
                per_seed.append(values)
                print(f"{label:<24} seed {seed} " + " ".join(f"{c} {fmt(v):>5}" for c, v in zip(COLUMNS, values))
                      + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
            table.append((label, [list(col) for col in zip(*per_seed)]))
    print()
    print("| method | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for label, columns in table:
        print(f"| {label} | " + " | ".join(fmt_cell(xs) for xs in columns) + " |")


if __name__ == "__main__":
    os.environ.setdefault("MEDTUI_THREADS", "2")
    main()
