"""Does a longer warm-up steady replay stages? The stage schedule with a minimum warm-up, A/B.

    python benchmarks/bench_warmup.py [--seeds 3] [--min-warmup 0 1 3]

The synthetic replay run of ``bench_vs_avalanche.py`` (three tasks, 600 training images each,
3 epochs, batch 64, buffer 200, ``medtui-tiny`` from random weights) once per seed and per
minimum warm-up. ``0`` is medtui's schedule as it is (5 % of a stage's steps: one step of 30,
which is no warm-up, the first step at the full rate); ``k`` warms up over at least ``k`` steps
and ramps to the full rate at step ``k``. Prints each run's last matrix row and the mean
``last``: a task at 50 % after training on it is the one-class collapse this looks for.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from medtui.config import RunConfig, resolve
from medtui.engine import run as engine_run
from medtui.engine import train as engine_train
from medtui.events import TaskEvaluated

TASKS = ("synth-cxr-a", "synth-derm", "synth-histo")


def schedule(minimum: int):  # noqa: ANN201
    """``cosine_lr`` with a warm-up of at least ``minimum`` steps (0: unchanged)."""
    real = engine_train.cosine_lr

    def lr(step: int, total: int, warmup: int) -> float:
        if minimum == 0:
            return real(step, total, warmup)
        w = max(minimum, warmup)
        return (step + 1) / (w + 1) if step < w else real(step, total, w)

    return lr


def main() -> None:
    """Run every (minimum warm-up, seed) pair and print the rows and the mean ``last``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--min-warmup", type=int, nargs="+", default=[0, 1, 3])
    args = ap.parse_args()
    torch.set_num_threads(1)
    real = engine_train.cosine_lr
    try:
        for minimum in args.min_warmup:
            engine_train.cosine_lr = schedule(minimum)
            lasts = []
            for seed in range(args.seeds):
                cfg = resolve(RunConfig(tasks=TASKS, epochs=3, batch_size=64, device="cpu", max_train=600,
                                        keep_checkpoints=0, seed=seed, buffer_size=200))
                cells: dict[tuple[int, str], float] = {}

                def sink(ev: object) -> None:
                    if isinstance(ev, TaskEvaluated):
                        cells[(ev.row, ev.task)] = ev.accuracy

                t0 = time.perf_counter()
                engine_run.run_experiment(cfg, sink)
                last_row = max(r for r, _ in cells)
                row = [100 * cells[(last_row, t)] for t in TASKS]
                lasts.append(statistics.fmean(row))
                print(f"min warm-up {minimum}  seed {seed}  last row " + " ".join(f"{v:5.1f}" for v in row)
                      + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
            print(f"min warm-up {minimum}: mean last {statistics.fmean(lasts):.1f} over {args.seeds} seed(s)", flush=True)
    finally:
        engine_train.cosine_lr = real


if __name__ == "__main__":
    main()
