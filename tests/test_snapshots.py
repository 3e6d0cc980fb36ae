"""Snapshot tests of the app at fixed terminal sizes, from a seeded store (update with --snapshot-update)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

import pytest

from medtui.store.demo import seed_demo_runs
from medtui.tui.app import make_app

NOW = 1_790_000_000.0  # a fixed clock for the seeded runs


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("MEDTUI_DATA_DIR", "data")
    db = tmp_path / "runs.db"
    seed_demo_runs(db, 4, seed=7, now=NOW)
    return db


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("the app never showed the seeded data")
        await asyncio.sleep(0.05)


def runs_loaded(app) -> bool:  # noqa: ANN001
    from medtui.tui.screens.runs import RunsScreen

    return isinstance(app.screen, RunsScreen) and len(app.screen.query_one("#runs-table").order) == 4


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
def test_runs_list(seeded: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    app = make_app(seeded, refresh_s=3600)

    async def before(pilot) -> None:  # noqa: ANN001
        await until(lambda: runs_loaded(app))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


def test_run_detail(seeded: Path, snap_compare) -> None:  # noqa: ANN001
    app = make_app(seeded, refresh_s=3600)

    async def before(pilot) -> None:  # noqa: ANN001
        await until(lambda: runs_loaded(app))
        app.open_run(2)
        await until(lambda: getattr(app.screen, "run_id", None) == 2 and app.screen.state.detail is not None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_compare(seeded: Path, snap_compare) -> None:  # noqa: ANN001
    app = make_app(seeded, refresh_s=3600)

    async def before(pilot) -> None:  # noqa: ANN001
        await until(lambda: runs_loaded(app))
        app.open_compare([1, 2])
        await until(lambda: type(app.screen).__name__ == "CompareScreen" and app.screen.comparison is not None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=before)


def test_keys_help(seeded: Path, snap_compare) -> None:  # noqa: ANN001
    app = make_app(seeded, refresh_s=3600)

    async def before(pilot) -> None:  # noqa: ANN001
        await until(lambda: runs_loaded(app))
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_new_experiment(seeded: Path, snap_compare) -> None:  # noqa: ANN001
    app = make_app(seeded, refresh_s=3600)

    async def before(pilot) -> None:  # noqa: ANN001
        await until(lambda: runs_loaded(app))
        await pilot.press("n")
        await until(lambda: type(app.screen).__name__ == "NewExperimentScreen" and app.screen.resolved is not None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_datasets(seeded: Path, snap_compare) -> None:  # noqa: ANN001
    app = make_app(seeded, refresh_s=3600)

    async def before(pilot) -> None:  # noqa: ANN001
        await until(lambda: runs_loaded(app))
        await pilot.press("d")
        await until(lambda: type(app.screen).__name__ == "DatasetsScreen" and bool(app.screen.entries))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare) -> None:  # noqa: ANN001
    from medtui.study.demo import seed_demo_study

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("medtui.jobs.queue.schedule", lambda path: [])  # the queued demo runs stay queued
    db = tmp_path / "study.db"
    seed_demo_study(db, finish=10, now=NOW)
    app = make_app(db, refresh_s=3600)

    async def before(pilot) -> None:  # noqa: ANN001
        await until(lambda: type(app.screen).__name__ == "RunsScreen")
        await pilot.press("t")
        await until(lambda: type(app.screen).__name__ == "StudyScreen" and app.screen.result is not None)
        await pilot.press("down", "down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
