"""The Textual app: wires the screens and the global keys; each screen lives in its own file.

``make_app(db)`` is the one factory used by the CLI and the tests. The app only
reads the store (in thread workers and timers); training always runs in worker
processes started through :mod:`medtui.jobs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from medtui.tui.data import StoreReader

#: How often screens re-read the store (seconds).
REFRESH_S = 1.5


class MedtuiApp(App):
    """medtui: build, launch, watch, browse and compare continual-learning runs."""

    TITLE = "medtui"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit", priority=False),
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("f2", "datasets", "Datasets", show=False),
        Binding("f3", "study", "Studies", show=False),
        Binding("ctrl+s", "screenshot", "Screenshot", show=False),
    ]

    def __init__(self, db_path: str | Path, open_run: int | None = None, refresh_s: float = REFRESH_S) -> None:
        super().__init__()
        self.db_path = Path(db_path).resolve()
        self.reader = StoreReader(self.db_path)
        self.open_run_at_start = open_run
        self.refresh_s = refresh_s

    def on_mount(self) -> None:
        """Open the runs list (and a run, when asked to)."""
        from medtui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())
        if self.open_run_at_start is not None:
            self.open_run(self.open_run_at_start)

    # -- navigation ---------------------------------------------------------------------------
    def open_run(self, run_id: int) -> None:
        """Show one run's detail."""
        from medtui.tui.screens.detail import RunDetailScreen

        self.push_screen(RunDetailScreen(run_id))

    def open_compare(self, run_ids: list[int]) -> None:
        """Compare runs side by side."""
        from medtui.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(run_ids))

    def open_new(self, config: object | None = None) -> None:
        """Open the new-experiment form (optionally prefilled)."""
        from medtui.tui.screens.new import NewExperimentScreen

        self.push_screen(NewExperimentScreen(config))

    def action_study(self) -> None:
        """Open the Study screen (the newest study; ``[``/``]`` move between studies)."""
        from medtui.tui.screens.study import StudyScreen

        self.push_screen(StudyScreen())

    def action_datasets(self) -> None:
        """Browse the task registry."""
        from medtui.tui.screens.datasets import DatasetsScreen

        self.push_screen(DatasetsScreen())

    def action_help(self) -> None:
        """Show every key of the current screen."""
        from medtui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette reaches every action of the current screen, plus the app's own."""
        yield from super().get_system_commands(screen)
        seen = set()
        for binding in [*getattr(screen, "BINDINGS", []), *self.BINDINGS]:
            if not isinstance(binding, Binding) or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            target = screen if binding in getattr(screen, "BINDINGS", []) else self
            yield SystemCommand(
                binding.description,
                f"key: {binding.key_display or binding.key}",
                lambda t=target, a=binding.action: t.run_action(a),
            )


def make_app(db_path: str | Path, open_run: int | None = None, refresh_s: float = REFRESH_S) -> MedtuiApp:
    """The app on the store at ``db_path`` (the same factory for the CLI and the tests)."""
    return MedtuiApp(db_path, open_run=open_run, refresh_s=refresh_s)
