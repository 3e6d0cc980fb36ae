"""Messages the app's thread workers post to their screens (one module, so that no screen defines its own copy).

Workers never touch widgets: they do the blocking work (reading the registry, decoding a
task, writing a file or the store) and post one of these; the screen's handlers own the
state. Names follow the convention: past tense for events (``TaskLoaded``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from textual.message import Message

from medtui.config import RunConfig
from medtui.data.base import TaskSpec


# -- the datasets screen ---------------------------------------------------------------------
@dataclass(frozen=True)
class TaskEntry:
    """One task of the listing: its spec and whether it loads without a download."""

    spec: TaskSpec
    available: bool


@dataclass
class TaskSummary:
    """What the screen keeps of a loaded task (not its pixels: a 224 px set is gigabytes)."""

    name: str
    counts: dict[str, list[int]]
    shape: tuple[int, int, int]
    samples: list[tuple[str, list[np.ndarray]]] = field(default_factory=list)
    seconds: float = 0.0


class TasksListed(Message):
    """A worker listed the registry's tasks for ``data_dir``."""

    def __init__(self, data_dir: Path, entries: list[TaskEntry]) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.entries = entries


class TaskLoaded(Message):
    """A worker loaded a task and summarised it."""

    def __init__(self, summary: TaskSummary) -> None:
        super().__init__()
        self.summary = summary


class TaskLoadFailed(Message):
    """A worker could not load a task; ``error`` is the registry's one-line message."""

    def __init__(self, name: str, error: str) -> None:
        super().__init__()
        self.name = name
        self.error = error


# -- the new-experiment screen ---------------------------------------------------------------
class RunCreated(Message):
    """A run was stored and launched, or queued (``started``: its worker is running)."""

    def __init__(self, run_id: int, queued: bool, started: bool) -> None:
        super().__init__()
        self.run_id, self.queued, self.started = run_id, queued, started


class ConfigLoaded(Message):
    """A TOML file was read."""

    def __init__(self, config: RunConfig, path: Path) -> None:
        super().__init__()
        self.config, self.path = config, path


class ConfigSaved(Message):
    """The form was written to a TOML file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class FormFailed(Message):
    """A file or store operation of the form failed; ``error`` is one line for the user."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


# -- the new-study dialog ---------------------------------------------------------------------
class StudyChecked(Message):
    """A worker expanded the dialog's study: ``summary`` of its runs, or ``error`` (one line); ``token`` orders replies."""

    def __init__(self, token: int, summary: str | None, error: str | None) -> None:
        super().__init__()
        self.token, self.summary, self.error = token, summary, error


class StudyCreated(Message):
    """A study's runs were stored and queued; ``note`` says how many were added, kept or started."""

    def __init__(self, study_id: int, note: str) -> None:
        super().__init__()
        self.study_id, self.note = study_id, note
