"""What the default experiment is for: the tiny CLIP learns each synthetic task, forgets under plain
sequential fine-tuning, and forgets less with rehearsal. Batch-norm recalibration is checked directly."""

from __future__ import annotations

import pytest
import torch

from medtui.engine.run import run_experiment
from medtui.events import ListSink
from medtui.metrics import compute_metrics
from helpers import fast_config

SEQUENCE = ("synth-cxr-a", "synth-derm", "synth-blood")


def run_matrix(**overrides: object) -> list[list[float]]:
    cfg = fast_config(tasks=SEQUENCE, epochs=3, max_train=None, max_test=None, batch_size=64, **overrides)
    sink = ListSink()
    run_experiment(cfg, sink)
    m = sink.matrix()
    missing = [(i, j) for i, row in enumerate(m) for j, v in enumerate(row) if v is None]
    assert not missing, f"cells never evaluated: {missing}"
    return m  # type: ignore[return-value]


@pytest.fixture(scope="module")
def plain() -> list[list[float]]:
    return run_matrix()


def test_each_task_is_learned_well_above_chance(plain: list[list[float]]) -> None:
    chance = [0.5, 0.5, 1 / 3]
    diagonal = [plain[j + 1][j] for j in range(3)]
    assert all(d > c + 0.25 for d, c in zip(diagonal, chance)), diagonal
    assert all(abs(plain[0][j] - chance[j]) < 0.15 for j in range(3)), plain[0]  # random weights: zero-shot near chance


def test_sequential_fine_tuning_forgets_and_rehearsal_forgets_less(plain: list[list[float]]) -> None:
    m_plain = compute_metrics(plain, "continual", 3)
    assert m_plain["forgetting"] > 0.2, m_plain
    replay = run_matrix(buffer_size=200)
    m_replay = compute_metrics(replay, "continual", 3)
    assert m_replay["forgetting"] < m_plain["forgetting"] - 0.1, (m_plain, m_replay)
    assert m_replay["last"] > m_plain["last"], (m_plain, m_replay)


def test_recalibration_sets_running_stats_to_the_data_statistics() -> None:
    from medtui.data.registry import TaskRegistry
    from medtui.engine.tensors import to_task_tensors
    from medtui.engine.train import recalibrate_norm_stats
    from medtui.models.classifier import ClipClassifier
    from medtui.models.clip import load_clip
    cfg = fast_config(tasks=("synth-cxr-a",))
    torch.manual_seed(0)
    task = to_task_tensors(TaskRegistry().load("synth-cxr-a", max_train=96), torch.device("cpu"))
    model = ClipClassifier(load_clip("medtui-tiny", None), [task.spec], "full")
    stem_bn = model.clip.visual.bn1
    stem_bn.running_mean.fill_(123.0)
    tasks = {"synth-cxr-a": task}
    assert recalibrate_norm_stats(model, None, ("synth-cxr-a",), 1, tasks, cfg, torch.device("cpu")) > 0
    # the stem's input is the first conv of the prepared images: its channel means are what bn1 must hold
    with torch.no_grad():
        x = model.prepare(task.train.images)
        expected = model.clip.visual.conv1(x).mean(dim=(0, 2, 3))
    assert torch.allclose(stem_bn.running_mean, expected, atol=1e-4)
    assert stem_bn.momentum == 0.1  # restored
    head = ClipClassifier(load_clip("medtui-tiny", None), [task.spec], "head")
    assert recalibrate_norm_stats(head, None, ("synth-cxr-a",), 1, tasks, cfg, torch.device("cpu")) == 0
