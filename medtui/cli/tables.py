"""The one table style of the command line (``runs``, ``show``, ``models``, ``compare``), the heat table, consoles.

Every table: bold header over a rule, columns two spaces apart, no outer frame, headers never cut
(each column is at least as wide as its header). ``NO_COLOR`` turns every escape code off, not only
the colours: output is plain text.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from medtui.format import fmt_metric
from medtui.heat import cell_text, colour_enabled, heat_style, matrix_labels


def console(stderr: bool = False) -> Console:
    """A console for stdout (data) or stderr (messages); without any escape codes under ``NO_COLOR``."""
    if colour_enabled():
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, color_system=None, no_color=True)


def new_table(*columns: str, title: str | None = None, right: Sequence[str] = (), wrap: Sequence[str] = ()) -> Table:
    """A table in the house style with these column headers (``right``: right-aligned; ``wrap``: may wrap).

    Columns not in ``wrap`` never wrap (they end in an ellipsis if the terminal is too narrow); no column is
    narrower than its header.
    """
    t = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold",
        title=title, title_justify="left", title_style="bold",
    )
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", no_wrap=c not in wrap, min_width=len(c),
                     overflow="fold" if c in wrap else "ellipsis")
    return t


def heat_table(detail: dict[str, Any], title: str | None = None, colour: bool | None = None) -> RenderableType:
    """A run's accuracy matrix (``Store.detail``) as a heat table with short labels, and its legend below.

    Cells are coloured by accuracy (text black or white, whichever reads better) unless ``colour`` is
    False (default: unless ``NO_COLOR``); held-out columns are marked ``*``.
    """
    colour = colour_enabled() if colour is None else colour
    labels = matrix_labels(detail)
    heads = [c + ("*" if h else "") for c, h in zip(labels.columns, labels.heldout)]
    t = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0), header_style="bold" if colour else "",
    )
    t.add_column("", no_wrap=True, style="bold" if colour else "")
    widths = [max(len(h), 5) + 1 for h in heads]
    for h, w in zip(heads, widths):
        t.add_column(h, justify="right", no_wrap=True, min_width=w)
    for label, row in zip(labels.rows, detail["matrix"]):
        cells = []
        for v, w in zip(row, widths):
            text = f"{cell_text(v):>{w}}"
            cells.append(Text(text, style=heat_style(v) if colour and v is not None else ""))
        t.add_row(label + " ", *cells)
    # the title above, not as the table's own title: that one would wrap to the (narrow) table's width
    head = Text(title or "accuracy (%) · rows: after each stage · columns: tested on", style="bold" if colour else "")
    legend = labels.legend_text()
    return Group(head, t, *([Text(legend, style="dim" if colour else "")] if legend else []))


def metrics_table(metrics: dict[str, float | None]) -> Table:
    """A run's metrics (accuracies in %, differences signed) in the house style."""
    t = new_table("metric", "value", right=("value",))
    for k, v in metrics.items():
        t.add_row(k, fmt_metric(k, v))
    return t
