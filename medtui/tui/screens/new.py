"""The new-experiment form: pick a task sequence and the settings, check them as you type, launch.

The form is a view of a :class:`~medtui.config.RunConfig`: it is prefilled from one
(a default, a loaded TOML file, a run to repeat) and every edit rebuilds one and checks
it with the same function ``medtui run`` uses, so the app and the CLI accept the same
runs. Fields the form does not show (weight decay, warmup, data dir, user tasks…)
are carried over unchanged from the config it was filled from. The task lists live in
:mod:`medtui.tui.widgets.tasks`, the settings rows in :mod:`medtui.tui.widgets.settings`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Select, Static

from medtui.config import RunConfig, load_toml, resolve, to_toml
from medtui.errors import ConfigError, MedtuiError
from medtui.validate import check_config
from medtui.tui.messages import ConfigLoaded, ConfigSaved, FormFailed, RunCreated
from medtui.tui.widgets.settings import SettingsForm, known_choices
from medtui.tui.widgets.tasks import MARK_MISSING, AvailableTasks, SequenceList, TaskPicker, TaskSequence

HINT_AVAILABLE = f"enter add · h hold out · x remove\n{MARK_MISSING} not on disk yet: downloaded at start"
HINT_SEQUENCE = "[ ] or shift+↑↓ move · x remove\nh: held out ⇄ trained"


class NewExperimentScreen(Screen):
    """Build a run: the task sequence on the left, its settings on the right, checked as you type."""

    CSS_PATH = "new.tcss"
    AUTO_FOCUS = "#tasks-available"
    BINDINGS = [
        Binding("f5", "launch", "Launch"),
        Binding("f6", "queue", "Queue"),
        Binding("f7", "save", "Save TOML"),
        Binding("f8", "load", "Load TOML"),
        Binding("f9", "study", "Study"),
        Binding("escape", "back", "Back"),
        Binding("a", "add_task", "Add task to the sequence", show=False, key_display="a/enter"),
        Binding("h", "heldout", "Hold task out / train it again", show=False),
        Binding("x,delete", "remove_task", "Remove task", show=False, key_display="x/del"),
        Binding("left_square_bracket,shift+up", "move(-1)", "Move task up", show=False, key_display="[ shift+↑"),
        Binding("right_square_bracket,shift+down", "move(1)", "Move task down", show=False, key_display="] shift+↓"),
    ]

    def __init__(self, config: RunConfig | None = None) -> None:
        super().__init__()
        self.base = known_choices(config if isinstance(config, RunConfig) else RunConfig())
        self.resolved: RunConfig | None = None
        self.error: str | None = None
        self.starting = False
        self._ready: bool | None = None
        self.path_mode: str | None = None  # "save" or "load" while the path box is open
        self.last_path: Path | None = None
        self._focus_before_path: Widget | None = None

    @property
    def picker(self) -> TaskPicker:
        """The task lists and the sequence they edit."""
        return self.query_one(TaskPicker)

    @property
    def seq(self) -> TaskSequence:
        """The sequence being built."""
        return self.picker.seq

    def compose(self) -> ComposeResult:
        """Tasks and sequence on the left, the settings on the right, the check's verdict below."""
        yield Static(Text.assemble(("New experiment", "bold"), f" · store {self.app.db_path.name}"), id="new-title")
        with Horizontal(id="new-body"):
            picker = TaskPicker(self.base.tasks, self.base.heldout, id="new-left")
            picker.load(self.base.data_dir, self.base.user_tasks)
            yield picker
            with Vertical(id="new-right"):
                form = SettingsForm(self.base, id="new-form")
                form.border_title = "Settings"
                yield form
                yield Static("", id="new-hint")
                with Horizontal(id="new-buttons"):
                    yield Button("Launch", id="new-launch", variant="success", compact=True, action="screen.launch")
                    yield Button("Queue", id="new-queue", variant="primary", compact=True, action="screen.queue")
                    yield Button("Save", id="new-save", compact=True, action="screen.save")
                    yield Button("Load", id="new-load", compact=True, action="screen.load")
                    yield Button("Study…", id="new-study", compact=True, action="screen.study")
        with Horizontal(id="new-path-row"):
            yield Label("", id="new-path-label")
            yield Input(compact=True, id="new-path")
        yield Static("", id="new-message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Check the starting config."""
        self._revalidate()

    # -- the config and its check ---------------------------------------------------------------
    def form_config(self) -> RunConfig:
        """The config the form describes, unresolved (blank = automatic); ConfigError for a non-number."""
        values = self.query_one(SettingsForm).values()
        return replace(self.base, tasks=tuple(self.seq.tasks), heldout=tuple(self.seq.heldout), **values)

    def _revalidate(self) -> RunConfig | None:
        """Check the form; show the verdict, and allow launching only when it passes."""
        try:
            if self.picker.registry_error:
                raise ConfigError(self.picker.registry_error)
            self.resolved, self.error = check_config(self.form_config()), None
        except MedtuiError as e:
            self.resolved, self.error = None, str(e)
        protocol = self.query_one("#f-paradigm", Select).value
        for row in ("#row-buffer_size", "#row-method", "#method-opts"):
            self.query_one(row).set_class(protocol != "continual", "-inactive")
        self.query_one("#row-joint_sampling").set_class(protocol != "joint", "-inactive")
        tune = self.query_one("#f-tune", Select).value
        self.query_one("#row-text_lr_scale").set_class(tune in ("vision", "head"), "-inactive")
        for button in ("#new-launch", "#new-queue"):
            self.query_one(button, Button).disabled = self.resolved is None or self.starting
        self._show_verdict()
        ready = self.resolved is not None and not self.starting
        if ready != self._ready:  # the footer recomposes on a refresh: only when launch/queue flip
            self._ready = ready
            self.refresh_bindings()
        return self.resolved

    def _show_verdict(self) -> None:
        message = self.query_one("#new-message", Static)
        message.set_class(self.error is not None, "-error")
        if self.error is not None or self.resolved is None:
            message.update(Text.assemble(("✗ ", "bold red"), self.error or ""))
            return
        cfg = self.resolved
        stages = f"{cfg.n_stages} stage{'s' if cfg.n_stages != 1 else ''}"
        shots = f" · {cfg.shots} shots per class" if cfg.shots else ""
        text = Text.assemble(("✓ ", "bold green"), (cfg.name or "", "bold"), f" · {stages} · lr {cfg.lr:g}{shots}")
        missing = [t for t in cfg.columns if not self.picker.available.get(t, True)]
        if missing:
            text.append(f"\n{MARK_MISSING} not on disk, downloaded when the run starts: {', '.join(missing)}", style="yellow")
        message.update(text)

    @on(Input.Changed, "#new-form Input")
    @on(Select.Changed, "#new-form Select")
    @on(TaskPicker.Changed)
    def _edited(self) -> None:
        self._revalidate()

    def on_descendant_focus(self) -> None:
        """Show the help of the focused list or field."""
        focused = self.focused
        hint = SettingsForm.hint(focused.id if focused is not None else None)
        if focused is not None and (focused.id or "").startswith("o-") and focused.tooltip:
            hint = f"{focused.id.removeprefix('o-')}: {focused.tooltip}"
        if isinstance(focused, AvailableTasks):
            hint = HINT_AVAILABLE
        elif isinstance(focused, SequenceList):
            hint = HINT_SEQUENCE
        self.query_one("#new-hint", Static).update(hint or "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Launch and queue are greyed out while the form is invalid; task keys work in the task lists."""
        if action in ("launch", "queue"):
            return None if self.resolved is None or self.starting else True
        if action in ("add_task", "heldout", "remove_task", "move"):
            return isinstance(self.focused, (AvailableTasks, SequenceList))
        return True

    # -- the task keys (bound here so that ? and the command palette list them) ---------------
    def action_add_task(self) -> None:
        """Append the highlighted task to the sequence."""
        self.picker.add()

    def action_heldout(self) -> None:
        """Task list: add the task as held out. Sequence: switch it between trained and held out."""
        self.picker.hold_out()

    def action_remove_task(self) -> None:
        """Take the highlighted task out of the sequence or the held-out set."""
        self.picker.remove()

    def action_move(self, delta: int) -> None:
        """Move the highlighted task of the sequence up or down."""
        self.picker.move(delta)

    async def fill(self, config: RunConfig) -> None:
        """Show ``config`` in the form (tasks, fields, and the hidden fields carried over)."""
        self.base = known_choices(config)
        self.picker.load(config.data_dir, config.user_tasks)
        self.picker.set_sequence(config.tasks, config.heldout)
        await self.query_one(SettingsForm).show(config)
        self._revalidate()

    # -- launch, queue ------------------------------------------------------------------------
    def action_launch(self) -> None:
        """Store the run and start its worker now (queued instead when max_parallel runs are running), then watch it."""
        self._submit(queue=False)

    def action_queue(self) -> None:
        """Store the run and queue it: it starts when a slot is free."""
        self._submit(queue=True)

    def _submit(self, queue: bool) -> None:
        if self.starting:
            return
        config = self._revalidate()
        if config is None:
            self.notify(f"cannot {'queue' if queue else 'launch'}: {self.error}", severity="error")
            return
        self.starting = True
        self._revalidate()
        self._start(self.app.db_path, config, queue)

    @work(thread=True, exclusive=True, group="new-start")
    def _start(self, db_path: Path, config: RunConfig, queue: bool) -> None:
        """Create the run and launch or queue it (store writes and a process spawn: off the UI thread)."""
        from medtui.jobs.queue import enqueue, launch_new
        from medtui.store.store import Store

        run_id: int | None = None
        try:
            if queue:
                with Store(db_path) as store:
                    run_id = store.create_run(config, status="queued")
                started = run_id in enqueue(db_path, run_id)
            else:
                run_id, started = launch_new(db_path, config)
        except (MedtuiError, OSError) as e:
            stored = f" (run {run_id} was stored but did not start)" if run_id is not None else ""
            self.post_message(FormFailed(f"cannot {'queue' if queue else 'launch'} the run: {e}{stored}"))
            return
        self.post_message(RunCreated(run_id, queue, started))

    @on(RunCreated)
    def _run_created(self, message: RunCreated) -> None:
        self.starting = False
        self._revalidate()
        if message.queued:
            state = "started" if message.started else "queued; it starts when a slot is free"
            self.notify(f"run {message.run_id} {state}")
            return
        if not message.started:  # launched while max_parallel runs were running: it waits its turn
            self.notify(f"run {message.run_id} queued: max_parallel runs are running; it starts when a slot frees")
        if self.is_current:
            self.app.pop_screen()
        self.app.open_run(message.run_id)

    @on(FormFailed)
    def _failed(self, message: FormFailed) -> None:
        self.starting = False
        self._revalidate()
        self.error = message.error
        self._show_verdict()
        self.notify(message.error, severity="error")

    # -- a study of this experiment ------------------------------------------------------------
    def action_study(self) -> None:
        """A grid of runs with this form's experiment as the base: seeds, axes, orders (a dialog), then its Study screen."""
        from medtui.tui.screens.study_new import NewStudyScreen

        try:
            base = self.form_config()
        except ConfigError as e:
            self.notify(f"cannot make a study: {e}", severity="error")
            return

        def opened(study_id: int | None) -> None:
            if study_id is None:
                return
            from medtui.tui.screens.study import StudyScreen

            if self.is_current:
                self.app.pop_screen()
            self.app.push_screen(StudyScreen(study_id))

        self.app.push_screen(NewStudyScreen(base, self.app.db_path), opened)

    # -- save, load ---------------------------------------------------------------------------
    def action_save(self) -> None:
        """Ask for a path and write the form as an experiment TOML file (``medtui run --config`` reads it)."""
        try:
            config = self.form_config()
        except ConfigError as e:
            self.notify(f"cannot save: {e}", severity="error")
            return
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in (config.name or "experiment")).strip("-")
        self._ask_path("save", self.last_path or Path.cwd() / f"{stem or 'experiment'}.toml")

    def action_load(self) -> None:
        """Ask for an experiment TOML file and fill the form from it."""
        self._ask_path("load", self.last_path or Path.cwd())

    def _ask_path(self, mode: str, default: Path) -> None:
        self.path_mode = mode
        self._focus_before_path = self.focused
        self.query_one("#new-path-label", Label).update("save to " if mode == "save" else "load from ")
        box = self.query_one("#new-path", Input)
        box.value = str(default) + ("/" if default.is_dir() else "")
        self.query_one("#new-path-row").display = True
        box.focus()
        box.cursor_position = len(box.value)
        self.query_one("#new-hint", Static).update("enter: ok · esc: cancel")

    def _close_path(self) -> None:
        self.path_mode = None
        self.query_one("#new-path-row").display = False
        before = self._focus_before_path
        (before if before is not None and before.is_attached else self.query_one(self.picker.last_list)).focus()

    @on(Input.Submitted, "#new-path")
    def _path_given(self, event: Input.Submitted) -> None:
        raw = event.value.strip()
        if not raw:
            return
        path = Path(raw).expanduser().absolute()
        self.last_path = path
        if self.path_mode == "load":
            self._close_path()
            self._read_toml(path)
            return
        try:
            text = to_toml(self.form_config())
        except ConfigError as e:
            self.notify(f"cannot save: {e}", severity="error")
            return
        self._close_path()
        if not path.exists():
            self._write_toml(path, text)
            return
        from medtui.tui.screens.confirm import ConfirmScreen

        def answered(ok: bool | None) -> None:
            if ok:
                self._write_toml(path, text)

        self.app.push_screen(ConfirmScreen(f"{path} exists. Overwrite it?"), answered)

    @work(thread=True, exclusive=True, group="new-file")
    def _write_toml(self, path: Path, text: str) -> None:
        """Write the TOML text (file I/O off the UI thread: a home dir may be on a slow network disk)."""
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            self.post_message(FormFailed(f"cannot write {path}: {e.strerror or e}"))
            return
        self.post_message(ConfigSaved(path))

    @work(thread=True, exclusive=True, group="new-file")
    def _read_toml(self, path: Path) -> None:
        """Read and parse an experiment file; a one-line error otherwise."""
        try:
            config = load_toml(path)
            if known_choices(config) != config:
                resolve(config)  # the form cannot show an unknown choice: refuse it with resolve's message
        except MedtuiError as e:
            self.post_message(FormFailed(str(e)))
            return
        self.post_message(ConfigLoaded(config, path))

    @on(ConfigSaved)
    def _saved(self, message: ConfigSaved) -> None:
        self.notify(f"saved {message.path} (run it with `medtui run --config {message.path}`)")

    @on(ConfigLoaded)
    async def _loaded(self, message: ConfigLoaded) -> None:
        await self.fill(message.config)
        self.notify(f"loaded {message.path}")

    def action_back(self) -> None:
        """Close the path box if it is open, else leave the form."""
        if self.path_mode is not None:
            self._close_path()
            return
        self.app.pop_screen()
