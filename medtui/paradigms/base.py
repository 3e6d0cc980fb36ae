"""What a paradigm is: the stages of a run and a few hooks into the training loop.

A paradigm decides which tasks each stage trains on and whether a stage starts
from the pre-trained weights; its hooks (``before_stage``, ``batch``, ``loss``,
``after_stage``) let it change what the loop does without rewriting it. Strategies
register themselves with :func:`register`, one per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from medtui.config import RunConfig
    from medtui.events import Event

_REGISTRY: dict[str, type["Paradigm"]] = {}


def register(name: str) -> Callable[[type["Paradigm"]], type["Paradigm"]]:
    """Class decorator: make a paradigm available under ``name``."""

    def deco(cls: type[Paradigm]) -> type[Paradigm]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def build(config: "RunConfig") -> "Paradigm":
    """The paradigm object for a resolved config (``continual`` with a buffer is rehearsal)."""
    # the strategies register on import
    from medtui.paradigms import continual, joint, rehearsal, specialized  # noqa: F401

    key = "rehearsal" if config.paradigm == "continual" and config.buffer_size > 0 else config.paradigm
    return _REGISTRY[key](config)


@dataclass(frozen=True)
class Stage:
    """One row of the matrix: train on ``tasks`` (from pre-trained weights if ``reset``)."""

    index: int
    label: str
    tasks: tuple[str, ...]
    reset: bool = False


@dataclass
class StageContext:
    """What hooks see of the run: the stage, each task's training labels, the stage's RNG, a sink."""

    stage: Stage
    train_labels: dict[str, np.ndarray]
    n_classes: dict[str, int]
    rng: np.random.Generator
    emit: Callable[["Event"], None]
    batch_size: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """A training batch as (task name table, task ids, sample indices into each task's train split)."""

    task_names: list[str]
    task_ids: np.ndarray
    indices: np.ndarray


class Paradigm:
    """Base class: stages plus hooks. Subclasses override :meth:`stages` and any hook."""

    name: ClassVar[str] = ""

    def __init__(self, config: "RunConfig") -> None:
        self.config = config

    def stages(self) -> list[Stage]:
        """The training stages, in order (row 1..T of the matrix)."""
        raise NotImplementedError

    def before_stage(self, ctx: StageContext) -> None:
        """Called before a stage trains."""

    def batch(self, ctx: StageContext, batch: Batch) -> Batch:
        """May add samples to (or otherwise change) a training batch."""
        return batch

    def loss(self, ctx: StageContext, groups: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Loss of a batch given (logits, labels) per task group: cross-entropy, mean over all samples."""
        total = sum(F.cross_entropy(logits.float(), y, reduction="sum") for logits, y in groups)
        return total / sum(int(y.shape[0]) for _, y in groups)

    def after_stage(self, ctx: StageContext) -> None:
        """Called after a stage trained, before it is evaluated."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint with the model (JSON-friendly)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
