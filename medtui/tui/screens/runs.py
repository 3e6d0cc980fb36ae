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
from textual.widgets import Footer, Input, Static

from medtui.eta import fmt_eta, run_eta
from medtui.format import fmt_duration, fmt_metric, run_duration
from medtui.tui.data import RunsLoaded
from medtui.tui.widgets.runs_table import Column, RunsTable

STATUS_STYLE = {"running": "bold cyan", "queued": "yellow", "finished": "green", "failed": "bold red", "cancelled": "magenta"}
STATUS_ICON = {"running": "▶", "queued": "…", "finished": "✓", "failed": "✗", "cancelled": "■"}


def _metric(run: dict[str, Any], name: str) -> float | None:
    m = run.get("metrics") or {}
    return m.get("in_domain") if name == "last" and "last" not in m else m.get(name)


def status_text(run: dict[str, Any], now: float | None = None) -> str:
    """``▶ 2/5 ETA 3m05s`` for a running run (stage of stages, time left), ``✓ finished`` and the like otherwise."""
    status = run["status"]
    p = run.get("progress") or {}
    if status == "running" and p.get("n_stages"):
        return f"▶ {p.get('stage', 0)}/{p['n_stages']} {fmt_eta(run_eta(run, now))}"
    return f"{STATUS_ICON.get(status, '?')} {status}"


def _sequence(run: dict[str, Any]) -> str:
    return "→".join(t.removeprefix("synth-") for t in run["tasks"] or [])


COLUMNS: list[Column] = [
    Column("mark", " ", 1),
    Column("id", "id", 5, right=True),
    Column("name", "name", 14),
    Column("status", "status", 16),
    Column("last", "last", 5, right=True),
    Column("bwt", "bwt", 6, right=True),
    Column("forgetting", "forget", 6, right=True),
    Column("paradigm", "paradigm", 11),
    Column("buffer", "buf", 4, right=True),
    Column("tasks", "tasks", 28),
    Column("model", "model", 14),
    Column("started", "started", 11),
    Column("duration", "took", 6, right=True),
]
#: Sort value of a run for each sortable column (None sorts last either way).
SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id": lambda r: r["id"],
    "name": lambda r: (r["name"] or "").lower(),
    "status": lambda r: r["status"],
    "last": lambda r: _metric(r, "last"),
    "bwt": lambda r: _metric(r, "bwt"),
    "forgetting": lambda r: _metric(r, "forgetting"),
    "paradigm": lambda r: r["paradigm"],
    "buffer": lambda r: r["buffer_size"] or 0,
    "tasks": _sequence,
    "model": lambda r: r["model"],
    "started": lambda r: r.get("started_at"),
    "duration": run_duration,
}
SORTABLE = list(SORT_KEYS)


def row_cells(run: dict[str, Any], marked: bool) -> list[Text]:
    """The table cells of one run, in :data:`COLUMNS` order."""
    status = run["status"]
    seq = _sequence(run)
    n = len(run["tasks"] or [])
    started = run.get("started_at")
    right = "right"
    return [
        Text("●" if marked else " ", style="bold yellow"),
        Text(str(run["id"]), justify=right),
        Text(run["name"] or ""),
        Text(status_text(run), style=STATUS_STYLE.get(status, "")),
        *(Text(fmt_metric(k, _metric(run, k))) for k in ("last", "bwt", "forgetting")),
        Text(run["paradigm"]),
        Text(str(run["buffer_size"] or "—")),
        Text(seq if len(seq) <= 28 else f"{n} tasks: {seq}"),
        Text(run["model"]),
        Text(time.strftime("%m-%d %H:%M", time.localtime(started)) if started else "—"),
        Text(fmt_duration(run_duration(run))),
    ]


def sort_ids(runs: dict[int, dict[str, Any]], ids: list[int], key: str, reverse: bool) -> list[int]:
    """``ids`` sorted by column ``key``; runs without a value go last in either direction."""
    fn = SORT_KEYS[key]
    have = [(fn(runs[i]), i) for i in ids]
    present = sorted((v for v in have if v[0] is not None), reverse=reverse)
    return [i for _, i in present] + [i for v, i in have if v is None]


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
        Binding("e", "new_from_run", "New from run", show=False),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse sort", show=False),
        Binding("x", "cancel_run", "Cancel"),
        Binding("r", "resume_run", "Resume"),
        Binding("delete", "delete_run", "Delete", key_display="del"),
        Binding("d", "app.datasets", "Datasets"),
        Binding("t", "app.study", "Studies", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[int, dict[str, Any]] = {}
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
        yield RunsTable(COLUMNS, id="runs-table")
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
        table = self.query_one(RunsTable)
        changed = snap.full
        for run in snap.changed:
            if self.runs.get(run["id"]) != run:
                self.runs[run["id"]] = run
                table.set_line(run["id"], row_cells(run, run["id"] in self.marked))
                changed = True
        for gone in set(self.runs) - snap.ids:
            del self.runs[gone]
            self.marked.discard(gone)
            table.drop(gone)
            changed = True
        if changed:
            self._rebuild_order()
            self._update_title()

    def _rebuild_order(self) -> None:
        ids = [i for i, r in self.runs.items() if not self.filter_text or matches(r, self.filter_text)]
        table = self.query_one(RunsTable)
        table.set_order(sort_ids(self.runs, ids, self.sort_key, self.sort_reverse))
        empty = self.query_one("#runs-empty", Static)
        empty.display = not table.order
        if not table.order:
            empty.update(
                "No runs match the filter." if self.runs else "No runs yet. Press n to set up an experiment, or run `medtui run --headless`."
            )

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
        return self.query_one(RunsTable).current

    @on(RunsTable.Selected)
    def _row_selected(self, event: RunsTable.Selected) -> None:
        self.app.open_run(event.run_id)

    def action_open(self) -> None:
        """Open the run under the cursor."""
        rid = self._current()
        if rid is not None:
            self.app.open_run(rid)

    def action_new(self) -> None:
        """Set up a new experiment from the defaults."""
        self.app.open_new(None)

    def action_new_from_run(self) -> None:
        """Set up a new experiment prefilled with the config of the run under the cursor."""
        rid = self._current()
        if rid is not None:
            self._open_new_from(rid)

    @work(thread=True, group="runs-config")
    def _open_new_from(self, run_id: int) -> None:
        with self.app.reader.store() as s:
            config = s.config(run_id)
        self.app.call_from_thread(self.app.open_new, config)

    def action_mark(self) -> None:
        """Mark or unmark the run under the cursor (for comparing)."""
        rid = self._current()
        if rid is None:
            return
        self.marked.symmetric_difference_update({rid})
        table = self.query_one(RunsTable)
        table.set_line(rid, row_cells(self.runs[rid], rid in self.marked))
        table.action_cursor(1)
        table.refresh()
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
        self._rebuild_order()
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
        self._rebuild_order()
        self._update_title()

    def action_reverse(self) -> None:
        """Reverse the sort order."""
        self.sort_reverse = not self.sort_reverse
        self._rebuild_order()
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

