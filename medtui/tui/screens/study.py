"""The Study screen: a study's cells (mean ± std, live as runs finish), a chart of a metric, the selected cell's matrix.

The cell table has one row per cell; the chart plots the chosen metric against the chosen
numeric axis (buffer size by default) with ± std error bars, one line per paradigm/method
(cells without that axis are horizontal reference lines), or one bar per cell when the study
has no numeric axis; the heat map is the selected cell's mean accuracy matrix. A thread
worker aggregates the study on a timer (:func:`medtui.study.aggregate.aggregate`); the
handler redraws only what changed.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from medtui.study.aggregate import aggregate
from medtui.study.export import fmt_stat, n_text
from medtui.study.series import bars, numeric_axes, series
from medtui.study.ingest import ingest_all
from medtui.study.store import list_studies
from medtui.tui.widgets.matrix import MatrixTable

#: Metric columns of the cell table (the chart cycles through every metric the study has).
TABLE_METRICS = ("last", "bwt", "forgetting", "in_domain")


class StudyLoaded(Message):
    """A worker aggregated the study (``error`` says why not: no study yet, an unknown one)."""

    def __init__(self, result: dict[str, Any] | None, studies: list[dict[str, Any]], error: str | None = None) -> None:
        super().__init__()
        self.result = result
        self.studies = studies
        self.error = error


class StudyScreen(Screen):
    """One study: its cells, a metric chart and the selected cell's mean matrix."""

    CSS_PATH = "study.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "metric", "Metric"),
        Binding("a", "axis", "Axis"),
        Binding("right_square_bracket", "study(1)", "Next study", key_display="]"),
        Binding("left_square_bracket", "study(-1)", "Previous study", key_display="[", show=False),
        Binding("c", "compare", "Compare cell runs"),
    ]

    def __init__(self, study: int | str | None = None) -> None:
        super().__init__()
        self.study_ref = study
        self.result: dict[str, Any] | None = None
        self.studies: list[dict[str, Any]] = []
        self.metric: str | None = None
        #: None plots one bar per cell; "auto" picks the first numeric axis on the first load
        self.axis: str | None = "auto"
        self._table_key: str | None = None
        self._chart_key: str | None = None
        self._title: tuple[str, str] | None = None
        self._sig: object = None

    def compose(self) -> ComposeResult:
        """Title, cell table, then the chart beside the heat map."""
        yield Static("study", id="study-title")
        yield DataTable(id="study-cells", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="study-bottom"):
            yield PlotextPlot(id="study-chart")
            with Vertical(id="study-matrix-pane"):
                yield Static("", id="study-matrix-title")
                yield MatrixTable(id="study-matrix")
        yield Footer()

    def on_mount(self) -> None:
        """Load now and on the app's refresh timer."""
        self._load()
        self.set_interval(self.app.refresh_s, self._load)

    @work(thread=True, exclusive=True, group="study-load")
    def _load(self) -> None:
        try:
            with self.app.reader.store() as s:
                ingest_all(s)  # results of cluster jobs, when a study runs on one
                studies = list_studies(s)
                ref = self.study_ref if self.study_ref is not None else (studies[0]["id"] if studies else None)
                if ref is None:
                    self.post_message(StudyLoaded(None, studies, "no studies yet: `medtui study run STUDY.toml` creates one"))
                    return
                # aggregate again only when a run of the study changed status or finished (progress is not shown here)
                sig = (ref, tuple(s.db.execute(
                    "select status, count(*), max(finished_at) from runs where study_id = (select id from studies where id = ? or name = ?) "
                    "group by status order by status", [ref, str(ref)])), tuple((x["id"], x["updated_at"]) for x in studies))
                if sig == self._sig and self.result is not None:
                    return
                result = aggregate(s, ref)
                self._sig = sig
        except Exception as e:  # a locked or missing store shows as a line, never a crash
            self.post_message(StudyLoaded(None, [], " ".join(str(e).split())))
            return
        self.post_message(StudyLoaded(result, studies))

    @on(StudyLoaded)
    def _loaded(self, msg: StudyLoaded) -> None:
        self.studies = msg.studies
        if msg.result is None:
            self.query_one("#study-title", Static).update(Text(msg.error or "", style="bold"))
            return
        self.result = msg.result
        self.study_ref = msg.result["id"]
        names = msg.result["metric_names"]
        if self.metric not in names:
            self.metric = next((m for m in ("last", "in_domain") if m in names), names[0] if names else None)
        axes = numeric_axes(msg.result)
        if self.axis not in (*axes, None):
            self.axis = axes[0] if axes else None
        self._show_title()
        changed = self._show_table()
        self._show_chart()
        if changed:
            self._show_matrix()

    def _show_title(self) -> None:
        r = self.result
        assert r is not None
        st = r["status"]
        done = st.get("finished", 0)
        active = ", ".join(f"{st[s]} {s}" for s in ("running", "queued", "failed", "cancelled") if st.get(s))
        pos = next((i + 1 for i, s in enumerate(self.studies) if s["id"] == r["id"]), 1)
        text = (f"  {done}/{r['planned']} finished" + (f" · {active}" if active else "")
                + f" · {len(r['cells'])} cells · {pos}/{max(1, len(self.studies))} studies")
        if (r["study"], text) != self._title:  # an unchanged title must not cost a repaint every refresh
            self._title = (r["study"], text)
            self.query_one("#study-title", Static).update(Text.assemble(("study ", "bold"), (r["study"], "bold"), text))

    def _show_table(self) -> bool:
        r = self.result
        assert r is not None
        metrics = [m for m in TABLE_METRICS if m in r["metric_names"]]
        # a cell's numbers change only when its set of finished runs does
        key = json.dumps([r["id"], r["varying"], metrics, [c["run_ids"] for c in r["cells"]], [c["planned"] for c in r["cells"]]])
        if key == self._table_key:
            return False
        self._table_key = key
        table = self.query_one("#study-cells", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        for a in r["varying"] or ["cell"]:
            table.add_column(a.replace("_", " "), key=f"a-{a}")
        table.add_column("n", key="n")
        for m in metrics:
            table.add_column(m, key=f"m-{m}")
        for i, c in enumerate(r["cells"]):
            vals = ["—" if c["values"].get(a) is None else str(c["values"][a]) for a in r["varying"]] or [c["label"]]
            n = Text(n_text(c), style="yellow" if not c["complete"] else "")
            table.add_row(*vals, n, *(Text(fmt_stat(m, c["metrics"].get(m, {})), justify="right") for m in metrics), key=str(i))
        if r["cells"]:
            table.move_cursor(row=min(max(row, 0), len(r["cells"]) - 1))
        return True

    def _show_chart(self) -> None:
        r = self.result
        if r is None or self.metric is None:
            return
        key = json.dumps([self._table_key, self.metric, self.axis])
        if key == self._chart_key:
            return
        self._chart_key = key
        chart = self.query_one("#study-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_figure()
        if self.axis is not None:
            lines, refs = series(r, self.metric, self.axis)
            for group, pts in lines.items():
                xs = [p[0] for p in pts]
                ys = [100 * p[1] for p in pts]
                plt.plot(xs, ys, marker="dot", label=group)
                plt.error(xs, ys, yerr=[100 * (p[2] or 0) for p in pts])
            span = [p[0] for v in lines.values() for p in v] or [0.0, 1.0]
            for group, (mean, _) in refs.items():
                # a reference level as a flat line across the axis, so the legend names it
                plt.plot([min(span), max(span)], [100 * mean] * 2, label=f"{group} (ref)")
            values = [100 * p[1] for v in lines.values() for p in v] + [100 * m for m, _ in refs.values()]
            if values:
                pad = max(2.0, 0.1 * (max(values) - min(values)))
                plt.ylim(max(0.0, min(values) - pad), min(100.0, max(values) + pad))
            xs_all = sorted({p[0] for v in lines.values() for p in v})
            if xs_all:
                plt.xticks(xs_all, [f"{x:g}" for x in xs_all])
            plt.xlabel(self.axis.replace("_", " "))
        else:
            bs = bars(r, self.metric)
            xs = list(range(1, len(bs) + 1))
            plt.bar(xs, [100 * b[1] for b in bs])
            plt.error(xs, [100 * b[1] for b in bs], yerr=[100 * (b[2] or 0) for b in bs])
            plt.xticks(xs, [b[0][:10] for b in bs])
        plt.title(f"{self.metric} (%) mean ± std" + (f" vs {self.axis.replace('_', ' ')}" if self.axis else ""))
        chart.refresh()

    def _cell(self) -> dict[str, Any] | None:
        if self.result is None or not self.result["cells"]:
            return None
        row = self.query_one("#study-cells", DataTable).cursor_row
        return self.result["cells"][min(max(row, 0), len(self.result["cells"]) - 1)]

    def _show_matrix(self) -> None:
        cell = self._cell()
        title = self.query_one("#study-matrix-title", Static)
        matrix = self.query_one("#study-matrix", MatrixTable)
        if cell is None or not cell["n"]:
            title.update(Text(f"{cell['label'] if cell else ''}: no finished run yet", style="dim"))
            matrix.show([], [], [], [])
            return
        title.update(Text.assemble((cell["label"], "bold"), f" · mean of {cell['n']} (%)"))
        matrix.show_detail({"rows": cell["rows"], "columns": cell["columns"], "heldout": cell["heldout"], "matrix": cell["matrix_mean"]})

    @on(DataTable.RowHighlighted, "#study-cells")
    def _row_changed(self, _: DataTable.RowHighlighted) -> None:
        self._show_matrix()

    # -- actions ------------------------------------------------------------------------------
    def action_metric(self) -> None:
        """Plot the next metric."""
        if self.result and self.result["metric_names"]:
            names = self.result["metric_names"]
            self.metric = names[(names.index(self.metric) + 1) % len(names)] if self.metric in names else names[0]
            self._show_chart()

    def action_axis(self) -> None:
        """Plot against the next numeric axis (or one bar per cell)."""
        if self.result:
            axes = [*numeric_axes(self.result), None]
            self.axis = axes[(axes.index(self.axis) + 1) % len(axes)] if self.axis in axes else axes[0]
            self._show_chart()

    def action_study(self, step: int) -> None:
        """Show the next (or previous) study."""
        if len(self.studies) < 2:
            return
        ids = [s["id"] for s in self.studies]
        cur = ids.index(self.study_ref) if self.study_ref in ids else 0
        self.study_ref = ids[(cur + step) % len(ids)]
        self._table_key = self._chart_key = None
        self._title = None
        self._sig = None
        self._load()

    def action_compare(self) -> None:
        """Compare the finished runs of the selected cell."""
        cell = self._cell()
        if cell is None or len(cell["run_ids"]) < 2:
            self.notify("This cell has fewer than two finished runs to compare.", severity="warning")
            return
        self.app.open_compare(list(cell["run_ids"]))
