"""Rehearsal (experience replay) from a fixed-budget buffer, for any continual method.

Every training batch of stage i > 1 is the usual ``batch_size`` samples of task i
plus up to ``batch_size`` samples drawn uniformly from the buffer (experience replay
as in Chaudhry et al., 2019). After each stage the buffer admits the task just
learned and rebalances (see :mod:`medtui.paradigms.buffer`). The method sees replayed
samples as groups marked ``replay`` and may treat them as it likes (the default loss
adds their cross-entropy as the ``replay`` component).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from medtui.events import BufferUpdated, Event
from medtui.paradigms.buffer import ReplayBuffer


@dataclass
class Batch:
    """A training batch as (task name table, task ids, sample indices into each task's train split)."""

    task_names: list[str]
    task_ids: np.ndarray
    indices: np.ndarray


class Rehearsal:
    """Mixes replay samples into every batch once the buffer holds any; admits each stage's tasks."""

    def __init__(self, budget: int, seed: int) -> None:
        self.buffer = ReplayBuffer(budget, seed=seed)

    def batch(self, batch: Batch, batch_size: int, rng: np.random.Generator) -> Batch:
        """Append up to ``batch_size`` replay samples drawn from the buffer."""
        if not len(self.buffer):
            return batch
        names, tids, idx = self.buffer.sample(batch_size, rng)
        table = list(batch.task_names)
        remap = np.array([_index(table, n) for n in names], dtype=np.int64)
        return Batch(table, np.concatenate([batch.task_ids, remap[tids]]), np.concatenate([batch.indices, idx]))

    def admit(self, stage: int, tasks: tuple[str, ...], train_labels: dict[str, np.ndarray],
              n_classes: dict[str, int], emit: Callable[[Event], None]) -> None:
        """Admit a finished stage's tasks into the buffer and report what it holds."""
        for task in tasks:
            self.buffer.add_task(task, train_labels[task], n_classes[task])
        b = self.buffer
        per_class = {t: b.per_class(t) for t in b.kept}
        emit(BufferUpdated(stage, b.budget, b.per_task(), per_class, b.indices()))

    def state_dict(self) -> dict[str, Any]:
        """The buffer's contents (plain values)."""
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the buffer's contents."""
        if state:
            self.buffer.load_state_dict(state)


def _index(table: list[str], name: str) -> int:
    """Index of ``name`` in ``table``, appending it if absent."""
    if name not in table:
        table.append(name)
    return table.index(name)
