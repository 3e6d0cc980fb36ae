"""A virtual table of runs: renders only the lines on screen, so filtering and sorting thousands of runs is instant.

Textual's DataTable keeps per-row bookkeeping and measures every cell; with
thousands of runs, hiding or re-adding rows costs seconds. This widget holds an
ordered list of run ids and one pre-built line per run; filtering or sorting only
replaces the list, and a refresh rebuilds the lines of the runs that changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Column:
    """A column: key, header label, width in cells, right-aligned or not."""

    key: str
    label: str
    width: int
    right: bool = False


def fit(text: Text, width: int, right: bool) -> Text:
    """``text`` cut (with an ellipsis) or padded to exactly ``width`` cells."""
    t = text.copy()
    t.truncate(width, overflow="ellipsis")
    pad = width - t.cell_len
    if pad > 0:
        if right:
            t = Text(" " * pad) + t
        else:
            t.append(" " * pad)
    return t


class RunsTable(ScrollView, can_focus=True):
    """Rows of runs under a fixed header line; ``enter`` posts :class:`RunsTable.Selected`."""

    COMPONENT_CLASSES = {"runs-table--header", "runs-table--cursor", "runs-table--odd"}
    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    RunsTable > .runs-table--header { text-style: bold; background: $panel; }
    RunsTable > .runs-table--cursor { background: $accent 60%; text-style: bold; }
    RunsTable:blur > .runs-table--cursor { background: $accent 25%; }
    RunsTable > .runs-table--odd { background: $surface; }
    """
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    class Selected(Message):
        """The user pressed enter on a run."""

        def __init__(self, run_id: int) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, columns: list[Column], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.order: list[int] = []
        self.lines: dict[int, Text] = {}
        self._width = sum(c.width for c in columns) + len(columns) - 1
        header = Text(" ").join(fit(Text(c.label), c.width, c.right) for c in columns)
        self._header = header

    # -- data ---------------------------------------------------------------------------------
    def set_line(self, run_id: int, cells: list[Text]) -> None:
        """Set the cells of one run (shown if the run is in the current order)."""
        self.lines[run_id] = Text(" ").join(fit(cell, c.width, c.right) for cell, c in zip(cells, self.columns))

    def drop(self, run_id: int) -> None:
        """Forget a run's line."""
        self.lines.pop(run_id, None)

    def set_order(self, order: list[int]) -> None:
        """Show these runs, in this order; the cursor stays on the same run where it can."""
        current = self.current
        self.order = order
        self.virtual_size = Size(self._width, len(order) + 1)
        if current in order:
            self.cursor = order.index(current)
        else:
            self.cursor = min(self.cursor, max(0, len(order) - 1))
        self.refresh()

    @property
    def current(self) -> int | None:
        """The run under the cursor, if any."""
        return self.order[self.cursor] if 0 <= self.cursor < len(self.order) else None

    def move_to(self, run_id: int) -> None:
        """Put the cursor on a run."""
        if run_id in self.order:
            self.cursor = self.order.index(run_id)

    # -- rendering ----------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        """The header on line 0, then the visible runs."""
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            style = self.get_component_rich_style("runs-table--header")
            return self._strip(self._header, style, scroll_x, width)
        index = scroll_y + y - 1
        if index >= len(self.order):
            return Strip.blank(width, self.rich_style)
        line = self.lines.get(self.order[index], Text(""))
        if index == self.cursor:
            style = self.get_component_rich_style("runs-table--cursor")
        elif index % 2:
            style = self.get_component_rich_style("runs-table--odd")
        else:
            style = self.rich_style
        return self._strip(line, style, scroll_x, width)

    def _strip(self, text: Text, style: Style, scroll_x: int, width: int) -> Strip:
        segments = list(text.render(self.app.console))
        strip = Strip(segments, text.cell_len).crop_extend(scroll_x, scroll_x + width, None)
        return Strip(Segment.apply_style(strip, style), strip.cell_length)

    # -- cursor -------------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        """Keep the cursor row on screen."""
        visible = max(1, self.size.height - 1)
        top = int(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        """Move the cursor up or down."""
        if self.order:
            self.cursor = max(0, min(len(self.order) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        """Move the cursor a screenful."""
        self.action_cursor(direction * max(1, self.size.height - 2))

    def action_jump(self, where: int) -> None:
        """Move the cursor to the first or last run."""
        if self.order:
            self.cursor = 0 if where == 0 else len(self.order) - 1

    def key_enter(self) -> None:
        """Open the run under the cursor."""
        if self.current is not None:
            self.post_message(self.Selected(self.current))

    def on_click(self, event: events.Click) -> None:
        """A click on a row moves the cursor there (a second click opens it)."""
        index = int(self.scroll_y) + event.y - 1
        if event.y >= 1 and 0 <= index < len(self.order):
            if index == self.cursor and event.chain >= 2:
                self.post_message(self.Selected(self.order[index]))
            self.cursor = index
