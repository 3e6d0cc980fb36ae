"""Events the engine emits while a run goes on, and the sinks that receive them.

The engine reports only through a sink (any callable taking an event); the
store is one sink, a list is another (tests), the CLI's progress printer a third.
Events are small frozen dataclasses of plain values (JSON-friendly); nothing
here imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class Event:
    """Base class of engine events."""

    def to_dict(self) -> dict[str, Any]:
        """The event as a plain dict, with its kind."""
        return {"kind": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    """The tasks are loaded and the model built; the matrix shape is known.

    ``rows`` are the row labels (``zero-shot`` then one per stage), ``columns`` the
    task names (trained, then held-out). ``fingerprints`` hash each task's data.
    ``plan`` is the work ahead (see :func:`medtui.eta.make_plan`): steps and images per stage,
    images per evaluation point.
    """

    rows: list[str]
    columns: list[str]
    heldout: list[str]
    device: str
    weights: str
    fingerprints: dict[str, str]
    n_params: int
    n_trainable: int
    start_row: int = 0
    plan: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageStarted(Event):
    """Training of stage ``stage`` (1-based row index) begins."""

    stage: int
    label: str
    tasks: list[str]
    n_steps: int
    n_samples: int


@dataclass(frozen=True)
class StepLogged(Event):
    """Training progress: mean loss over the steps since the last log, lr, samples per second.

    ``components`` splits the loss by name (``task``, ``replay``, ``distill``, ``penalty``…),
    each the mean over the same steps; they add up to ``loss``.
    """

    stage: int
    step: int
    n_steps: int
    epoch: int
    loss: float
    lr: float
    throughput: float
    components: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskEvaluated(Event):
    """Accuracy of the model at evaluation point ``row`` on ``task``'s test split."""

    row: int
    row_label: str
    task: str
    accuracy: float
    auc: float | None
    per_class: list[float | None]
    n: int


@dataclass(frozen=True)
class BufferUpdated(Event):
    """The replay buffer after stage ``stage``: samples per task and per class, and the kept train indices."""

    stage: int
    budget: int
    per_task: dict[str, int]
    per_class: dict[str, list[int]] = field(default_factory=dict)
    indices: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class StageFinished(Event):
    """Row ``stage`` is complete (training and every evaluation); checkpoint path if one was saved."""

    stage: int
    checkpoint: str | None
    seconds: float


@dataclass(frozen=True)
class LogLine(Event):
    """A human-readable line for the run's log."""

    level: str
    message: str


@dataclass(frozen=True)
class RunFinished(Event):
    """The run ended: ``finished``, ``failed`` or ``cancelled`` (with the reason in ``error``)."""

    status: str
    error: str | None = None


class EventSink(Protocol):
    """Anything that takes engine events."""

    def __call__(self, event: Event) -> None:
        """Receive one event."""


class ListSink(list):
    """A sink that keeps every event in a list (for tests and scripts)."""

    def __call__(self, event: Event) -> None:
        """Append the event."""
        self.append(event)

    def of(self, kind: type) -> list[Any]:
        """The events of one kind, in order."""
        return [e for e in self if isinstance(e, kind)]

    def matrix(self) -> list[list[float | None]]:
        """The accuracy matrix the events describe (rows and columns of the first RunStarted; None where not evaluated)."""
        started = self.of(RunStarted)[0]
        m: list[list[float | None]] = [[None] * len(started.columns) for _ in started.rows]
        for e in self.of(TaskEvaluated):
            m[e.row][started.columns.index(e.task)] = e.accuracy
        return m


class MultiSink:
    """Forwards each event to several sinks, in order."""

    def __init__(self, *sinks: Callable[[Event], None]) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def __call__(self, event: Event) -> None:
        """Forward the event."""
        for sink in self.sinks:
            sink(event)
