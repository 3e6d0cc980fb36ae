"""Protocols: what the stages of a run are and which metrics apply (torch-free).

A **protocol** decides the rows of the accuracy matrix — which tasks each stage trains
on, whether a stage starts again from the pre-trained weights — and, through its name,
which metrics describe the matrix (:data:`medtui.metrics.METRIC_NAMES` is keyed by it).
*How* a continual stage trains is the **method** (:mod:`medtui.methods`); the replay
**buffer** composes with any method. Only ``continual`` takes a method other than
``naive`` and a buffer: the other protocols have no sequence to protect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Stage:
    """One row of the matrix after row 0: train on ``tasks`` (from pre-trained weights if ``reset``)."""

    index: int
    label: str
    tasks: tuple[str, ...]
    reset: bool = False


@dataclass(frozen=True)
class Protocol:
    """A protocol: its name, a one-line description, its stages, and whether methods and buffers apply."""

    name: str
    description: str
    plan: Callable[[Sequence[str]], list[Stage]]
    sequential: bool = False

    def stages(self, tasks: Sequence[str]) -> list[Stage]:
        """The training stages for the sequence ``tasks`` (rows 1..T)."""
        return self.plan(tuple(tasks))


def _specialized(tasks: Sequence[str]) -> list[Stage]:
    return [Stage(i, f"model {t}", (t,), reset=True) for i, t in enumerate(tasks, start=1)]


def _joint(tasks: Sequence[str]) -> list[Stage]:
    return [Stage(1, "joint", tuple(tasks))]


def _continual(tasks: Sequence[str]) -> list[Stage]:
    return [Stage(i, f"after {t}", (t,)) for i, t in enumerate(tasks, start=1)]


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("specialized", "a model per task, each from the same pre-trained start", _specialized),
        Protocol("joint", "one model on the union of all tasks", _joint),
        Protocol("continual", "one model, tasks in sequence (a method and a buffer apply)", _continual, sequential=True),
    )
}
"""Every protocol, by name (the only list of them)."""


def protocol_names() -> tuple[str, ...]:
    """Names of the protocols, in display order."""
    return tuple(PROTOCOLS)
