"""The new-study dialog: the new-experiment form's config as a study's base, plus seeds, grid axes and task orders.

What a study file's ``[study]`` table says, typed into four fields and checked as you type
with the same parser and expansion ``medtui study run`` uses (:func:`medtui.study.spec.study_from_form`,
:func:`medtui.study.expand.expand`), so the dialog and the CLI accept the same studies. The
verdict line gives the count of cells and runs, or the one-line error. F5 stores the runs and
queues them (they start as ``max_parallel`` allows) and dismisses with the study's id.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from medtui.config import RunConfig
from medtui.errors import MedtuiError
from medtui.tui.messages import FormFailed, StudyChecked, StudyCreated

GRID_HINT = "an axis a line: buffer_size = 0, 200, 500 · method = naive, lwf"


class NewStudyScreen(ModalScreen[int | None]):
    """Make a study of ``base``: name, seeds, grid axes and orders; dismisses with the new study's id, or None."""

    CSS_PATH = ["modal.tcss", "study_new.tcss"]
    BINDINGS = [
        Binding("f5", "start", "Start study"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, base: RunConfig, db_path: Path) -> None:
        super().__init__()
        self.base = base
        self.db_path = db_path
        self.summary: str | None = None
        self.error: str | None = "checking…"
        self.starting = False
        self._token = 0

    def compose(self) -> ComposeResult:
        """Four fields, the verdict, two buttons."""
        n = len(self.base.tasks)
        with Vertical(id="modal-box"):
            yield Static(f"[b]New study[/b] of the form's experiment ({self.base.paradigm}, {n} task{'s' * (n != 1)})",
                         classes="modal-title")
            with Horizontal(classes="study-row"):
                yield Label("name", classes="study-label")
                yield Input("", placeholder="e.g. rehearsal-sweep", id="study-name", compact=True)
            with Horizontal(classes="study-row"):
                yield Label("seeds", classes="study-label")
                yield Input(str(self.base.seed), placeholder="0, 1, 2", id="study-seeds", compact=True)
            with Horizontal(classes="study-row"):
                yield Label("orders", classes="study-label")
                yield Input("1", placeholder="1 = the sequence as it is", id="study-orders", compact=True)
            yield Label("grid", classes="study-label")
            yield TextArea("", id="study-grid", compact=True, show_line_numbers=False)
            yield Static(GRID_HINT, id="study-hint")
            yield Static("", id="study-verdict")
            with Horizontal(classes="modal-buttons"):
                yield Button("Start (F5)", id="study-start", variant="success", compact=True)
                yield Button("Cancel (esc)", id="study-cancel", compact=True)

    def on_mount(self) -> None:
        """Focus the name and check the empty study."""
        self.query_one("#study-name", Input).focus()
        self._check()

    # -- the check -------------------------------------------------------------------------------
    def _fields(self) -> tuple[str, str, str, str]:
        return (
            self.query_one("#study-name", Input).value,
            self.query_one("#study-seeds", Input).value,
            self.query_one("#study-grid", TextArea).text,
            self.query_one("#study-orders", Input).value,
        )

    @on(Input.Changed)
    @on(TextArea.Changed)
    def _edited(self) -> None:
        self._check()

    def _check(self) -> None:
        self._token += 1
        self._expand(self._token, *self._fields())

    @work(thread=True, exclusive=True, group="study-check")
    def _expand(self, token: int, name: str, seeds: str, grid: str, orders: str) -> None:
        """Parse and expand the study off the UI thread (each run's config is checked: large grids take a while)."""
        from medtui.study.expand import expand
        from medtui.study.spec import study_from_form

        try:
            plan = expand(study_from_form(self.base, name, seeds, grid, orders))
        except MedtuiError as e:
            self.post_message(StudyChecked(token, None, str(e)))
            return
        axes = ", ".join(k for k, _ in plan.spec.axes) or "no axes"
        per_cell = len(plan.runs) // max(1, len(plan.cells))
        summary = (f"{len(plan.cells)} cell(s) × {per_cell} run(s) (seeds × orders) = {len(plan.runs)} runs · axes: {axes}")
        self.post_message(StudyChecked(token, summary, None))

    @on(StudyChecked)
    def _checked(self, message: StudyChecked) -> None:
        if message.token != self._token:
            return  # an answer to an earlier edit
        self.summary, self.error = message.summary, message.error
        self._show_verdict()

    def _show_verdict(self) -> None:
        verdict = self.query_one("#study-verdict", Static)
        verdict.update(f"✓ {self.summary}" if self.error is None else f"✗ {self.error}")
        verdict.set_class(self.error is not None, "-error")
        self.query_one("#study-start", Button).disabled = self.error is not None or self.starting

    # -- start, cancel -----------------------------------------------------------------------------
    def action_start(self) -> None:
        """Store and queue the study's runs (only when the last check passed)."""
        if self.starting or self.error is not None:
            if self.error is not None:
                self.notify(f"cannot start the study: {self.error}", severity="error")
            return
        self.starting = True
        self._show_verdict()  # greys Start out while the runs are stored
        self._submit(*self._fields())

    @work(thread=True, exclusive=True, group="study-submit")
    def _submit(self, name: str, seeds: str, grid: str, orders: str) -> None:
        """Expand once more, store the runs (a study of that name is resumed only if its spec is the same) and schedule."""
        from medtui.jobs.queue import schedule
        from medtui.store.store import Store
        from medtui.study.expand import expand
        from medtui.study.spec import study_from_form
        from medtui.study.store import submit

        try:
            plan = expand(study_from_form(self.base, name, seeds, grid, orders))
            with Store(self.db_path) as store:
                sub = submit(store, plan)
            started = schedule(self.db_path)
        except (MedtuiError, OSError) as e:
            self.post_message(FormFailed(f"cannot start the study: {e}"))
            return
        note = (f"study {plan.spec.name!r}: {len(plan.runs)} runs — {len(sub.added)} added, {len(sub.resumed)} resumed, "
                f"{len(sub.kept)} finished kept; {len(started)} started now, the rest queued")
        self.post_message(StudyCreated(sub.study_id, note))

    @on(FormFailed)
    def _failed(self, message: FormFailed) -> None:
        self.starting = False
        self.error = message.error
        self._show_verdict()
        self.notify(message.error, severity="error")

    @on(StudyCreated)
    def _created(self, message: StudyCreated) -> None:
        self.app.notify(message.note)
        self.dismiss(message.study_id)

    @on(Button.Pressed, "#study-start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#study-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        """Close without storing anything."""
        if not self.starting:
            self.dismiss(None)
