"""The keys screen (``?``): every binding of the screen below it, and the app's global keys."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def _key(b: Binding) -> str:
    return b.key_display or {"space": "space", "slash": "/", "question_mark": "?", "escape": "esc"}.get(b.key, b.key)


class HelpScreen(ModalScreen[None]):
    """A modal listing the keys of ``under`` and of the app; any of esc, q, ? closes it."""

    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        """A table of keys and what they do."""
        t = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=True)
        t.add_column("key", style="bold cyan", no_wrap=True)
        t.add_column("action")
        seen: set[str] = set()
        sections = [(type(self.under).__name__.removesuffix("Screen"), getattr(self.under, "BINDINGS", [])), ("everywhere", self.app.BINDINGS)]
        for title, bindings in sections:
            t.add_row(f"[b u]{title}[/]", "")
            for b in bindings:
                if isinstance(b, Binding) and b.description and b.action not in seen:
                    seen.add(b.action)
                    t.add_row(_key(b), b.description)
        t.add_row("ctrl+p", "command palette: every action by name")
        with VerticalScroll(id="modal-box"):
            yield Static("[b]Keys[/b]  (esc closes)", classes="modal-title")
            yield Static(t)
