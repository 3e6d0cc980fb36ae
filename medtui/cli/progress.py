"""Live progress of a foreground run on a terminal (rich), or plain lines when not a terminal."""

from __future__ import annotations

import sys
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from medtui.format import fmt_metric, fmt_pct
from medtui.events import Event, LogLine, RunFinished, RunStarted, StageFinished, StageStarted, StepLogged, TaskEvaluated


class RichProgress:
    """An event sink drawing a stage bar and a step bar on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.stages: Any = None
        self.steps: Any = None

    def __enter__(self) -> "RichProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        """Update the bars from an engine event."""
        p = self.progress
        if isinstance(event, RunStarted):
            n = len(event.rows) - 1
            self.stages = p.add_task("stages", total=n, completed=event.start_row, info=f"on {event.device}")
        elif isinstance(event, StageStarted):
            if self.steps is not None:
                p.remove_task(self.steps)
            self.steps = p.add_task(f"  {event.label}", total=event.n_steps, info="")
        elif isinstance(event, StepLogged) and self.steps is not None:
            p.update(self.steps, completed=event.step, info=f"loss {event.loss:.3f} · {event.throughput:.0f} img/s")
        elif isinstance(event, TaskEvaluated):
            p.console.print(f"  [dim]{event.row_label}[/] {event.task}: acc {fmt_pct(event.accuracy)}%", highlight=False)
        elif isinstance(event, StageFinished) and self.stages is not None and event.stage:
            p.update(self.stages, completed=event.stage)
        elif isinstance(event, LogLine):
            p.console.print(f"[dim]{event.message}[/]", highlight=False)


class AfterStart:
    """Forwards events to ``sink`` once the run has started (tasks loaded, model built), never the final status.

    A run that stops on bad input before it starts then prints nothing but the CLI's one-line error.
    """

    def __init__(self, sink: Callable[[Event], None]) -> None:
        self.sink = sink
        self.started = False

    def __call__(self, event: Event) -> None:
        """Forward the event if the run has started."""
        if isinstance(event, RunStarted):
            self.started = True
        if self.started and not isinstance(event, RunFinished):
            self.sink(event)


def matrix_table(detail: dict[str, Any], title: str | None = None) -> Table:
    """The accuracy matrix of a run (``Store.detail``) as a rich table, held-out columns marked ``*``."""
    t = Table(title=title, show_edge=False, pad_edge=False)
    t.add_column("after \\ on", style="bold")
    for c in detail["columns"]:
        t.add_column(c + ("*" if c in detail["heldout"] else ""), justify="right")
    for label, row in zip(detail["rows"], detail["matrix"]):
        t.add_row(label, *(fmt_pct(v) for v in row))
    return t


def metrics_table(metrics: dict[str, float | None]) -> Table:
    """Metrics of a run as a two-column rich table (accuracies in %)."""
    t = Table(show_header=False, show_edge=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    for k, v in metrics.items():
        t.add_row(k, fmt_metric(k, v))
    return t


def stderr_console() -> Console:
    """The console for messages (stderr); honours NO_COLOR."""
    return Console(stderr=True, highlight=False)


def is_terminal() -> bool:
    """Whether stderr is an interactive terminal."""
    return sys.stderr.isatty()
