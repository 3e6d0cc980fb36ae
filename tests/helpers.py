"""Helpers imported by tests (``from helpers import ...``)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from medtui.config import RunConfig, resolve

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable

    from textual.pilot import Pilot

    from medtui.tui.app import MedtuiApp


def fast_config(**overrides: object) -> RunConfig:
    """A two-task synthetic run small enough to finish in a few seconds on CPU."""
    base = RunConfig(
        tasks=("synth-cxr-a", "synth-derm"),
        epochs=1,
        batch_size=32,
        max_train=96,
        max_test=48,
        device="cpu",
        keep_checkpoints=1,
    )
    return resolve(replace(base, **overrides))


def new_app(db: "Path", refresh_s: float = 0.2) -> "MedtuiApp":
    """The app as the CLI makes it, without animations (tab underlines would slow every key press)."""
    from medtui.tui.app import make_app

    app = make_app(db, refresh_s=refresh_s)
    app.animation_level = "none"
    return app


async def until(pilot: "Pilot", cond: "Callable[[], object]", timeout: float = 5.0, what: str = "condition") -> None:
    """Let the app run in small steps until ``cond()`` holds (fail after ``timeout`` seconds)."""
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def finish_run(store: "object", run_id: int, matrix: "list[list[float]]", seconds: float = 10.0) -> None:
    """Record ``matrix`` as a run's evaluations and mark it finished, as a worker would (no training)."""
    run = store.get_run(run_id)  # type: ignore[attr-defined]
    cols = list(run["tasks"]) + list(run["heldout"])
    for i, row in enumerate(matrix):
        for j, acc in enumerate(row):
            store.record_evaluation(run_id, {"row": i, "row_label": run["rows"][i], "task": cols[j], "accuracy": acc,  # type: ignore[attr-defined]
                                             "auc": None, "per_class": [], "n": 10})
    store.update_run(run_id, status="finished", started_at=100.0, finished_at=100.0 + seconds)  # type: ignore[attr-defined]
