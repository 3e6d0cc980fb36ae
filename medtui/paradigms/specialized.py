"""Specialized learning: one model per task, each fine-tuned from the same pre-trained start."""

from __future__ import annotations

from medtui.config import stage_labels
from medtui.paradigms.base import Paradigm, Stage, register


@register("specialized")
class Specialized(Paradigm):
    """Row i is the model fine-tuned only on task i, starting again from the pre-trained weights."""

    def stages(self) -> list[Stage]:
        """One stage per task, each resetting to the pre-trained weights."""
        labels = stage_labels(self.config)
        return [Stage(i, labels[i - 1], (t,), reset=True) for i, t in enumerate(self.config.tasks, start=1)]
