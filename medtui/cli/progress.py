"""A foreground run on the terminal: what it will do, live progress with an ETA, and where the result is.

On a terminal the progress is two bars (stages, steps) on stderr; otherwise plain timestamped lines.
Both show the ETA of :mod:`medtui.eta`. Messages go to stderr; stdout keeps only the data (the run
id, or the run as JSON).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from medtui.cli.tables import console
from medtui.eta import ProgressTracker, fmt_eta
from medtui.events import Event, LogLine, RunFinished, RunStarted, StageFinished, StageStarted, StepLogged, TaskEvaluated
from medtui.format import fmt_duration, fmt_pct


class ElapsedColumn(ProgressColumn):
    """Time since a bar started, in the one duration format (``3m05s``)."""

    def render(self, task: Task) -> Text:
        """The elapsed time of ``task``."""
        return Text(fmt_duration(task.elapsed or 0), style="progress.elapsed")


def _n(k: int, word: str) -> str:
    return f"{k:,} {word}{'s' * (k != 1)}"


def plan_intro(run_id: int, config: dict[str, Any]) -> str:
    """What the run will do, from its config: ``run 3: continual, 5 stages · tasks … · medtui-tiny (random) · device auto``."""
    from medtui.config import from_mapping, stage_labels

    cfg = from_mapping(config, origin=f"run {run_id}")
    n = len(stage_labels(cfg))
    method = f" {cfg.paradigm}" + (f" with a {cfg.buffer_size}-sample buffer" if cfg.buffer_size else "")
    parts = [
        f"run {run_id}:{method}, {_n(n, 'stage')} of {_n(cfg.epochs, 'epoch')} (batch {cfg.batch_size})",
        "tasks " + " → ".join(cfg.tasks) + (f" · held out {', '.join(cfg.heldout)}" if cfg.heldout else ""),
        f"model {cfg.model} ({cfg.pretrained or 'random init'}) · tune {cfg.tune} · device {cfg.device}"
        + (f" · amp {cfg.amp}" if cfg.amp != "auto" else ""),
    ]
    return "\n".join(parts)


def plan_details(event: RunStarted) -> list[str]:
    """Once the tasks are loaded: the device and images per stage and per evaluation (from the run's plan)."""
    plan = event.plan or {}
    epochs = int(plan.get("epochs") or 1)
    lines = [f"on {event.device} · weights {event.weights} · {event.n_trainable:,} of {event.n_params:,} parameters trained"]
    for i, (label, st) in enumerate(zip(event.rows[1:], plan.get("stages") or []), start=1):
        replay = st["images"] - st["samples"] * epochs
        more = f" + {replay:,} replayed" if replay > 0 else ""
        lines.append(f"  stage {i} ({label}): {_n(st['samples'], 'image')} × {_n(epochs, 'epoch')}{more} · {_n(st['steps'], 'step')}")
    if event.plan.get("eval_images"):
        lines.append(f"  each of {_n(len(event.rows) - event.start_row, 'evaluation')}: {_n(plan['eval_images'], 'test image')}")
    if event.start_row:
        lines.append(f"  resuming after stage {event.start_row}")
    return lines


def outro(detail: dict[str, Any], db: Path) -> list[str]:
    """Where the result is and what to type next."""
    rid, took = detail["id"], fmt_duration(_took(detail))
    return [
        f"run {rid} {detail['status']} in {took} · stored in {db.resolve()}",
        f"next: `medtui show {rid}` for the details, `medtui` for the app (charts, compare)",
    ]


def _took(d: dict[str, Any]) -> float | None:
    if d.get("started_at") and d.get("finished_at"):
        return d["finished_at"] - d["started_at"]
    return None


class RichProgress:
    """An event sink drawing a stage bar (with the run's ETA) and a step bar on stderr."""

    def __init__(self, console: Console, intro: str = "") -> None:
        self.console = console
        self.intro = intro
        self.tracker = ProgressTracker()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            ElapsedColumn(),
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

    def _eta(self) -> None:
        if self.stages is not None:
            self.progress.update(self.stages, info=fmt_eta(self.tracker.eta()))

    def __call__(self, event: Event) -> None:
        """Update the bars from an engine event."""
        self.tracker(event)
        p = self.progress
        if isinstance(event, RunStarted):
            for line in [*self.intro.splitlines(), *plan_details(event)]:
                p.console.print(line, highlight=False, markup=False)
            n = len(event.rows) - 1
            self.stages = p.add_task("stages", total=n, completed=event.start_row, info=fmt_eta(None))
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
        self._eta()


class PlainProgress:
    """Timestamped lines (not a terminal): the run log's lines, with the ETA on progress lines."""

    def __init__(self, stream: TextIO, intro: str = "") -> None:
        self.stream = stream
        self.intro = intro
        self.tracker = ProgressTracker()

    def __call__(self, event: Event) -> None:
        """Write the line of an event (and the plan once the run has started)."""
        from medtui.jobs.worker import format_event

        self.tracker(event)
        if isinstance(event, RunStarted) and self.intro:
            self.stream.write(self.intro + "\n")
        lines = plan_details(event) if isinstance(event, RunStarted) else []
        line = format_event(event)
        if line and isinstance(event, (StepLogged, StageFinished)):
            line += f" · {fmt_eta(self.tracker.eta())}"
        lines += [line] if line else []
        stamp = time.strftime("%H:%M:%S")
        for ln in lines:
            self.stream.write(f"{stamp} {ln}\n")
        self.stream.flush()


class AfterStart:
    """Forwards events to ``sink`` once the run has started (tasks loaded, model built), never the final status.

    A run that stops on bad input before it starts then prints nothing but the CLI's one-line error
    (which is why the plan of the run is said only once it has started).
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


def stderr_console() -> Console:
    """The console for messages (stderr); plain text under NO_COLOR."""
    return console(stderr=True)


def is_terminal() -> bool:
    """Whether stderr is an interactive terminal."""
    return sys.stderr.isatty()
