"""Methods through the engine: every method (with a buffer) runs, logs its loss components, checkpoints
its state with weights_only loading, and a resumed run gives the same matrix as one that never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medtui.engine.run import ResumePoint, export_clip_weights, run_experiment
from medtui.events import ListSink, StepLogged
from medtui.methods import method_names
from helpers import fast_config


@pytest.mark.slow
@pytest.mark.parametrize("method", method_names())
def test_every_method_with_a_buffer_resumes_to_the_same_matrix(method: str, tmp_path: Path) -> None:
    cfg = fast_config(method=method, buffer_size=24, keep_checkpoints=3, tasks=("synth-cxr-a", "synth-derm", "synth-histo"),
                      max_train=64, max_test=32)
    full = ListSink()
    run_experiment(cfg, full, checkpoint_dir=tmp_path / "ckpt")
    whole = full.matrix()
    assert all(v is not None for row in whole for v in row)
    # the stage-1 checkpoint holds tensors and plain values only
    ckpt = tmp_path / "ckpt" / "stage-1.pt"
    state = torch.load(ckpt, weights_only=True)
    assert state["stage"] == 1 and state["config"]["method"] == method
    resumed = ListSink()
    run_experiment(cfg, resumed, resume=ResumePoint(1, ckpt))
    again = resumed.matrix()
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


@pytest.fixture(scope="module")
def trained_start(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny CLIP briefly fine-tuned on one task, saved as an open_clip checkpoint (LoRA needs a trained start)."""
    d = tmp_path_factory.mktemp("start")
    run_experiment(fast_config(tasks=("synth-histo",), paradigm="joint"), ListSink(), checkpoint_dir=d)
    return str(export_clip_weights(d / "stage-1.pt", d / "start.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("method", method_names())
def test_every_method_works_with_lora_and_resumes(method: str, trained_start: str, tmp_path: Path) -> None:
    cfg = fast_config(method=method, tune="lora", pretrained=trained_start, lr=1e-3, keep_checkpoints=2, max_train=64, max_test=32)
    full = ListSink()
    run_experiment(cfg, full, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / "stage-1.pt", weights_only=True)
    assert all("lora" in k for k in state["model"]), "a LoRA checkpoint holds the adapters only"
    if method == "ewc":
        assert state["method"]["fisher"] and all("lora" in k for k in state["method"]["fisher"])
    resumed = ListSink()
    run_experiment(cfg, resumed, resume=ResumePoint(1, tmp_path / "stage-1.pt"))
    assert resumed.matrix()[2:] == full.matrix()[2:]
