"""The run detail screen: one run, live — status, progress, loss, accuracy matrix, metrics, buffer, config, log.

A thread worker reads the run's detail and only the steps and log lines new since the last read, every
``app.refresh_s`` seconds, and posts :class:`RunUpdated`; the handler owns :class:`DetailState` and touches
only widgets whose data changed. A settled run (ended, nothing new) is read every :data:`IDLE_EVERY` ticks.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, RichLog, Static, TabbedContent, TabPane

from medtui.errors import MedtuiError, StoreError
from medtui.eta import fmt_eta, run_eta
from medtui.format import config_items, fmt_duration, fmt_metric, fmt_time, fmt_trained, run_duration
from medtui.jobs import queue
from medtui.metrics import METRIC_HELP, METRIC_NAMES
from medtui.tui.data import DetailState, RunUpdated
from medtui.tui.screens.runs import STATUS_ICON, STATUS_STYLE
from medtui.tui.widgets.charts import AccuracyChart, LossChart
from medtui.tui.widgets.matrix import MATRIX_TITLE, MatrixTable, matrix_legend

#: Statuses after which a run changes only if someone resumes it.
SETTLED = ("finished", "failed", "cancelled")
#: A settled run is re-read on every IDLE_EVERY-th tick only.
IDLE_EVERY = 10
#: Log lines read per refresh at most (a long log catches up over a few refreshes).
LOG_BATCH = 2000
#: Tab ids, in the order of the keys 1–5.
TABS: tuple[str, ...] = ("matrix", "training", "buffer", "config", "log")
#: The widget of each tab that takes the keys (it scrolls).
TAB_FOCUS = {"matrix": "#matrix-pane", "training": "#training-pane", "buffer": "#buffer-pane", "config": "#detail-config", "log": "#detail-log"}
#: Width of the metric meanings column (fits 80 columns next to the name and value).
HELP_WIDTH = 52
LOG_STYLE = {"error": "bold red", "warning": "yellow", "debug": "dim"}


class RunUnreadable(Message):
    """A worker could not read the run: it does not exist (``missing``) or the store failed this time."""

    def __init__(self, error: str, missing: bool) -> None:
        super().__init__()
        self.error = error
        self.missing = missing


def header_text(d: dict[str, Any], now: float | None = None) -> Text:
    """``#3 demo-3  ✓ finished  joint · cpu · weights random`` with the status in its colour (``▶ running ETA 3m05s``)."""
    status = d["status"]
    cfg = d.get("config") or {}
    extra = []
    if d["paradigm"] == "continual":
        extra = [cfg.get("method") or "naive", f"buffer {d['buffer']['budget'] or 0}"]
    elif d["paradigm"] == "joint":
        extra = [cfg.get("joint_sampling") or "proportional"]
    parts = [d["paradigm"], *extra, d.get("device") or "device ?", f"weights {d.get('weights') or '?'}"]
    eta = f" {fmt_eta(run_eta(d, now))}" if status == "running" else ""
    status_part = (f"{STATUS_ICON.get(status, '?')} {status}{eta}", STATUS_STYLE.get(status, ""))
    return Text.assemble((f"#{d['id']} {d['name'] or ''}", "bold"), "  ", status_part, "  " + " · ".join(parts))


def progress_line(d: dict[str, Any]) -> str:
    """``stage 2/5 after synth-derm · step 37/120 · epoch 2 · loss 0.412 · 480 img/s`` (or how the run ended)."""
    p = d.get("progress") or {}
    status, n_stages, loss = d["status"], p.get("n_stages"), p.get("loss")
    if status == "queued":
        return f"queued since {fmt_time(d.get('created_at'))}"
    if status != "running":
        # a settled run: when it ended and how far it got (the step counters no longer matter)
        parts = [
            f"{status} {fmt_time(d.get('finished_at'))}",
            f"took {fmt_duration(run_duration(d))}",
            n_stages and f"{p.get('finished_stage', 0)}/{n_stages} stages done",
            loss is not None and f"last loss {loss:.3f}",
        ]
    elif not n_stages:
        return "starting: loading tasks and building the model…"
    else:
        parts = [
            f"stage {p.get('stage', 0)}/{n_stages} {p.get('label') or ''}".rstrip(),
            p.get("n_steps") and f"step {p.get('step', 0)}/{p['n_steps']}",
            p.get("epoch") and f"epoch {p['epoch']}",
            loss is not None and f"loss {loss:.3f}",
            p.get("throughput") and f"{p['throughput']:.0f} img/s",
        ]
    return " · ".join(x for x in parts if x)


def _config_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(json.dumps(x) if isinstance(x, dict) else str(x) for x in v) or "—"
    if isinstance(v, dict):
        return json.dumps(v)
    return "—" if v is None else str(v)


def _metric_text(name: str, value: float | None) -> Text:
    # signed differences read better in colour: red when they mean forgetting
    style = "" if name not in ("bwt", "fwt") or not value else "green" if value > 0 else "red"
    return Text(fmt_metric(name, value), style=style, justify="right")


def _bar(n: int, total: int, width: int = 20) -> str:
    filled = round(width * n / total) if total else 0
    return "█" * min(width, filled) + "░" * max(0, width - filled)


class RunDetailScreen(Screen):
    """Everything about one run, refreshed live while it trains."""

    CSS_PATH = "detail.tcss"
    # the matrix pane takes the keys from the start: left to Textual, the first focusable (the tab bar)
    # could win the race with on_mount's focus and then take the first arrow key
    AUTO_FOCUS = "#matrix-pane"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("1", "tab('matrix')", "Matrix tab", show=False),
        Binding("2", "tab('training')", "Training tab", show=False),
        Binding("3", "tab('buffer')", "Buffer tab", show=False),
        Binding("4", "tab('config')", "Config tab", show=False),
        Binding("5", "tab('log')", "Log tab", show=False),
        # priority: the scrolling widgets inside the tabs would otherwise take the arrows
        Binding("right", "step_tab(1)", "Next tab", show=False, priority=True),
        Binding("left", "step_tab(-1)", "Previous tab", show=False, priority=True),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("r", "resume_run", "Resume run"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = int(run_id)
        self.state = DetailState()
        #: number of reads applied (tests wait on it)
        self.updates = 0
        self.missing: str | None = None
        self._reading = False
        self._settled = False
        self._ticks = 0
        self._metric_shown: dict[str, str] = {}
        self._bars: tuple[Any, ...] | None = None
        self._progress_shown = ""
        self._legend = ""
        self._header_shown = ""

    def compose(self) -> ComposeResult:
        """Header and progress lines, then five tabs, then the footer."""
        yield Static(f"#{self.run_id}  loading…", id="detail-header")
        yield Static("", id="detail-error")
        yield Static("", id="detail-progress")
        with TabbedContent(id="detail-tabs", initial="matrix"):
            with TabPane("1 Matrix", id="matrix"):
                with VerticalScroll(id="matrix-pane"):
                    yield Static(MATRIX_TITLE, id="detail-matrix-title", classes="section-title")
                    yield MatrixTable(id="detail-matrix")
                    yield Static("", id="detail-matrix-legend", classes="legend")
                    yield AccuracyChart(id="detail-accuracy")
                    yield Static("Metrics (%)", classes="section-title")
                    metrics = DataTable(id="detail-metrics", cursor_type="none", zebra_stripes=True)
                    metrics.add_column("metric", key="name")
                    metrics.add_column("value", key="value")
                    # a fixed width lets the meanings wrap (rows grow) instead of running off an 80-column screen
                    metrics.add_column("meaning", key="help", width=HELP_WIDTH)
                    yield metrics
            with TabPane("2 Training", id="training"):
                with VerticalScroll(id="training-pane"):
                    with Horizontal(classes="bar-row"):
                        yield Static("stages", classes="bar-label")
                        yield ProgressBar(id="detail-stage-bar", show_eta=False)
                    with Horizontal(classes="bar-row"):
                        yield Static("steps", classes="bar-label")
                        yield ProgressBar(id="detail-step-bar", show_eta=False)
                    yield Static("", id="detail-train-stats")
                    yield LossChart(id="detail-loss")
            with TabPane("3 Buffer", id="buffer"):
                with VerticalScroll(id="buffer-pane"):
                    yield Static("", id="detail-buffer-summary")
                    table = DataTable(id="detail-buffer", cursor_type="none", zebra_stripes=True)
                    for key in ("task", "samples", "share", "per class"):
                        table.add_column(key, key=key)
                    yield table
            with TabPane("4 Config", id="config"):
                config = DataTable(id="detail-config", cursor_type="row", zebra_stripes=True)
                config.add_column("key", key="key")
                config.add_column("value", key="value")
                yield config
            with TabPane("5 Log", id="log"):
                yield RichLog(id="detail-log", max_lines=5000, wrap=True, markup=False, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        """Read the run now and every ``app.refresh_s`` seconds."""
        self.query_one("#detail-error").display = False
        matrix = self.query_one("#detail-matrix", MatrixTable)
        matrix.can_focus = False
        matrix.show_cursor = False
        for table in self.query("#detail-metrics, #detail-buffer").results(DataTable):
            table.can_focus = False
        self._focus_tab("matrix")
        self._timer = self.set_interval(self.app.refresh_s, self.poll)
        self.poll()

    # -- reading ------------------------------------------------------------------------------
    def poll(self) -> None:
        """Start a read unless one is in flight, the run is gone, or it is settled and this is not its turn."""
        if self._reading or self.missing is not None:
            return
        self._ticks += 1
        if self._settled and self._ticks % IDLE_EVERY:
            return
        self._reading = True
        self.read_run(self.state.last_step_id, self.state.last_event_id)

    @work(thread=True, group="detail-read")
    def read_run(self, after_step: int, after_event: int) -> None:
        """Read the run's detail and the steps and log lines after the given row ids (thread; widgets untouched)."""
        try:
            detail, steps, events = self.app.reader.run_update(self.run_id, after_step, after_event, LOG_BATCH)
        except StoreError as e:
            self.post_message(RunUnreadable(str(e), missing=True))
            return
        except Exception as e:  # a busy or locked store: try again at the next tick
            self.post_message(RunUnreadable(f"{type(e).__name__}: {e}", missing=False))
            return
        self.post_message(RunUpdated(detail, steps, events))

    @on(RunUnreadable)
    def _unreadable(self, message: RunUnreadable) -> None:
        self._reading = False
        if not message.missing:
            return
        self.missing = message.error
        self._timer.stop()
        self.query_one("#detail-header", Static).update(Text(f"Run {self.run_id} not found", style="bold red"))
        self.query_one("#detail-progress", Static).update(f"{message.error}\nPress esc to go back to the runs.")
        self.query_one("#detail-tabs").display = False
        self.refresh_bindings()

    @on(RunUpdated)
    def apply_update(self, message: RunUpdated) -> None:
        """Fold a read into the screen, touching only what changed."""
        self._reading = False
        st = self.state
        d = message.detail
        # an overlapping read may repeat rows already shown: row ids tell
        steps = [s for s in message.steps if s["id"] > st.last_step_id]
        events = [e for e in message.events if e["id"] > st.last_event_id]
        prev = st.detail or {}
        st.detail = d
        changed = prev != d or bool(steps) or bool(events)
        # the ETA changes with every read: compare the text, not the fields it comes from
        header = header_text(d)
        if header.plain != self._header_shown:
            self._header_shown = header.plain
            self.query_one("#detail-header", Static).update(header)
        if prev.get("error") != d.get("error"):
            err = self.query_one("#detail-error", Static)
            err.display = bool(d.get("error"))
            err.update(Text(f"error: {d.get('error') or ''}", style="bold red"))
        line = progress_line(d)
        if line != self._progress_shown:
            self._progress_shown = line
            self.query_one("#detail-progress", Static).update(line)
        self.query_one("#detail-matrix", MatrixTable).show_detail(d)
        self.query_one("#detail-accuracy", AccuracyChart).show_detail(d)
        legend = matrix_legend(d)
        if legend != self._legend:
            self._legend = legend
            self.query_one("#detail-matrix-legend", Static).update(legend)
        if prev.get("metrics") != d.get("metrics") or prev.get("paradigm") != d.get("paradigm"):
            self._show_metrics(d)
        if prev.get("buffer") != d.get("buffer"):
            self._show_buffer(d)
        if prev.get("config") != d.get("config") or fmt_trained(prev.get("progress")) != fmt_trained(d.get("progress")):
            self._show_config(d["config"], fmt_trained(d.get("progress")))
        if steps:
            st.last_step_id = steps[-1]["id"]
            st.losses.extend(float(s["loss"]) for s in steps if s.get("loss") is not None)
            st.steps.extend(steps)
            self.query_one("#detail-loss", LossChart).show_steps(st.steps)
        if steps or prev.get("progress") != d.get("progress") or prev.get("status") != d.get("status"):
            self._show_training(d)
        if events:
            st.last_event_id = events[-1]["id"]
            log = self.query_one("#detail-log", RichLog)
            for e in events:
                stamp = time.strftime("%H:%M:%S", time.localtime(e["at"]))
                log.write(Text.assemble((stamp + " ", "dim"), (e["message"], LOG_STYLE.get(e["level"], ""))))
        self._settled = d["status"] in SETTLED and not changed
        self.updates += 1

    # -- sections -----------------------------------------------------------------------------
    def _show_metrics(self, d: dict[str, Any]) -> None:
        table = self.query_one("#detail-metrics", DataTable)
        metrics = d.get("metrics") or {}
        names = list(METRIC_NAMES.get(d["paradigm"], ())) + [n for n in metrics if n not in METRIC_NAMES.get(d["paradigm"], ())]
        if list(self._metric_shown) != names:
            table.clear()
            self._metric_shown = {}
            for n in names:
                # wrapped here, with the row height given, so the table's own height comes out right
                lines = textwrap.wrap(METRIC_HELP.get(n, ""), HELP_WIDTH) or [""]
                help_text = Text("\n".join(lines), style="italic")
                table.add_row(Text(n, style="bold"), _metric_text(n, metrics.get(n)), help_text, key=n, height=len(lines))
                self._metric_shown[n] = fmt_metric(n, metrics.get(n))
            return
        for n in names:
            now = fmt_metric(n, metrics.get(n))
            if self._metric_shown.get(n) != now:
                table.update_cell(n, "value", _metric_text(n, metrics.get(n)), update_width=True)
                self._metric_shown[n] = now

    def _show_training(self, d: dict[str, Any]) -> None:
        p = d.get("progress") or {}
        n_stages, n_steps = int(p.get("n_stages") or 0), int(p.get("n_steps") or 0)
        done = d["status"] == "finished"
        stages_done = n_stages if done else int(p.get("finished_stage") or max(0, int(p.get("stage") or 0) - 1))
        bars = (n_stages, stages_done, n_steps, n_steps if done else int(p.get("step") or 0))
        if bars != self._bars:
            self._bars = bars
            self.query_one("#detail-stage-bar", ProgressBar).update(total=n_stages or None, progress=stages_done)
            self.query_one("#detail-step-bar", ProgressBar).update(total=n_steps or None, progress=bars[3])
        losses = self.state.losses
        stats = [f"{len(losses)} steps logged"]
        if losses:
            stats.append(f"loss first {losses[0]:.3f} · min {min(losses):.3f} · last {losses[-1]:.3f}")
        if p.get("throughput"):
            stats.append(f"{p['throughput']:.0f} img/s")
        self.query_one("#detail-train-stats", Static).update(" · ".join(stats))

    def _show_buffer(self, d: dict[str, Any]) -> None:
        b = d.get("buffer") or {}
        budget = int(b.get("budget") or 0)
        per_task: dict[str, int] = b.get("per_task") or {}
        self.query_one("#detail-buffer-summary", Static).update(
            f"No replay buffer: {d['paradigm']} runs do not train task after task." if d["paradigm"] != "continual"
            else "Buffer size 0: plain sequential fine-tuning, nothing is replayed." if not budget
            else f"Budget {budget} samples; filled after the first stage." if not per_task
            else f"Budget {budget} samples · {sum(per_task.values())} in the buffer · per task (share of the budget) and per class"
        )
        table = self.query_one("#detail-buffer", DataTable)
        table.clear()
        table.display = bool(per_task)
        for task, n in per_task.items():
            classes = b.get("per_class", {}).get(task) or []
            table.add_row(task, Text(str(n), justify="right"), _bar(n, budget), " ".join(map(str, classes)) or "—", key=task)

    def _show_config(self, config: dict[str, Any], trained: str | None) -> None:
        table = self.query_one("#detail-config", DataTable)
        table.clear()
        if trained:
            table.add_row(Text("parameters", style="bold"), trained, key="_parameters")
        for key, value in config_items(config):
            if key == "method_opts":  # one row per option, so each reads (and compares) on its own
                for opt, v in (value or {}).items():
                    table.add_row(Text(f"method.{opt}", style="bold"), _config_value(v), key=f"method.{opt}")
                continue
            table.add_row(Text(key, style="bold"), _config_value(value), key=key)

    # -- actions ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only Back (and the app's keys) apply to a run that does not exist."""
        if self.missing is not None and action in ("tab", "step_tab", "cancel_run", "resume_run"):
            return False
        return True

    def _focus_tab(self, tab: str) -> None:
        # focus the pane's scrolling widget so that up/down/page keys scroll it at once
        self.query_one(TAB_FOCUS[tab]).focus()

    def action_tab(self, tab: str) -> None:
        """Show one of the tabs."""
        self.query_one("#detail-tabs", TabbedContent).active = tab
        self._focus_tab(tab)

    def action_step_tab(self, by: int) -> None:
        """Show the tab ``by`` places to the right (left when negative), wrapping around."""
        current = self.query_one("#detail-tabs", TabbedContent).active
        self.action_tab(TABS[(TABS.index(current) + by) % len(TABS)] if current in TABS else TABS[0])

    @on(TabbedContent.TabActivated, "#detail-tabs")
    def _tab_clicked(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id in TABS and self.is_mounted:
            self._focus_tab(event.pane.id)

    def action_back(self) -> None:
        """Back to the previous screen."""
        self.app.pop_screen()

    @work(thread=True, group="jobs")
    def _run_job(self, what: str, fn: Callable[[Path, int], str]) -> None:
        try:
            self.app.call_from_thread(self.notify, f"run {self.run_id}: {fn(self.app.db_path, self.run_id)}")
        except Exception as e:  # a refusal (MedtuiError) or e.g. a worker that could not start: say so, keep the app
            why = str(e) if isinstance(e, MedtuiError) else f"{type(e).__name__}: {e}"
            self.app.call_from_thread(self.notify, f"cannot {what} run {self.run_id}: {why}", severity="error")
        self.app.call_from_thread(self._wake)

    def _wake(self) -> None:
        # read at once after a cancel or resume, unless the screen was closed meanwhile
        if self.is_attached:
            self._settled = False
            self.poll()

    def action_cancel_run(self) -> None:
        """Cancel this run (a running one stops after its current step)."""
        self._run_job("cancel", queue.cancel)

    def action_resume_run(self) -> None:
        """Resume this failed or cancelled run in the background."""
        self._run_job("resume", queue.resume_detached)
