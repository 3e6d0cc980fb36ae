"""The whole journey in the app: build and launch two real background runs, watch them finish and
their matrices appear, then compare them and export the comparison."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest

from medtui.config import RunConfig
from medtui.format import fmt_pct
from medtui.store.compare import compare, to_markdown
from medtui.store.store import Store
from medtui.tui.app import make_app
from medtui.tui.screens.compare import CompareScreen
from medtui.tui.screens.detail import RunDetailScreen
from medtui.tui.screens.new import NewExperimentScreen
from medtui.tui.screens.runs import RunsScreen
from medtui.tui.widgets.matrix import MatrixTable

pytestmark = pytest.mark.anyio

CONFIG = RunConfig(
    tasks=("synth-cxr-a", "synth-derm"), epochs=1, batch_size=32, max_train=64, max_test=32, device="cpu", name="plain"
)


async def until(cond: Callable[[], bool], what: str, timeout: float = 150.0, app=None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            seen = ""
            if app is not None:  # what the app shows instead: its screen, the form's verdict, its notices
                screen = app.screen
                seen = (f"; screen {type(screen).__name__}, error {getattr(screen, 'error', None)!r}, "
                        f"starting {getattr(screen, 'starting', None)!r}, "
                        f"notices {[n.message for n in app._notifications]!r}")
            raise AssertionError(f"timed out waiting for {what}{seen}")
        await asyncio.sleep(0.1)


async def launch_and_watch(app, pilot, config: RunConfig, db: Path) -> int:  # noqa: ANN001
    app.open_new(config)
    await until(lambda: isinstance(app.screen, NewExperimentScreen) and app.screen.resolved is not None, "a valid form")
    await pilot.press("f5")
    await until(lambda: isinstance(app.screen, RunDetailScreen), "the run's detail screen", app=app)
    screen = app.screen
    run_id = screen.run_id

    def shown_finished() -> bool:
        d = screen.state.detail
        return d is not None and d["status"] == "finished" and all(v is not None for r in d["matrix"] for v in r)

    await until(shown_finished, f"run {run_id} to finish on screen")
    await pilot.pause(0.5)
    with Store(db) as s:
        stored = s.detail(run_id)
    assert stored["status"] == "finished" and stored["pid"] is None
    table = screen.query_one(MatrixTable)
    cells = [[table.get_cell(f"r{i}", f"c{j}").plain.strip() for j in range(len(stored["columns"]))] for i in range(len(stored["rows"]))]
    assert cells == [[fmt_pct(v) for v in row] for row in stored["matrix"]]
    await pilot.press("escape")
    await until(lambda: isinstance(app.screen, RunsScreen), "the runs list")
    return run_id


async def test_build_launch_watch_compare_export(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    app = make_app(db, refresh_s=0.3)
    async with app.run_test(size=(100, 32)) as pilot:
        await until(lambda: isinstance(app.screen, RunsScreen), "the runs list")
        first = await launch_and_watch(app, pilot, CONFIG, db)
        second = await launch_and_watch(app, pilot, replace(CONFIG, buffer_size=20, name="replay"), db)
        runs = app.screen
        table = runs.query_one("#runs-table")
        await until(lambda: len(table.order) == 2 and all(runs.runs[i]["status"] == "finished" for i in (first, second)), "both runs listed")
        table.cursor = 0
        await pilot.press("space", "space", "c")
        await until(lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None, "the comparison")
        compare_screen = app.screen
        assert [r["id"] for r in compare_screen.comparison.runs] == sorted([first, second])
        await pilot.press("m")
        await until(lambda: bool(compare_screen.exported), "the Markdown export")
        path = compare_screen.exported[-1]
        with Store(db) as s:
            assert path.read_text() == to_markdown(compare(s, sorted([first, second])))
        assert "| buffer_size | 0 | 20 |" in path.read_text()
