"""A made-up study without training: for the app's tests, snapshots and the study benchmark.

Its runs are ordinary demo runs (named after the study, deterministic for a seed) whose
matrices come from :func:`medtui.store.demo.demo_matrix`; nothing here is a measured result.
"""

from __future__ import annotations

import random
import time
import tomllib
from pathlib import Path

from medtui.store.demo import demo_matrix
from medtui.store.store import Store
from medtui.study.expand import expand
from medtui.study.spec import parse_study
from medtui.study.store import submit

DEMO_STUDY = """
tasks = ["synth-cxr-a", "synth-cxr-b", "synth-derm"]
epochs = 1
device = "cpu"
[study]
name = "demo-sweep"
seeds = [0, 1, 2]
[study.grid]
paradigm = ["joint", "continual"]
buffer_size = [0, 50, 200]
"""


def seed_demo_study(path: str | Path, text: str = DEMO_STUDY, seed: int = 0, finish: int | None = None, now: float | None = None) -> int:
    """Store the study of ``text`` and finish ``finish`` of its runs (all by default) with demo matrices; returns its id."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    plan = expand(parse_study(tomllib.loads(text)), check=False)
    with Store(path) as store:
        sub = submit(store, plan)
        ids = sub.added[: len(sub.added) if finish is None else finish]
        with store.write():
            for k, (run_id, planned) in enumerate(zip(ids, plan.runs)):
                cfg = planned.config
                m = demo_matrix(rng, cfg.paradigm, len(cfg.tasks), len(cfg.heldout), cfg.buffer_size)
                cols = list(cfg.columns)
                rows = store.get_run(run_id)["rows"]
                store.db["evaluations"].insert_all(
                    [{"run_id": run_id, "row": i, "row_label": rows[i], "task": cols[j], "accuracy": v, "auc": None,
                      "per_class": "[]", "n": 100, "at": now} for i, row in enumerate(m) for j, v in enumerate(row)],
                    pk=("run_id", "row", "task"),
                )
                store.refresh_metrics(run_id)
                start = now - 3600 + 60 * k
                store.update_run(run_id, status="finished", started_at=start, finished_at=start + 40 + rng.uniform(0, 20))
    return sub.study_id
