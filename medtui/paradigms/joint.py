"""Joint learning: one model fine-tuned on the union of all tasks at once."""

from __future__ import annotations

from medtui.config import stage_labels
from medtui.paradigms.base import Paradigm, Stage, register


@register("joint")
class Joint(Paradigm):
    """A single stage over every training task's samples, shuffled together."""

    def stages(self) -> list[Stage]:
        """One stage training on every task."""
        return [Stage(1, stage_labels(self.config)[0], tuple(self.config.tasks))]
