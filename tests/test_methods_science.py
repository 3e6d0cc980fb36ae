"""What the methods are for, measured: on the synthetic sequence every method forgets clearly less than
plain fine-tuning with the same seed while still learning each task.

Budget (to stay near two minutes on two CPU cores): the first, third and fifth tasks of the default
sequence, 300 training images per task, 2 epochs, the tiny CLIP, methods at their default options.
The same config gives the same matrix on the CPU, so these are fixed outcomes, not samples.
``benchmarks/bench_methods.py`` runs the full default sequence.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from medtui.config import RunConfig, resolve
from medtui.engine.run import run_experiment
from medtui.events import ListSink
from medtui.metrics import compute_metrics

SEQUENCE = ("synth-cxr-a", "synth-derm", "synth-blood")
BASE = RunConfig(tasks=SEQUENCE, epochs=2, max_train=300, max_test=200, device="cpu", keep_checkpoints=0)
METHODS = ("lwf", "ewc", "wise-ft", "zscl")
#: "Clearly lower": at least this many points of forgetting less than naive.
MARGIN = 0.05

pytestmark = pytest.mark.slow


def metrics(cfg: RunConfig) -> dict[str, float | None]:
    sink = ListSink()
    run_experiment(resolve(cfg), sink)
    m = sink.matrix()
    assert all(v is not None for row in m for v in row)
    return compute_metrics(m, cfg.paradigm, len(cfg.tasks))


@pytest.fixture(scope="module")
def naive() -> dict[str, float | None]:
    return metrics(BASE)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_forgets_clearly_less_than_naive(method: str, naive: dict[str, float | None]) -> None:
    got = metrics(replace(BASE, method=method))
    assert got["forgetting"] < naive["forgetting"] - MARGIN, (method, got, naive)
    # and not by refusing to learn: each task is still learned well above chance (1/2, 1/2, 1/3)
    assert got["la"] > 0.55, (method, got)
