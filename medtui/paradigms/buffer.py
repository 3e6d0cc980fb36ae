"""The rehearsal replay buffer: a fixed budget of earlier training samples.

Policy (documented for users in the README):

- **Budget**: at most ``budget`` samples in total, never more.
- **Equal share per seen task**: after each stage the budget is split evenly over the
  tasks seen so far (the first ``budget % n`` tasks get one extra sample). A task with
  fewer training samples than its share keeps all of them; the unused share is not
  given to other tasks.
- **Class-balanced within a task**: a task's share is split evenly over its classes
  (water-filling: a class with too few samples keeps them all and the rest go to the
  other classes; remainders go to the lowest class indices).
- **Selection**: samples are chosen uniformly at random (seeded) when their task is
  added; when shares shrink, the most recently drawn samples are dropped, so what
  stays is still a uniform random subset.

The buffer stores indices into each task's training split, not pixels.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np


def even_split(total: int, n: int) -> list[int]:
    """Split ``total`` into ``n`` near-equal integer parts, the first ones larger by one."""
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def balanced_fill(total: int, available: list[int]) -> list[int]:
    """Class quotas summing to ``min(total, sum(available))``, as equal as availability allows."""
    quota = [0] * len(available)
    left = min(total, sum(available))
    open_ = [c for c, a in enumerate(available) if a > 0]
    while left > 0 and open_:
        share = even_split(left, len(open_))
        for c, s in zip(list(open_), share):
            take = min(s, available[c] - quota[c])
            quota[c] += take
            left -= take
        open_ = [c for c in open_ if quota[c] < available[c]]
    return quota


class ReplayBuffer:
    """A class-balanced, task-balanced replay memory of at most ``budget`` samples."""

    def __init__(self, budget: int, seed: int = 0) -> None:
        if budget < 0:
            raise ValueError("budget must be >= 0")
        self.budget = budget
        self.seed = seed
        # task -> per class, kept train indices in draw order (a prefix of a random permutation)
        self.kept: dict[str, list[list[int]]] = {}
        self._flat_tasks = np.zeros(0, dtype=np.int64)
        self._flat_idx = np.zeros(0, dtype=np.int64)
        self._task_order: list[str] = []

    def add_task(self, task: str, labels: np.ndarray, n_classes: int) -> None:
        """Admit ``task`` (its train labels) and rebalance every task's share to fit the budget."""
        rng = np.random.default_rng([self.seed, zlib.crc32(task.encode())])
        labels = np.asarray(labels)
        self.kept[task] = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in range(n_classes)]
        shares = even_split(self.budget, len(self.kept))
        for (name, per_class), share in zip(self.kept.items(), shares):
            quota = balanced_fill(share, [len(ix) for ix in per_class])
            self.kept[name] = [ix[:q] for ix, q in zip(per_class, quota)]
        self._reindex()

    def _reindex(self) -> None:
        self._task_order = list(self.kept)
        tasks, idx = [], []
        for t, per_class in enumerate(self.kept.values()):
            for ix in per_class:
                tasks.extend([t] * len(ix))
                idx.extend(ix)
        self._flat_tasks = np.asarray(tasks, dtype=np.int64)
        self._flat_idx = np.asarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._flat_idx.shape[0])

    def per_task(self) -> dict[str, int]:
        """Samples held per task."""
        return {t: sum(len(ix) for ix in per_class) for t, per_class in self.kept.items()}

    def per_class(self, task: str) -> list[int]:
        """Samples held per class of ``task``."""
        return [len(ix) for ix in self.kept.get(task, [])]

    def indices(self) -> dict[str, list[int]]:
        """The kept train indices of each task, sorted."""
        return {t: sorted(i for ix in per_class for i in ix) for t, per_class in self.kept.items()}

    def sample(self, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Draw ``min(n, len(self))`` samples uniformly without replacement.

        Returns the task names (indexable by the returned task ids), task ids and train indices.
        """
        k = min(n, len(self))
        pick = rng.choice(len(self), size=k, replace=False) if k else np.zeros(0, dtype=np.int64)
        return self._task_order, self._flat_tasks[pick], self._flat_idx[pick]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the buffer (plain JSON-friendly values)."""
        return {"budget": self.budget, "seed": self.seed, "kept": {t: [list(ix) for ix in pc] for t, pc in self.kept.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.budget = int(state["budget"])
        self.seed = int(state["seed"])
        self.kept = {t: [list(map(int, ix)) for ix in pc] for t, pc in state["kept"].items()}
        self._reindex()
