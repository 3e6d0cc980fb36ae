"""The Compare screen on a seeded store: config differences, metrics with deltas, matrices, exports, bad ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from medtui.format import fmt_pct
from medtui.store.compare import EXPORTERS, compare, metric_cell
from medtui.store.store import Store
from helpers import new_app, until
from medtui.tui.screens.compare import CompareScreen
from medtui.tui.screens.runs import RunsScreen
from medtui.tui.widgets.matrix import MatrixTable

SIZE = (80, 24)
pytestmark = pytest.mark.anyio










async def open_compare(pilot: Pilot, ids: list[int]) -> CompareScreen:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")
    app.open_compare(ids)
    await until(pilot, lambda: isinstance(app.screen, CompareScreen) and (app.screen.comparison or app.screen.error), what="the runs read")
    await pilot.pause()
    return app.screen


async def test_sections_show_what_the_store_holds(store_path: Path) -> None:
    ids = [2, 1, 3]  # baseline first, whatever the id order
    with Store(store_path) as s:
        expected = compare(s, ids)
    app = new_app(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, ids)
        title = str(screen.query_one("#compare-title", Static).render())
        assert "baseline #2 demo-2" in title

        config = screen.query_one("#compare-config", DataTable)
        assert [str(k.value) for k in config.rows] == list(expected.config_diff)
        assert {"buffer_size", "paradigm", "seed"} <= set(expected.config_diff)
        assert [config.get_cell("buffer_size", f"r{i}").plain for i in range(3)] == ["0", "500", "0"]
        assert [config.get_cell("paradigm", f"r{i}").plain for i in range(3)] == ["continual", "continual", "joint"]
        assert [c.label.plain for c in config.ordered_columns] == ["key", "#2 demo-2 (base)", "#1 demo-1", "#3 demo-3"]

        metrics = screen.query_one("#compare-metrics", DataTable)
        assert [str(k.value) for k in metrics.rows] == expected.metric_names
        for name in expected.metric_names:
            assert [metrics.get_cell(name, f"r{i}").plain for i in range(3)] == [metric_cell(expected, name, i) for i in range(3)]
        # run 1 forgets less than the baseline: an improvement even though the number is lower
        assert metrics.get_cell("forgetting", "r1").plain.endswith("↑)")
        assert metrics.get_cell("forgetting", "r1").style == "green"
        assert metrics.get_cell("bwt", "r0").plain == fmt_pct(expected.runs[0]["metrics"]["bwt"])

        for i, run in enumerate(expected.runs):
            table = screen.query_one(f"#compare-matrix-{i}", MatrixTable)
            cells = [[table.get_cell(f"r{r}", f"c{c}").plain.strip() for c in range(len(run["columns"]))] for r in range(len(run["rows"]))]
            assert cells == [[fmt_pct(v) for v in row] for row in run["matrix"]]
        assert screen.query_one("#compare-matrix-0", MatrixTable).ordered_columns[-1].label.plain.strip() == "blood*"

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs")


async def test_exports_write_what_the_exporters_write(store_path: Path) -> None:
    ids = [1, 2, 3]
    with Store(store_path) as s:
        expected = compare(s, ids)
    app = new_app(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, ids)
        for key, fmt, ext in (("m", "markdown", "md"), ("l", "latex", "tex"), ("v", "csv", "csv"), ("j", "json", "json")):
            path = store_path.parent / f"compare-1-2-3.{ext}"
            assert not path.exists()
            await pilot.press(key)
            await until(pilot, lambda: path in screen.exported, what=f"the {fmt} export")
            assert path.read_text(encoding="utf-8") == EXPORTERS[fmt](expected)
            await until(pilot, lambda: any(str(path) in n.message for n in app._notifications), what="the path in a notification")
        assert "\\begin{tabular}" in (store_path.parent / "compare-1-2-3.tex").read_text(encoding="utf-8")


async def test_unknown_run_id_is_a_message_and_exports_nothing(store_path: Path) -> None:
    app = new_app(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, [1, 999])
        assert screen.comparison is None and screen.error and "999" in screen.error
        assert "Cannot compare" in str(screen.query_one("#compare-title", Static).render())
        assert "999" in str(screen.query_one("#compare-status", Static).render())
        await pilot.press("m")
        await until(pilot, lambda: any("999" in n.message for n in app._notifications), what="the warning")
        assert not list(store_path.parent.glob("compare-*"))
        await pilot.press("backspace")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs")
