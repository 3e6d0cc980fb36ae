"""The Runs screen: every run in the store, live; filter, sort, mark, compare, open, cancel, resume, delete."""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from medtui.format import fmt_duration, fmt_metric, run_duration
from medtui.tui.data import RunsLoaded

STATUS_STYLE = {"running": "bold cyan", "queued": "yellow", "finished": "green", "failed": "bold red", "cancelled": "magenta"}
STATUS_ICON = {"running": "▶", "queued": "…", "finished": "✓", "failed": "✗", "cancelled": "■"}


class SortText(Text):
    """A table cell that carries the value it sorts by."""

    sort_value: Any = None


def _cell(text: str, sort: Any, style: str = "", right: bool = False) -> SortText:
    t = SortText(text, style=style, justify="right" if right else "left")
    t.sort_value = sort
    return t


def _metric_cells(run: dict[str, Any]) -> list[SortText]:
    m = run.get("metrics") or {}
    last = m.get("last", m.get("in_domain"))
    out = []
    for name, value in (("last", last), ("bwt", m.get("bwt")), ("forgetting", m.get("forgetting"))):
        # missing values sort last in both directions of the natural order
        out.append(_cell(fmt_metric(name, value), (value is None, value if value is not None else 0.0), right=True))
    return out


def status_text(run: dict[str, Any]) -> str:
    """``▶ 2/5 37%`` for a running run, ``✓ finished`` and the like otherwise."""
    status = run["status"]
    p = run.get("progress") or {}
    if status == "running" and p.get("n_stages"):
        pct = int(100 * p.get("step", 0) / p["n_steps"]) if p.get("n_steps") else 0
        return f"▶ {p.get('stage', 0)}/{p['n_stages']} {pct:>2}%"
    return f"{STATUS_ICON.get(status, '?')} {status}"


COLUMNS: list[tuple[str, str]] = [
    ("mark", " "),
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("last", "last"),
    ("bwt", "bwt"),
    ("forgetting", "forget"),
    ("paradigm", "paradigm"),
    ("buffer", "buf"),
    ("tasks", "tasks"),
    ("model", "model"),
    ("started", "started"),
    ("duration", "took"),
]
SORTABLE = [k for k, _ in COLUMNS if k != "mark"]


def row_cells(run: dict[str, Any], marked: bool) -> list[SortText]:
    """The table cells of one run, in :data:`COLUMNS` order."""
    status = run["status"]
    tasks = run["tasks"] or []
    seq = "→".join(t.removeprefix("synth-") for t in tasks)
    started = run.get("started_at")
    took = run_duration(run)
    return [
        _cell("●" if marked else " ", marked, style="bold yellow"),
        _cell(str(run["id"]), run["id"], right=True),
        _cell(run["name"] or "", (run["name"] or "").lower()),
        _cell(status_text(run), status, style=STATUS_STYLE.get(status, "")),
        *_metric_cells(run),
        _cell(run["paradigm"], run["paradigm"]),
        _cell(str(run["buffer_size"] or "—"), run["buffer_size"] or 0, right=True),
        _cell(seq if len(seq) <= 28 else f"{len(tasks)} tasks: {seq[:18]}…", seq),
        _cell(run["model"], run["model"]),
        _cell(time.strftime("%m-%d %H:%M", time.localtime(started)) if started else "—", started or 0.0),
        _cell(fmt_duration(took), took or 0.0, right=True),
    ]


def matches(run: dict[str, Any], text: str) -> bool:
    """Whether a run matches a filter: every word appears in its id, name, status, paradigm, tasks or model."""
    hay = " ".join(
        [str(run["id"]), run["name"] or "", run["status"], run["paradigm"], run["model"], *(run["tasks"] or []), *(run["heldout"] or [])]
    ).lower()
    return all(word in hay for word in text.lower().split())


class RunsScreen(Screen):
    """All runs, newest first by default, refreshed every couple of seconds."""

    CSS_PATH = "runs.tcss"
    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("n", "new", "New"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse sort", show=False),
        Binding("x", "cancel_run", "Cancel"),
        Binding("r", "resume_run", "Resume"),
        Binding("delete", "delete_run", "Delete", key_display="del"),
        Binding("d", "app.datasets", "Datasets"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[int, dict[str, Any]] = {}
        self.shown: dict[int, list[str]] = {}
        self.marked: set[int] = set()
        self.filter_text = ""
        self.sort_key = "id"
        self.sort_reverse = True
        self.watermark: float | None = None
        self.loads = 0

    def compose(self) -> ComposeResult:
        """Title line, filter box (hidden until ``/``), the table, the footer."""
        with Horizontal(id="runs-top"):
            yield Static("", id="runs-title")
            yield Input(placeholder="filter: words in name, status, tasks, model…  (esc clears)", id="runs-filter")
        table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        """Start reading the store."""
        self.refresh_runs()
        self.set_interval(self.app.refresh_s, self.refresh_runs)

    # -- reading ------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="runs-read")
    def refresh_runs(self) -> None:
        """Read runs changed since the last read (all of them the first time) in a thread."""
        snapshot = self.app.reader.runs(since=self.watermark)
        self.post_message(RunsLoaded(snapshot))

    @on(RunsLoaded)
    def apply_runs(self, message: RunsLoaded) -> None:
        """Fold a read into the table: add, update and remove only what changed."""
        snap = message.snapshot
        self.watermark = snap.watermark
        self.loads += 1
        for run in snap.changed:
            self.runs[run["id"]] = run
        for gone in set(self.runs) - snap.ids:
            del self.runs[gone]
            self.marked.discard(gone)
        self._sync_table(resort=snap.full)
        self._update_title()

    def _visible(self) -> list[int]:
        return [i for i, r in self.runs.items() if not self.filter_text or matches(r, self.filter_text)]

    def _sync_table(self, resort: bool = False) -> None:
        table = self.query_one("#runs-table", DataTable)
        visible = set(self._visible())
        changed = False
        for rid in list(self.shown):
            if rid not in visible:
                table.remove_row(str(rid))
                del self.shown[rid]
                changed = True
        keys = [k for k, _ in COLUMNS]
        for rid in sorted(visible):
            cells = row_cells(self.runs[rid], rid in self.marked)
            plain = [c.plain for c in cells]
            old = self.shown.get(rid)
            if old is None:
                table.add_row(*cells, key=str(rid))
                changed = True
            elif old != plain:
                for key, cell, before, now in zip(keys, cells, old, plain):
                    if before != now:
                        table.update_cell(str(rid), key, cell)
                        changed = changed or key == self.sort_key
            self.shown[rid] = plain
        if changed or resort:
            self._sort()
        empty = self.query_one("#runs-empty", Static)
        empty.display = not self.shown
        if not self.shown:
            empty.update(
                "No runs match the filter." if self.runs else "No runs yet. Press n to set up an experiment, or run `medtui run --headless`."
            )

    def _sort(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.sort(self.sort_key, key=lambda cell: cell.sort_value, reverse=self.sort_reverse)

    def _update_title(self) -> None:
        counts: dict[str, int] = {}
        for r in self.runs.values():
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        parts = [f"{n} {s}" for s, n in sorted(counts.items())]
        arrow = "↓" if self.sort_reverse else "↑"
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        filt = f" · filter '{self.filter_text}'" if self.filter_text else ""
        title = Text.assemble(
            ("medtui", "bold"),
            f"  {self.app.db_path.name} · {len(self.runs)} runs ({', '.join(parts) or 'none'}) · sort {self.sort_key}{arrow}{marked}{filt}",
        )
        self.query_one("#runs-title", Static).update(title)

    # -- actions ------------------------------------------------------------------------------
    def _current(self) -> int | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.shown or table.cursor_row < 0 or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(key.value) if key and key.value else None

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_run(int(event.row_key.value))

    def action_open(self) -> None:
        """Open the run under the cursor."""
        rid = self._current()
        if rid is not None:
            self.app.open_run(rid)

    def action_new(self) -> None:
        """Set up a new experiment (prefilled from the run under the cursor, if any)."""
        self.app.open_new(None)

    def action_mark(self) -> None:
        """Mark or unmark the run under the cursor (for comparing)."""
        rid = self._current()
        if rid is None:
            return
        self.marked.symmetric_difference_update({rid})
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(str(rid), "mark", _cell("●" if rid in self.marked else " ", rid in self.marked, style="bold yellow"))
        self.shown[rid][0] = "●" if rid in self.marked else " "
        table.action_cursor_down()
        self._update_title()

    def action_compare(self) -> None:
        """Compare the marked runs (at least two)."""
        ids = sorted(self.marked)
        if len(ids) < 2:
            self.notify("Mark two or more runs with space, then press c.", severity="warning")
            return
        self.app.open_compare(ids)

    def action_filter(self) -> None:
        """Show the filter box."""
        box = self.query_one("#runs-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._sync_table(resort=True)
        self._update_title()

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one("#runs-table").focus()

    def action_clear_filter(self) -> None:
        """Clear and hide the filter box."""
        box = self.query_one("#runs-filter", Input)
        box.value = ""
        box.display = False
        self.query_one("#runs-table").focus()

    def action_sort(self) -> None:
        """Sort by the next column."""
        self.sort_key = SORTABLE[(SORTABLE.index(self.sort_key) + 1) % len(SORTABLE)]
        self.sort_reverse = self.sort_key in ("id", "last", "started", "duration")
        self._sort()
        self._update_title()

    def action_reverse(self) -> None:
        """Reverse the sort order."""
        self.sort_reverse = not self.sort_reverse
        self._sort()
        self._update_title()

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTABLE:
            self.sort_reverse = not self.sort_reverse if key == self.sort_key else False
            self.sort_key = key
            self._sort()
            self._update_title()

    def _job(self, what: str, fn: Callable[[int], str]) -> None:
        rid = self._current()
        if rid is None:
            return
        self._run_job(rid, what, fn)

    @work(thread=True, group="jobs")
    def _run_job(self, rid: int, what: str, fn: Callable[[int], str]) -> None:
        from medtui.errors import MedtuiError

        try:
            msg = fn(rid)
            self.app.call_from_thread(self.notify, f"run {rid}: {msg}")
        except MedtuiError as e:
            self.app.call_from_thread(self.notify, f"cannot {what} run {rid}: {e}", severity="error")
        self.app.call_from_thread(self.refresh_runs)

    def action_cancel_run(self) -> None:
        """Cancel the run under the cursor (it stops after its current step)."""
        from medtui.jobs.queue import cancel

        self._job("cancel", lambda rid: cancel(self.app.db_path, rid))

    def action_resume_run(self) -> None:
        """Resume the failed or cancelled run under the cursor in the background."""
        from medtui.jobs.queue import resume_detached

        self._job("resume", lambda rid: resume_detached(self.app.db_path, rid))

    def action_delete_run(self) -> None:
        """Delete the run under the cursor, after confirmation."""
        from medtui.jobs.queue import delete
        from medtui.tui.screens.confirm import ConfirmScreen

        rid = self._current()
        if rid is None:
            return
        run = self.runs[rid]
        if run["status"] == "running":
            self.notify(f"run {rid} is running: cancel it first (x)", severity="warning")
            return

        def done(ok: bool | None) -> None:
            if ok:
                self._job("delete", lambda r: delete(self.app.db_path, r) or "deleted")

        self.app.push_screen(ConfirmScreen(f"Delete run {rid} ({run['name']}) with its results, log and checkpoints?"), done)

