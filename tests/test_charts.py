"""The run detail's charts: the series they draw (loss per stage and components, accuracy per task) and the drawing."""

from __future__ import annotations

import re

import pytest
from textual.app import App, ComposeResult

from medtui.tui.widgets.charts import MAX_POINTS, AccuracyChart, LossChart, accuracy_series, loss_series, thin

STEPS = [
    {"stage": 1, "step": 5, "n_steps": 10, "loss": 0.9, "components": '{"ce": 0.8, "kd": 0.1}'},
    {"stage": 1, "step": 10, "n_steps": 10, "loss": 0.7, "components": '{"ce": 0.6, "kd": 0.1}'},
    {"stage": 2, "step": 4, "n_steps": 8, "loss": 1.2, "components": {"ce": 1.0, "kd": 0.2}},
    {"stage": 2, "step": 8, "n_steps": 8, "loss": 0.5, "components": None},
]
DETAIL = {
    "rows": ["zero-shot", "after synth-cxr-a", "after synth-derm"],
    "columns": ["synth-cxr-a", "synth-derm", "synth-blood"],
    "heldout": ["synth-blood"],
    "matrix": [[0.5, 0.5, 0.4], [0.9, 0.45, None], [0.55, 0.95, 0.42]],
}


def test_loss_series_puts_stages_side_by_side_with_components() -> None:
    series = loss_series(STEPS)
    # stage 2's steps follow stage 1's 10 steps on the x axis; components span the stages
    assert series == [
        ("stage 1", [5.0, 10.0], [0.9, 0.7]),
        ("stage 2", [14.0, 18.0], [1.2, 0.5]),
        ("ce", [5.0, 10.0, 14.0], [0.8, 0.6, 1.0]),
        ("kd", [5.0, 10.0, 14.0], [0.1, 0.1, 0.2]),
    ]
    assert loss_series([{"stage": 1, "step": 1, "n_steps": 2, "loss": 0.3}]) == [("stage 1", [1.0], [0.3])]


def test_accuracy_series_follow_each_task_across_evaluation_points() -> None:
    ticks, series = accuracy_series(DETAIL)
    assert ticks == ["zs", "1", "2"]
    assert series == [
        ("cxr-a", [0.0, 1.0, 2.0], [50.0, 90.0, 55.0]),  # learned, then forgotten: the line falls
        ("derm", [0.0, 1.0, 2.0], [50.0, 45.0, 95.0]),
        ("blood*", [0.0, 2.0], [40.0, 42.0]),  # not evaluated at point 1: skipped, not zero
    ]


def test_thin_keeps_at_most_max_points_and_the_last() -> None:
    xs = list(map(float, range(5000)))
    tx, ty = thin(xs, xs)
    assert len(tx) == MAX_POINTS and tx[0] == 0.0 and tx[-1] == 4999.0 and tx == ty


class Charts(App):
    def compose(self) -> ComposeResult:
        yield LossChart(id="loss")
        yield AccuracyChart(id="acc")


@pytest.mark.anyio
async def test_charts_draw_axes_ticks_and_legends_at_80x24() -> None:
    app = Charts()
    async with app.run_test(size=(80, 24)) as pilot:
        loss, acc = app.query_one(LossChart), app.query_one(AccuracyChart)
        assert loss.show_steps(STEPS) and acc.show_detail(DETAIL)
        assert not acc.show_detail(DETAIL)  # the same data: no redraw
        await pilot.pause()
        loss_text, acc_text = loss.plt.build(), acc.plt.build()
    plain = lambda s: re.sub(r"\x1b\[[0-9;]*m", "", s)  # noqa: E731
    loss_text, acc_text = plain(loss_text), plain(acc_text)
    for label in ("stage 1", "stage 2", "ce", "kd"):
        assert label in loss_text
    assert "┌" in loss_text and "┤" in loss_text and "step" in loss_text and "1.2" in loss_text
    for label in ("cxr-a", "derm", "blood*", "100", "zs"):
        assert label in acc_text
    assert max(map(len, acc_text.splitlines())) <= 80
