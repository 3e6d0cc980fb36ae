"""Methods through the engine: every method (with a buffer) runs, logs its loss components, checkpoints
its state with weights_only loading, and a resumed run gives the same matrix as one that never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medtui.engine.run import ResumePoint, run_experiment
from medtui.events import ListSink, RunStarted, StepLogged, TaskEvaluated
from medtui.methods import method_names
from helpers import fast_config


def matrix(sink: ListSink) -> list[list[float | None]]:
    started = sink.of(RunStarted)[0]
    m: list[list[float | None]] = [[None] * len(started.columns) for _ in started.rows]
    for e in sink.of(TaskEvaluated):
        m[e.row][started.columns.index(e.task)] = e.accuracy
    return m


@pytest.mark.slow
@pytest.mark.parametrize("method", method_names())
def test_every_method_with_a_buffer_resumes_to_the_same_matrix(method: str, tmp_path: Path) -> None:
    cfg = fast_config(method=method, buffer_size=24, keep_checkpoints=3, tasks=("synth-cxr-a", "synth-derm", "synth-histo"),
                      max_train=64, max_test=32)
    full = ListSink()
    run_experiment(cfg, full, checkpoint_dir=tmp_path / "ckpt")
    whole = matrix(full)
    assert all(v is not None for row in whole for v in row)
    # the stage-1 checkpoint holds tensors and plain values only
    ckpt = tmp_path / "ckpt" / "stage-1.pt"
    state = torch.load(ckpt, weights_only=True)
    assert state["stage"] == 1 and state["config"]["method"] == method
    resumed = ListSink()
    run_experiment(cfg, resumed, resume=ResumePoint(1, ckpt))
    again = matrix(resumed)
    assert again[2:] == whole[2:], method
    comps = [e.components for e in full.of(StepLogged)]
    assert all(c and abs(sum(c.values()) - e.loss) < 1e-4 * max(1.0, abs(e.loss)) for c, e in zip(comps, full.of(StepLogged)))
    assert any("replay" in c for c in comps)


def test_components_reach_the_store(db: Path) -> None:
    from medtui.jobs.worker import execute
    from medtui.store.store import Store

    with Store(db) as s:
        rid = s.create_run(fast_config(method="lwf"))
    assert execute(db, rid) == 0
    with Store(db) as s:
        steps = s.steps(rid)
    assert steps and all(set(st["components"]) >= {"task"} for st in steps)
    assert any("distill" in st["components"] for st in steps if st["stage"] == 2)
    assert not any("distill" in st["components"] for st in steps if st["stage"] == 1)  # nothing to distil yet
