"""The replay buffer: budget, balance across tasks and classes, shrinking, sampling, state."""

from __future__ import annotations

import numpy as np
import pytest

from medtui.paradigms.buffer import ReplayBuffer, balanced_fill, even_split


def labels(counts: list[int]) -> np.ndarray:
    return np.concatenate([np.full(n, c) for c, n in enumerate(counts)])


def test_even_split_and_balanced_fill() -> None:
    assert even_split(10, 3) == [4, 3, 3]
    assert even_split(2, 3) == [1, 1, 0]
    # a class with too few samples keeps them all; the rest goes to the others
    assert balanced_fill(10, [2, 50, 50]) == [2, 4, 4]
    assert balanced_fill(9, [100, 100]) == [5, 4]
    assert balanced_fill(100, [3, 4]) == [3, 4]
    assert balanced_fill(0, [5, 5]) == [0, 0]


@pytest.mark.parametrize("budget", [1, 7, 50, 200])
def test_never_over_budget_and_task_balanced(budget: int) -> None:
    buf = ReplayBuffer(budget, seed=3)
    sizes = [(300, 300), (100, 400), (50, 50, 50)]
    for t, counts in enumerate(sizes):
        buf.add_task(f"t{t}", labels(list(counts)), len(counts))
        per_task = buf.per_task()
        assert len(buf) == sum(per_task.values()) <= budget
        shares = list(per_task.values())
        assert max(shares) - min(shares) <= 1  # equal share per seen task
        if budget >= len(per_task):
            assert len(buf) == budget  # the budget is used when every task has enough samples


def test_class_balanced_within_task_and_valid_indices() -> None:
    buf = ReplayBuffer(60, seed=0)
    y0 = labels([500, 20])  # imbalanced task: the small class is kept whole
    buf.add_task("a", y0, 2)
    assert buf.per_class("a") == [40, 20]
    y1 = labels([100, 100, 100])
    buf.add_task("b", y1, 3)
    assert buf.per_class("a") == [15, 15]
    assert buf.per_class("b") == [10, 10, 10]
    for task, y in (("a", y0), ("b", y1)):
        idx = buf.indices()[task]
        assert len(set(idx)) == len(idx)
        counts = np.bincount(y[idx], minlength=len(buf.per_class(task)))
        assert counts.tolist() == buf.per_class(task)


def test_shrinking_keeps_a_subset() -> None:
    buf = ReplayBuffer(40, seed=1)
    buf.add_task("a", labels([50, 50]), 2)
    before = set(buf.indices()["a"])
    buf.add_task("b", labels([50, 50]), 2)
    after = set(buf.indices()["a"])
    assert after < before and len(after) == 20


def test_sampling_is_uniform_without_replacement_and_seeded() -> None:
    buf = ReplayBuffer(30, seed=1)
    buf.add_task("a", labels([50, 50]), 2)
    buf.add_task("b", labels([50, 50]), 2)
    names, tids, idx = buf.sample(100, np.random.default_rng(0))
    assert len(idx) == 30 and names == ["a", "b"]
    assert len(set(zip(tids.tolist(), idx.tolist()))) == 30
    _, t2, i2 = buf.sample(10, np.random.default_rng(0))
    _, t3, i3 = buf.sample(10, np.random.default_rng(0))
    assert (t2 == t3).all() and (i2 == i3).all()


def test_state_roundtrip() -> None:
    buf = ReplayBuffer(25, seed=5)
    buf.add_task("a", labels([30, 30]), 2)
    buf.add_task("b", labels([10, 10, 10]), 3)
    other = ReplayBuffer(0)
    other.load_state_dict(buf.state_dict())
    assert other.indices() == buf.indices() and other.per_task() == buf.per_task() and len(other) == len(buf)


def test_empty_buffer_samples_nothing() -> None:
    buf = ReplayBuffer(10)
    assert len(buf) == 0
    assert len(buf.sample(5, np.random.default_rng(0))[2]) == 0
    with pytest.raises(ValueError):
        ReplayBuffer(-1)
