"""The one-class collapse of short stages, and the text tower's learning rate as its lever.

    python benchmarks/bench_collapse.py [--seeds 3] [--scales 1 0.1] [--buffers 200 0]

The synthetic run of ``bench_vs_avalanche.py`` (three tasks, 600 training images each, 3 epochs,
batch 64, ``medtui-tiny`` from random weights, lr 1e-3), with and without a 200-sample buffer,
once per seed and per ``--text-lr-scale``. For every stage after the first it prints:

- ``cos``: the largest cosine between two class embeddings of the stage's own task after the
  stage's 5th step (random prompts start near 0.94; a text tower that stopped telling the
  classes apart is at 1.00);
- ``ln2``: how many of the stage's steps had a loss within 0.01 of ln 2, the loss of a
  two-class model that scores both classes alike;

then the run's diagonal (each task right after its stage), its last row and mean ``last``.
A stage that sits at ln 2 with its class embeddings at cosine 1 is the collapse.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from medtui.config import RunConfig, resolve
from medtui.engine import run as engine_run
from medtui.engine import train as engine_train
from medtui.events import ListSink, StepLogged

TASKS = ("synth-cxr-a", "synth-derm", "synth-histo")
PROBE_STEP = 5


def one_run(seed: int, buffer: int, scale: float) -> dict[str, Any]:
    """One run with the probes in place: per-stage class-embedding cosine and ln 2 plateau, and the matrix."""
    cos: dict[int, float] = {}
    steps: dict[int, int] = {}
    forward = engine_train.forward

    def probed(model: Any, tasks: Any, batch: Any, device: Any, current: tuple[str, ...]) -> Any:
        out = forward(model, tasks, batch, device, current)
        stage = TASKS.index(current[0]) + 1
        steps[stage] = steps.get(stage, 0) + 1
        if steps[stage] == PROBE_STEP + 1:  # the model as the 5th step left it
            with torch.no_grad():
                emb = model.class_embeddings_for(list(current), cache=False)  # cache=False: never feed training a stale tensor
                sims = [F.cosine_similarity(e[i], e[j], dim=0).item() for e in emb.values()
                        for i in range(len(e)) for j in range(i + 1, len(e))]
            cos[stage] = max(sims)
        return out

    cfg = resolve(RunConfig(tasks=TASKS, epochs=3, batch_size=64, device="cpu", max_train=600, max_test=200,
                            keep_checkpoints=0, seed=seed, buffer_size=buffer, text_lr_scale=scale))
    sink = ListSink()
    engine_train.forward = probed
    engine_train.LOG_INTERVAL_S, interval = 0.0, engine_train.LOG_INTERVAL_S  # a StepLogged per step
    t0 = time.perf_counter()
    try:
        engine_run.run_experiment(cfg, sink)
    finally:
        engine_train.forward = forward
        engine_train.LOG_INTERVAL_S = interval
    plateau = {s: 0 for s in range(1, len(TASKS) + 1)}
    for e in sink.of(StepLogged):
        if abs(e.loss - math.log(2)) < 0.01:
            plateau[e.stage] += 1
    m = sink.matrix()
    return {"cos": cos, "plateau": plateau, "steps": steps, "matrix": m, "seconds": time.perf_counter() - t0,
            "last": statistics.fmean(m[-1])}


def main() -> None:
    """Every (buffer, scale, seed) run, a line each, then the mean ``last`` and the collapsed stages per setting."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--buffers", type=int, nargs="+", default=[200, 0])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 CPU thread; {', '.join(TASKS)}; 600 images x 3 epochs, batch 64, lr 1e-3")
    summary = []
    for buffer in args.buffers:
        for scale in args.scales:
            lasts, collapsed, stages = [], 0, 0
            for seed in range(args.seeds):
                r = one_run(seed, buffer, scale)
                lasts.append(100 * r["last"])
                probes = []
                for s in range(2, len(TASKS) + 1):
                    stages += 1
                    flat = r["plateau"][s] >= r["steps"][s] // 3
                    collapsed += flat and r["cos"].get(s, 0) > 0.99
                    probes.append(f"stage {s} cos {r['cos'].get(s, float('nan')):.3f} ln2 {r['plateau'][s]:2d}/{r['steps'][s]}")
                diag = " ".join(f"{100 * r['matrix'][i + 1][i]:5.1f}" for i in range(len(TASKS)))
                row = " ".join(f"{100 * v:5.1f}" for v in r["matrix"][-1])
                print(f"buffer {buffer:3d} text-lr x{scale:<4g} seed {seed}  {' · '.join(probes)}  diag {diag}  "
                      f"last row {row}  last {100 * r['last']:.1f} ({r['seconds']:.0f} s)", flush=True)
            sd = statistics.stdev(lasts) if len(lasts) > 1 else 0.0
            summary.append(f"buffer {buffer:3d} text-lr x{scale:<4g} mean last {statistics.fmean(lasts):5.1f} ± {sd:4.1f}"
                           f"  collapsed stages {collapsed}/{stages}")
    print()
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
