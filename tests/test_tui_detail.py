"""The run detail screen on a seeded store: matrix and metrics as stored, live updates, keys, unknown ids."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, RichLog, Static, TabbedContent

from medtui.config import RunConfig, resolve
from medtui.events import LogLine, RunStarted, StageStarted, StepLogged, TaskEvaluated
from medtui.format import fmt_metric, fmt_pct
from medtui.metrics import METRIC_NAMES
from medtui.store.sink import StoreSink
from medtui.store.store import Store
from helpers import new_app, until
from medtui.tui.screens import detail as detail_mod
from medtui.tui.screens.detail import RunDetailScreen
from medtui.tui.screens.runs import RunsScreen
from medtui.tui.widgets.charts import LossChart
from medtui.tui.widgets.matrix import MatrixTable

SIZE = (80, 24)
pytestmark = pytest.mark.anyio










async def open_detail(pilot: Pilot, run_id: int) -> RunDetailScreen:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")
    app.open_run(run_id)
    await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and (app.screen.updates or app.screen.missing), what="a first read")
    return app.screen


def matrix_texts(screen: RunDetailScreen) -> list[list[str]]:
    table = screen.query_one("#detail-matrix", MatrixTable)
    return [[table.get_cell(f"r{i}", f"c{j}").plain.strip() for j in range(len(table.columns) - 1)] for i in range(table.row_count)]


def expected_texts(matrix: list[list[float | None]]) -> list[list[str]]:
    return [["·" if v is None else fmt_pct(v) for v in row] for row in matrix]


def log_text(screen: RunDetailScreen) -> str:
    return "\n".join(strip.text for strip in screen.query_one("#detail-log", RichLog).lines)


async def test_matrix_metrics_buffer_and_config_match_the_store(store_path: Path) -> None:
    stored = {rid: Store(store_path).detail(rid) for rid in (1, 2)}
    app = new_app(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, 2)
        d = stored[2]
        assert matrix_texts(screen) == expected_texts(d["matrix"])
        assert all(v is not None for row in d["matrix"] for v in row)  # the comparison above covers real numbers
        table = screen.query_one("#detail-matrix", MatrixTable)
        labels = [c.label.plain.strip() for c in table.ordered_columns[1:]]
        # short labels (the full names in the legend), so that five tasks fit 80 columns; held-out marked
        assert labels == ["cxr-a", "cxr-b", "derm", "blood*"]
        legend = str(screen.query_one("#detail-matrix-legend", Static).render())
        assert "zs = zero-shot" in legend and "cxr-a = synth-cxr-a" in legend and "* held-out" in legend
        rows = [table.get_cell(f"r{i}", "label").plain.strip() for i in range(table.row_count)]
        assert rows == ["zs", "1 cxr-a", "2 cxr-b", "3 derm"]

        metrics = screen.query_one("#detail-metrics", DataTable)
        names = list(METRIC_NAMES["continual"])
        assert [str(k.value) for k in metrics.rows] == names
        shown = {n: metrics.get_cell(n, "value").plain for n in names}
        assert shown == {n: fmt_metric(n, d["metrics"][n]) for n in names}
        assert shown["bwt"].startswith("-") and shown["forgetting"] == fmt_metric("forgetting", d["metrics"]["forgetting"])
        assert "Backward transfer" in metrics.get_cell("bwt", "help").plain

        header = str(screen.query_one("#detail-header", Static).render())
        assert "#2" in header and "demo-2" in header and "finished" in header and "cpu" in header
        progress = str(screen.query_one("#detail-progress", Static).render())
        assert "3/3 stages done" in progress

        config = screen.query_one("#detail-config", DataTable)
        assert config.get_cell("buffer_size", "value") == "0"
        assert config.get_cell("heldout", "value") == "synth-blood"

        await pilot.press("3")
        assert screen.query_one("#detail-tabs", TabbedContent).active == "buffer"
        summary = str(screen.query_one("#detail-buffer-summary", Static).render())
        assert "nothing is replayed" in summary  # demo-2 has no buffer

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs")

        screen = await open_detail(pilot, 1)
        assert matrix_texts(screen) == expected_texts(stored[1]["matrix"])
        buffer = screen.query_one("#detail-buffer", DataTable)
        per_task = stored[1]["buffer"]["per_task"]
        assert per_task and [str(k.value) for k in buffer.rows] == list(per_task)
        assert [buffer.get_cell(t, "samples").plain for t in per_task] == [str(n) for n in per_task.values()]
        assert buffer.get_cell("synth-cxr-a", "per class") == " ".join(map(str, stored[1]["buffer"]["per_class"]["synth-cxr-a"]))
        assert sum(len(xs) for _, xs, _ in screen.query_one("#detail-loss", LossChart).series) == len(Store(store_path).steps(1))


async def test_tabs_switch_with_number_and_arrow_keys(store_path: Path) -> None:
    app = new_app(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, 3)
        tabs = screen.query_one("#detail-tabs", TabbedContent)
        assert tabs.active == "matrix"
        seen = []
        for key in ("right", "left", "left", "right", "3", "5"):
            await pilot.press(key)
            seen.append(tabs.active)
        assert seen == ["training", "matrix", "log", "matrix", "buffer", "log"]  # the arrows wrap around
        # every key is listed for ? and the palette
        assert all(b.description for b in RunDetailScreen.BINDINGS)
        await pilot.press("backspace")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs")


async def test_live_run_fills_cells_steps_and_log(store_path: Path) -> None:
    cfg = resolve(replace(RunConfig(), name="live", tasks=("synth-cxr-a", "synth-derm"), paradigm="continual", buffer_size=20))
    store = Store(store_path)
    now = time.time()
    # a fresh heartbeat: the runs list's reconcile must not mark it dead while the test runs
    rid = store.create_run(cfg, status="running", started_at=now, heartbeat_at=now, host="test", device="cpu")
    sink = StoreSink(store, rid)
    sink(RunStarted(["zero-shot", "after synth-cxr-a", "after synth-derm"], list(cfg.columns), [], "cpu", "random", {}, 10, 10))
    sink(TaskEvaluated(0, "zero-shot", "synth-cxr-a", 0.5, 0.5, [0.5, 0.5], 10))
    sink(StageStarted(1, "after synth-cxr-a", ["synth-cxr-a"], 40, 100))
    sink(StepLogged(1, 10, 40, 1, 0.9, 1e-3, 300.0))
    app = new_app(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, rid)
        assert matrix_texts(screen) == [["50.0", "·"], ["·", "·"], ["·", "·"]]
        progress = str(screen.query_one("#detail-progress", Static).render())
        assert "stage 1/2" in progress and "step 10/40" in progress and "loss 0.900" in progress and "300 img/s" in progress
        assert screen.query_one("#detail-loss", LossChart).series == [("stage 1", [10.0], [0.9])]
        await pilot.press("5")
        await until(pilot, lambda: "stage 1: after synth-cxr-a" in log_text(screen), what="the first log lines")
        lines_before = len(screen.query_one("#detail-log", RichLog).lines)

        # the worker writes more while the screen is open
        sink(StepLogged(1, 20, 40, 1, 0.7, 1e-3, 310.0))
        sink(TaskEvaluated(1, "after synth-cxr-a", "synth-cxr-a", 0.875, 0.9, [0.8, 0.95], 10))
        sink(LogLine("warning", "hello from the test"))
        await until(pilot, lambda: matrix_texts(screen)[1][0] == "87.5", what="the new cell")
        await until(pilot, lambda: "hello from the test" in log_text(screen), what="the new log line")
        assert screen.query_one("#detail-loss", LossChart).series == [("stage 1", [10.0, 20.0], [0.9, 0.7])]
        assert "step 20/40" in str(screen.query_one("#detail-progress", Static).render())
        # appended, not re-read: every earlier line is still there exactly once
        text = log_text(screen)
        assert text.count("stage 1: after synth-cxr-a") == 1
        assert len(screen.query_one("#detail-log", RichLog).lines) == lines_before + 1
        metrics = screen.query_one("#detail-metrics", DataTable)
        assert metrics.get_cell("last", "value").plain == fmt_metric("last", Store(store_path).detail(rid)["metrics"]["last"])

        # x asks the run to stop (the store's flag; this run has no process to signal)
        await pilot.press("x")
        await until(pilot, lambda: Store(store_path).cancel_requested(rid), what="the cancel request")
        await until(pilot, lambda: any("cancel requested" in n.message for n in app._notifications), what="the notification")
    store.close()


async def test_settled_run_polls_slowly_but_still_sees_changes(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detail_mod, "IDLE_EVERY", 3)
    app = new_app(store_path, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, 1)
        await until(pilot, lambda: screen._settled, what="the run to settle")
        reads, ticks = screen.updates, screen._ticks
        await until(pilot, lambda: screen._ticks >= ticks + 6, what="six ticks")
        assert screen.updates - reads <= 3  # one read per IDLE_EVERY ticks, not one per tick
        Store(store_path).log(1, "a note added after the run finished")
        await pilot.press("5")
        await until(pilot, lambda: "a note added after the run finished" in log_text(screen), what="the late log line")
        # r on a finished run says why it cannot resume, and the screen stays
        await pilot.press("r")
        await until(pilot, lambda: any("already finished" in n.message for n in app._notifications), what="the resume refusal")
        assert isinstance(app.screen, RunDetailScreen)


async def test_unknown_run_id_is_a_message_not_a_crash(store_path: Path) -> None:
    app = new_app(store_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, 999)
        assert screen.missing and "999" in screen.missing
        assert "not found" in str(screen.query_one("#detail-header", Static).render())
        assert "esc" in str(screen.query_one("#detail-progress", Static).render())
        assert not screen.query_one("#detail-tabs").display
        await pilot.press("x", "1", "right")  # nothing to act on: no crash
        await pilot.pause(0.1)
        assert app.is_running and app.screen is screen
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs")
