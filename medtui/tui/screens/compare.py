"""The Compare screen: config differences, metrics with deltas vs the baseline, each run's matrix; exports.

The first run given is the baseline. Reading and exporting happen in thread
workers (:func:`medtui.store.compare.compare` opens its own connection there);
exports go next to the store as ``compare-<id1>-<id2>….<ext>``, written by the
same exporters as ``medtui compare``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from medtui.metrics import METRIC_HELP
from medtui.store.compare import EXPORTERS, EXTENSIONS, Comparison, arrow, compare, metric_cell
from medtui.tui.screens.runs import STATUS_STYLE
from medtui.tui.widgets.matrix import MatrixTable, matrix_legend


class ComparisonLoaded(Message):
    """A worker read the runs to compare (``error`` says why not, e.g. an unknown id)."""

    def __init__(self, comparison: Comparison | None, error: str | None = None) -> None:
        super().__init__()
        self.comparison = comparison
        self.error = error


class ComparisonExported(Message):
    """A worker wrote an export (``path``) or failed to (``error``)."""

    def __init__(self, fmt: str, path: Path | None, error: str | None = None) -> None:
        super().__init__()
        self.fmt = fmt
        self.path = path
        self.error = error


def export_path(folder: Path, run_ids: list[int], fmt: str) -> Path:
    """``folder/compare-1-2-3.md`` for the runs ``[1, 2, 3]`` exported as ``fmt``."""
    return folder / f"compare-{'-'.join(map(str, run_ids))}.{EXTENSIONS[fmt]}"


def config_value(v: Any) -> str:
    """A config value in one cell: lists joined with commas, ``—`` for None."""
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "—"
    return "—" if v is None else str(v)


def metric_text(c: Comparison, name: str, i: int) -> Text:
    """``64.0 (−7.3 ↓)``: green when better than the baseline, red when worse."""
    d = c.delta(name, i)
    style = {"↑": "green", "↓": "red"}.get(arrow(name, d), "")
    return Text(metric_cell(c, name, i), style=style, justify="right")


def _config_width(c: Comparison) -> int:
    # values wrap in columns sized so that three runs fit 80 columns (long task lists would not fit unwrapped)
    return max(14, (74 - max(map(len, c.config_diff), default=0)) // len(c.runs) - 2)


def _table(id: str) -> DataTable:
    # tables only show here; the body keeps the focus and scrolls both ways (a wide table too)
    table = DataTable(id=id, cursor_type="none", zebra_stripes=True, classes="compare-table")
    table.can_focus = False
    return table


class CompareScreen(Screen):
    """Runs side by side (the first one is the baseline)."""

    CSS_PATH = "compare.tcss"
    AUTO_FOCUS = "#compare-body"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("m", "export('markdown')", "Export md"),
        Binding("l", "export('latex')", "Export tex"),
        Binding("v", "export('csv')", "Export csv"),
        Binding("j", "export('json')", "Export json", show=False),
        Binding("g", "reload", "Reload", show=False),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = [int(i) for i in run_ids]
        self.comparison: Comparison | None = None
        self.error: str | None = None
        #: paths written by exports, last one last (tests wait on it)
        self.exported: list[Path] = []

    def compose(self) -> ComposeResult:
        """Title line, the scrolling body (filled once the runs are read), the footer."""
        ids = ", ".join(f"#{i}" for i in self.run_ids)
        yield Static(Text.assemble(("Compare ", "bold"), f"{ids} · loading…"), id="compare-title")
        with VerticalScroll(id="compare-body"):
            yield Static("Reading the runs…", id="compare-status")
        yield Footer()

    def on_mount(self) -> None:
        """Read the runs."""
        self.load()

    # -- reading ------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="compare-read")
    def load(self) -> None:
        """Read the runs to compare in a thread."""
        from medtui.errors import MedtuiError

        try:
            with self.app.reader.store() as store:
                c = compare(store, self.run_ids)
        except Exception as e:  # an unknown id (MedtuiError), or a busy or broken store: a message, not a crash
            self.post_message(ComparisonLoaded(None, str(e) if isinstance(e, MedtuiError) else f"{type(e).__name__}: {e}"))
            return
        self.post_message(ComparisonLoaded(c))

    @on(ComparisonLoaded)
    async def show_comparison(self, message: ComparisonLoaded) -> None:
        """Lay out the sections: config differences, metrics, matrices."""
        body = self.query_one("#compare-body", VerticalScroll)
        await body.remove_children()
        title = self.query_one("#compare-title", Static)
        self.comparison, self.error = message.comparison, message.error
        c = message.comparison
        if c is None:
            title.update(Text("Cannot compare", style="bold red"))
            await body.mount(Static(Text(f"{message.error}\nPress esc to go back.", style="red"), id="compare-status"))
            return
        base = c.runs[0]
        where = f"exports go next to {self.app.db_path.name}"
        title.update(Text.assemble(("Compare ", "bold"), f"{len(c.runs)} runs · baseline #{base['id']} {base['name']} · {where}"))
        await body.mount_all(self._sections(c))
        self._fill(c)

    def _sections(self, c: Comparison) -> list[Widget]:
        labels = [f"#{r['id']} {r['name']}" + (" (base)" if i == 0 else "") for i, r in enumerate(c.runs)]
        out: list[Widget] = [Static("Config differences", classes="section-title")]
        if c.config_diff:
            table = _table("compare-config")
            table.add_column("key", key="key")
            for i, label in enumerate(labels):
                table.add_column(label, key=f"r{i}", width=_config_width(c))
            out.append(table)
        else:
            out.append(Static("none: the runs share every config value", classes="compare-note"))
        if c.config_same:
            same = " · ".join(f"{k}={config_value(v)}" for k, v in c.config_same.items())
            out.append(Static(f"same in all: {same}", classes="compare-note"))
        out.append(Static("Metrics (%)  Δ vs the baseline: ↑ better, ↓ worse", classes="section-title"))
        metrics = _table("compare-metrics")
        metrics.add_column("metric", key="name")
        for i, label in enumerate(labels):
            metrics.add_column(label, key=f"r{i}")
        out.append(metrics)
        out.append(Static("", id="compare-legend", classes="compare-note"))
        for i, r in enumerate(c.runs):
            status = Text(r["status"], style=STATUS_STYLE.get(r["status"], ""))
            head = Text.assemble(f"Accuracy (%) #{r['id']} {r['name']} · {r['paradigm']} · ", status)
            out.append(Static(head, classes="section-title"))
            out.append(MatrixTable(id=f"compare-matrix-{i}", classes="compare-matrix"))
            out.append(Static(matrix_legend(r), classes="compare-note"))
        return out

    def _fill(self, c: Comparison) -> None:
        if c.config_diff:
            table = self.query_one("#compare-config", DataTable)
            width = _config_width(c)
            for key, values in c.config_diff.items():
                cells = [textwrap.wrap(config_value(v), width) or [""] for v in values]
                table.add_row(
                    Text(key, style="bold"), *(Text("\n".join(lines)) for lines in cells), key=key, height=max(map(len, cells))
                )
        metrics = self.query_one("#compare-metrics", DataTable)
        for name in c.metric_names:
            metrics.add_row(Text(name, style="bold"), *(metric_text(c, name, i) for i in range(len(c.runs))), key=name)
        legend = "\n".join(f"{n}: {METRIC_HELP[n]}" for n in c.metric_names if n in METRIC_HELP)
        self.query_one("#compare-legend", Static).update(legend)
        for i, r in enumerate(c.runs):
            matrix = self.query_one(f"#compare-matrix-{i}", MatrixTable)
            matrix.show_cursor = False
            matrix.can_focus = False
            matrix.show_detail(r)

    # -- actions ------------------------------------------------------------------------------
    def action_back(self) -> None:
        """Back to the previous screen."""
        self.app.pop_screen()

    def action_reload(self) -> None:
        """Read the runs again (e.g. while one is still training)."""
        self.load()

    def action_export(self, fmt: str) -> None:
        """Export the comparison as ``fmt`` next to the store."""
        if self.comparison is None:
            self.notify(self.error or "still reading the runs", severity="warning")
            return
        self.export(fmt)

    @work(thread=True, group="compare-export")
    def export(self, fmt: str) -> None:
        """Re-read the runs and write the export in a thread (what is written is what the store holds now)."""
        path = export_path(self.app.db_path.parent, self.run_ids, fmt)
        try:
            with self.app.reader.store() as store:
                text = EXPORTERS[fmt](compare(store, self.run_ids))
            path.write_text(text, encoding="utf-8")
        except Exception as e:  # an unwritable folder or a vanished run: say so, keep the screen
            self.post_message(ComparisonExported(fmt, None, f"{type(e).__name__}: {e}"))
            return
        self.post_message(ComparisonExported(fmt, path))

    @on(ComparisonExported)
    def _exported(self, message: ComparisonExported) -> None:
        if message.path is None:
            self.notify(f"{message.fmt} export failed: {message.error}", severity="error")
            return
        self.exported.append(message.path)
        self.notify(f"wrote {message.path}", title=f"{message.fmt} export")
