"""Evaluation: batched passes give the same scores as one sample at a time; stacked text passes match per-task ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtui.data.synthetic import SYNTHETIC_SPECS, generate
from medtui.engine.evaluate import evaluate_row, predict_probs
from medtui.engine.tensors import to_task_tensors
from medtui.metrics.classification import macro_auc
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tasks() -> list:
    specs = [s for s in SYNTHETIC_SPECS if s.name in ("synth-cxr-a", "synth-blood")]
    return [to_task_tensors(generate(s, n_train=8, n_val=2, n_test=37), CPU) for s in specs]


def model_for(tasks: list, tune: str = "full") -> ClipClassifier:
    torch.manual_seed(3)
    return ClipClassifier(load_clip("medtui-tiny", None, CPU), [t.spec for t in tasks], tune)


def reference_probs(model: ClipClassifier, task) -> np.ndarray:
    """One image at a time, through the per-task text path."""
    model.eval()
    rows = []
    with torch.no_grad():
        emb = model._encode_class_text(task.spec.name)
        for i in range(len(task.test)):
            x = task.test.images[i : i + 1]
            rows.append(torch.softmax(model.logits(model.encode_images(model.prepare(x)), task.spec.name, emb), -1))
    return torch.cat(rows).numpy()


def test_batched_probabilities_match_one_at_a_time(tasks: list) -> None:
    model = model_for(tasks)
    for t in tasks:
        ref = reference_probs(model, t)
        with torch.inference_mode():
            got = predict_probs(model, t, CPU, batch_size=16).numpy()
        assert got.shape == (37, t.spec.n_classes)
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_row_scores_do_not_depend_on_eval_batch_size(tasks: list) -> None:
    model = model_for(tasks)
    a = evaluate_row(model, tasks, 0, "zero-shot", CPU, batch_size=5)
    b = evaluate_row(model, tasks, 0, "zero-shot", CPU, batch_size=1000)
    assert [e.task for e in a] == [t.spec.name for t in tasks]
    for x, y in zip(a, b):
        assert x.accuracy == pytest.approx(y.accuracy) and x.n == 37
        assert x.auc == pytest.approx(y.auc, abs=1e-6)
    ref = reference_probs(model, tasks[1])
    labels = tasks[1].test.labels_np
    assert a[1].accuracy == pytest.approx(float((ref.argmax(1) == labels).mean()))
    assert a[1].auc == pytest.approx(macro_auc(ref.astype(np.float64), labels), abs=1e-6)


def test_stacked_text_pass_equals_one_pass_per_task(tasks: list) -> None:
    model = model_for(tasks)
    names = [t.spec.name for t in tasks]
    with torch.no_grad():
        together = model._encode_class_texts(names)
        for n in names:
            torch.testing.assert_close(together[n], model._encode_class_text(n), atol=1e-5, rtol=1e-5)
    assert together[names[1]].shape == (3, together[names[1]].shape[1])


def test_evaluation_leaves_no_inference_tensors_for_training(tasks: list) -> None:
    for tune in ("full", "vision"):
        model = model_for(tasks, tune)
        evaluate_row(model, tasks, 0, "zero-shot", CPU, batch_size=64)
        model.train()
        # a training step right after an evaluation must be able to backpropagate
        x = model.prepare(tasks[0].train.images[:4])
        loss = model.logits(model.encode_images(x), tasks[0].spec.name).sum()
        loss.backward()
        assert any(p.grad is not None for p in model.trainable_parameters())


def test_eval_every_leaves_skipped_cells_missing_and_metrics_skip_them() -> None:
    from helpers import fast_config

    from medtui.engine.run import run_experiment
    from medtui.events import ListSink, RunStarted, TaskEvaluated
    from medtui.metrics import compute_metrics

    cfg = fast_config(tasks=("synth-cxr-a", "synth-derm", "synth-histo"), eval_every=2, max_train=64, max_test=24)
    sink = ListSink()
    run_experiment(cfg, sink)
    cols = sink.of(RunStarted)[0].columns
    m: list[list[float | None]] = [[None] * 3 for _ in range(4)]
    for e in sink.of(TaskEvaluated):
        m[e.row][cols.index(e.task)] = e.accuracy
    filled = [[v is not None for v in row] for row in m]
    # zero-shot, row 2 (every 2nd stage) and the last row are complete; row 1 has its own task only
    assert filled == [[True] * 3, [True, False, False], [True] * 3, [True] * 3]
    metrics = compute_metrics(m, "continual", 3)
    assert metrics["la"] is not None and metrics["bwt"] is not None and metrics["last"] is not None


def test_eval_every_must_be_positive() -> None:
    from helpers import fast_config

    from medtui.errors import ConfigError

    with pytest.raises(ConfigError, match="eval every"):
        fast_config(eval_every=0)


def test_store_writes_a_row_of_cells_with_one_metrics_refresh(tmp_path) -> None:
    from helpers import fast_config

    from medtui.events import StageFinished, TaskEvaluated
    from medtui.store.sink import StoreSink
    from medtui.store.store import Store

    cfg = fast_config(tasks=("synth-cxr-a", "synth-derm", "synth-histo"))
    with Store(tmp_path / "s.db") as store:
        rid = store.create_run(cfg, status="running")
        sink = StoreSink(store, rid)
        refreshes = []
        real = store.refresh_metrics
        store.refresh_metrics = lambda run_id: refreshes.append(run_id) or real(run_id)  # type: ignore[method-assign]
        for row in range(2):
            for j, task in enumerate(cfg.tasks):
                sink(TaskEvaluated(row, "r", task, 0.5 + 0.1 * j + 0.1 * row, None, [0.5, 0.5], 10))
            sink(StageFinished(row, None, 1.0))
        assert len(refreshes) == 2  # one per evaluation point, not one per cell
        m = store.matrix(rid)["matrix"]
        assert m[0] == pytest.approx([0.5, 0.6, 0.7]) and m[1] == pytest.approx([0.6, 0.7, 0.8])
        assert store.get_run(rid)["metrics"]["zero_shot"] == pytest.approx(0.6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pinned_host_split_gathers_through_staging_buffers_like_the_device_copy(tasks: list) -> None:
    cuda = torch.device("cuda")
    from medtui.data.synthetic import SYNTHETIC_SPECS, generate

    data = generate(SYNTHETIC_SPECS[0], n_train=40, n_val=2, n_test=4)
    host = to_task_tensors(data, cuda, budget=[0]).train
    dev = to_task_tensors(data, cuda, budget=[1 << 40]).train
    assert host.images.is_pinned() and dev.images.device.type == "cuda"
    rng = np.random.default_rng(0)
    for k in (8, 8, 12, 3, 12):  # buffers alternate, grow, and are reused
        idx = rng.choice(40, size=k, replace=False)
        xh, yh = host.gather(idx, cuda)
        xd, yd = dev.gather(idx, cuda)
        assert torch.equal(xh, xd) and torch.equal(yh, yd)
