"""The Study screen: opened with t, cells live as runs finish, metric/axis switching, the selected cell's matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import finish_run, new_app, until

from medtui.store.store import Store
from medtui.study.demo import seed_demo_study

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo study's queued runs must stay queued: the app would otherwise start workers for them."""
    monkeypatch.setattr("medtui.jobs.queue.schedule", lambda path: [])


async def test_study_screen_live_and_keys(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed_demo_study(db, finish=10, now=1_790_000_000)
    app = new_app(db, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await until(pilot, lambda: type(app.screen).__name__ == "StudyScreen" and app.screen.result is not None, what="study loaded")
        screen = app.screen
        table = screen.query_one("#study-cells")
        assert table.row_count == 4
        assert screen.metric == "last" and screen.axis == "buffer_size"
        title = str(screen.query_one("#study-title").render())
        assert "demo-sweep" in title and "10/12 finished" in title
        # the last cell holds 1 of 3 runs: its n says so
        assert "1/3" in str(table.get_row_at(3)[2])
        await pilot.press("m")
        assert screen.metric != "last"
        await pilot.press("a")
        assert screen.axis is None  # one bar per cell
        await pilot.press("down")
        await pilot.pause()
        assert "continual · 0" in str(screen.query_one("#study-matrix-title").render())
        assert screen.query_one("#study-matrix").row_count == 4
        # a run finishing elsewhere shows on the next refresh
        with Store(db) as s:
            queued = [r for r in s.iter_ids(status="queued")]
            finish_run(s, queued[0], [[0.5, 0.5, 0.5], [0.9, 0.5, 0.5], [0.6, 0.9, 0.5], [0.5, 0.6, 0.9]])
        await until(pilot, lambda: "11/12 finished" in str(screen.query_one("#study-title").render()), what="live update")
        assert "2/3" in str(table.get_row_at(3)[2])
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunsScreen"


async def test_study_screen_without_studies(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store(db).close()
    app = new_app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await until(pilot, lambda: "no studies yet" in str(app.screen.query_one("#study-title").render()), what="empty note")
