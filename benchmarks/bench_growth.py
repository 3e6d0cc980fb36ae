"""Cost as the sequence grows: training vs evaluation vs store, for 2, 5, 10 and 20 tasks.

    python benchmarks/bench_growth.py                       # 2, 5, 10, 20 tasks
    python benchmarks/bench_growth.py --tasks 2 5 --max-train 64

Evaluating every task after every stage costs (T + 1) x T test passes, so it grows as T²
while training grows as T. Each run here goes through ``run_experiment`` with the store
as its sink (as ``medtui run`` does); tasks are the synthetic ones rendered at other seeds
and declared as user tasks (npz files). The last rows show the policy for long sequences:
``--eval-every N`` (every column after every N-th stage and the last; the stage's own
task otherwise) and ``--max-test M`` (a stratified cap on each test split).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtui.config import RunConfig, resolve
from medtui.data.synthetic import SYNTHETIC_SPECS, generate
from medtui.engine import run as engine_run
from medtui.store.sink import StoreSink
from medtui.store.store import Store


def write_tasks(folder: Path, n: int, n_train: int, n_test: int) -> list[dict[str, Any]]:
    """``n`` synthetic tasks (the five kinds in turn, each at its own seed) as npz files; their [[task]] tables."""
    tables = []
    for i in range(n):
        spec = SYNTHETIC_SPECS[i % len(SYNTHETIC_SPECS)]
        data = generate(spec, seed=1000 + i, n_train=n_train, n_val=2, n_test=n_test)
        arrays = {}
        for split, s in data.splits.items():
            imgs = s.images[..., 0] if s.images.shape[-1] == 1 else s.images
            arrays[f"{split}_images"] = imgs
            arrays[f"{split}_labels"] = s.labels.reshape(-1, 1)
        path = folder / f"t{i:02d}.npz"
        np.savez(path, **arrays)
        tables.append({"name": f"g{i:02d}-{spec.name.removeprefix('synth-')}", "domain": spec.domain, "format": "npz",
                       "path": str(path), "classes": list(spec.classes), "templates": list(spec.templates),
                       "image_size": spec.image_size, "channels": spec.channels})
    return tables


class _Timed:
    """Adds the wall time of a callable to a bucket."""

    def __init__(self, fn: Any, spent: dict[str, float], bucket: str) -> None:
        self.fn, self.spent, self.bucket = fn, spent, bucket

    def __call__(self, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.spent[self.bucket] += time.perf_counter() - t0


def measure(cfg: RunConfig, db: Path) -> dict[str, float]:
    """One run through the engine into a store; seconds per phase and test images scored."""
    spent = {"train": 0.0, "eval": 0.0, "store": 0.0}
    saved = {n: getattr(engine_run, n) for n in ("train_stage", "recalibrate_norm_stats", "evaluate_row")}
    scored = [0]

    def count_eval(*a: Any, **k: Any) -> Any:
        out = saved["evaluate_row"](*a, **k)
        scored[0] += sum(e.n for e in out)
        return out

    engine_run.train_stage = _Timed(saved["train_stage"], spent, "train")
    engine_run.recalibrate_norm_stats = _Timed(saved["recalibrate_norm_stats"], spent, "train")
    engine_run.evaluate_row = _Timed(count_eval, spent, "eval")
    t0 = time.perf_counter()
    try:
        with Store(db) as store:
            run_id = store.create_run(cfg, status="running")
            engine_run.run_experiment(cfg, _Timed(StoreSink(store, run_id), spent, "store"))
    finally:
        for n, fn in saved.items():
            setattr(engine_run, n, fn)
    spent["total"] = time.perf_counter() - t0
    spent["other"] = spent["total"] - spent["train"] - spent["eval"] - spent["store"]
    spent["scored"] = scored[0]
    return spent


def main() -> None:
    """Print the cost split per sequence length, then the long-sequence policy."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, nargs="+", default=[2, 5, 10, 20], help="sequence lengths")
    ap.add_argument("--max-train", type=int, default=128, help="training images per task")
    ap.add_argument("--test", type=int, default=200, help="test images per task")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=5, help="policy row: evaluate every column every N stages")
    ap.add_argument("--max-test", type=int, default=100, help="policy row: cap on each test split")
    args = ap.parse_args()
    os.environ.setdefault("MEDTUI_THREADS", "1")
    engine_run.pick_device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s); medtui-tiny, {args.max_train} train / "
          f"{args.test} test images per task, {args.epochs} epoch(s), batch 64")
    head = (f"{'tasks':>5} {'policy':<22} {'total s':>8} {'train s':>8} {'eval s':>8} {'store s':>8} {'other s':>8} "
            f"{'eval %':>7} {'scored':>8} {'eval img/s':>10} {'store ms/stage':>14}")
    print(head)
    with tempfile.TemporaryDirectory() as tmp:
        tables = write_tasks(Path(tmp), max(args.tasks), args.max_train, args.test)
        base = resolve(RunConfig(tasks=("synth-cxr-a",), epochs=args.epochs, device="cpu", max_train=args.max_train,
                                 keep_checkpoints=0))
        # warm-up (lazy imports, first model build), not shown
        measure(resolve(replace(base, tasks=(tables[0]["name"],), user_tasks=(tables[0],), max_test=16)), Path(tmp) / "warm.db")
        runs = [(t, "every stage, all tests", {}) for t in args.tasks]
        longest = max(args.tasks)
        runs.append((longest, f"--eval-every {args.eval_every}", {"eval_every": args.eval_every}))
        runs.append((longest, f"  + --max-test {args.max_test}", {"eval_every": args.eval_every, "max_test": args.max_test}))
        for k, (n, label, extra) in enumerate(runs):
            cfg = resolve(replace(base, tasks=tuple(t["name"] for t in tables[:n]), user_tasks=tuple(tables[:n]),
                                  name=f"growth {n}", **extra))
            s = measure(cfg, Path(tmp) / f"growth{k}.db")
            print(f"{n:>5} {label:<22} {s['total']:8.2f} {s['train']:8.2f} {s['eval']:8.2f} {s['store']:8.2f} "
                  f"{s['other']:8.2f} {100 * s['eval'] / s['total']:6.1f}% {int(s['scored']):>8} "
                  f"{s['scored'] / max(s['eval'], 1e-9):10.0f} {1000 * s['store'] / (n + 1):14.1f}", flush=True)


if __name__ == "__main__":
    main()
