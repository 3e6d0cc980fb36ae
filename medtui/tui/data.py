"""How the app reads the store: short-lived connections from thread workers, and the messages they post.

Workers never touch widgets: they read, then post a message; the screen's handler
owns the state and updates only what changed. Every function here opens its own
connection, so it is safe to call from any thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from medtui.store.store import Store


@dataclass
class RunsSnapshot:
    """Runs changed since ``since`` (all of them when ``since`` is None), every id now present, and a new watermark."""

    changed: list[dict[str, Any]]
    ids: set[int]
    watermark: float
    full: bool


class StoreReader:
    """Reads for the app; each call opens and closes its own connection (thread-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def store(self) -> Store:
        """A new connection (the caller closes it)."""
        return Store(self.path)

    def runs(self, since: float | None = None, maintain: bool = True) -> RunsSnapshot:
        """Runs changed after ``since``; with ``maintain``, dead runs are marked failed and queued runs started first."""
        if maintain:
            from medtui.jobs.queue import schedule

            try:
                schedule(self.path)
            except Exception:  # a locked store or a failed spawn must not break browsing
                pass
        with self.store() as s:
            # a little overlap: an update in the same instant as the last read is not lost
            now = time.time()
            changed = s.list_runs(updated_after=None if since is None else since - 2.0)
            ids = {int(r[0]) for r in s.db.execute("select id from runs")}
        return RunsSnapshot(changed=changed, ids=ids, watermark=now, full=since is None)

    def run_update(
        self, run_id: int, after_step: int = 0, after_event: int = 0, event_limit: int | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        """One run's detail (see :meth:`Store.detail`) and its steps and log lines after the given row ids, on one connection."""
        with self.store() as s:
            return s.detail(run_id), s.steps(run_id, after_step), s.events(run_id, after_event, event_limit)


class RunsLoaded(Message):
    """A worker read the run list."""

    def __init__(self, snapshot: RunsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


@dataclass
class DetailState:
    """What the run detail screen has read so far (for incremental refreshes)."""

    detail: dict[str, Any] | None = None
    last_step_id: int = 0
    last_event_id: int = 0
    losses: list[float] = field(default_factory=list)
    #: every step row read so far (the loss chart draws them, components included)
    steps: list[dict[str, Any]] = field(default_factory=list)


class RunUpdated(Message):
    """A worker read a run's detail and the steps and log lines new since the last read."""

    def __init__(self, detail: dict[str, Any], steps: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.detail = detail
        self.steps = steps
        self.events = events
