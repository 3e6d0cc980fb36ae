"""Continual learning: one model fine-tuned on the tasks in order (plain sequential fine-tuning)."""

from __future__ import annotations

from medtui.config import stage_labels
from medtui.paradigms.base import Paradigm, Stage, register


@register("continual")
class Continual(Paradigm):
    """Stage i trains the same model on task i only; nothing protects earlier tasks."""

    def stages(self) -> list[Stage]:
        """One stage per task, each continuing from the previous stage's weights."""
        labels = stage_labels(self.config)
        return [Stage(i, labels[i - 1], (t,)) for i, t in enumerate(self.config.tasks, start=1)]
