"""Continual learning with rehearsal (experience replay) from a fixed-budget buffer.

Every training batch of stage i > 1 is the usual ``batch_size`` samples of task i
plus up to ``batch_size`` samples drawn uniformly from the buffer (experience replay
as in Chaudhry et al., 2019). After each stage the buffer admits the task just
learned and rebalances (see :mod:`medtui.paradigms.buffer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medtui.events import BufferUpdated
from medtui.paradigms.base import Batch, StageContext, register
from medtui.paradigms.buffer import ReplayBuffer
from medtui.paradigms.continual import Continual


@register("rehearsal")
class Rehearsal(Continual):
    """Continual stages, with replay samples mixed into every batch once the buffer holds any."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.buffer = ReplayBuffer(config.buffer_size, seed=config.seed)

    def batch(self, ctx: StageContext, batch: Batch) -> Batch:
        """Append up to ``batch_size`` replay samples drawn from the buffer."""
        if not len(self.buffer):
            return batch
        names, tids, idx = self.buffer.sample(ctx.batch_size, ctx.rng)
        table = list(batch.task_names)
        remap = np.array([_index(table, n) for n in names], dtype=np.int64)
        return Batch(table, np.concatenate([batch.task_ids, remap[tids]]), np.concatenate([batch.indices, idx]))

    def after_stage(self, ctx: StageContext) -> None:
        """Admit the stage's task into the buffer and report what it holds."""
        for task in ctx.stage.tasks:
            self.buffer.add_task(task, ctx.train_labels[task], ctx.n_classes[task])
        b = self.buffer
        per_class = {t: b.per_class(t) for t in b.kept}
        ctx.emit(BufferUpdated(ctx.stage.index, b.budget, b.per_task(), per_class, b.indices()))

    def state_dict(self) -> dict[str, Any]:
        """The buffer's contents."""
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the buffer's contents."""
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])


def _index(table: list[str], name: str) -> int:
    """Index of ``name`` in ``table``, appending it if absent."""
    if name not in table:
        table.append(name)
    return table.index(name)
