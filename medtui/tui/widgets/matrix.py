"""The accuracy matrix as a colour-scaled table whose cells fill in as evaluations land."""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from medtui.format import fmt_pct

# red → amber → green; rich reduces these to the nearest of 256 colours where needed
_SCALE = ((0.0, (150, 40, 40)), (0.5, (150, 110, 30)), (1.0, (40, 120, 60)))


def scale_colour(x: float) -> str:
    """Background colour for an accuracy in [0, 1] (piecewise-linear red → amber → green)."""
    x = min(1.0, max(0.0, x))
    for (x0, c0), (x1, c1) in zip(_SCALE, _SCALE[1:]):
        if x <= x1:
            t = (x - x0) / (x1 - x0)
            r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1))
            return f"rgb({r},{g},{b})"
    return "rgb(40,120,60)"


def cell(value: float | None) -> Text:
    """A matrix cell: the accuracy in % on its colour, or a dim dot when not evaluated yet."""
    if value is None:
        return Text("·", style="dim", justify="right")
    return Text(f" {fmt_pct(value)} ", style=f"bold white on {scale_colour(value)}", justify="right")


def short_names(names: list[str]) -> tuple[dict[str, str], str]:
    """Names without the prefix they all share up to a separator (``synth-cxr-a`` → ``cxr-a``), and that prefix.

    Five task names in full do not fit 80 columns; nothing is cut where a name would end up empty or ambiguous.
    """
    same = {n: n for n in names}
    if len(names) < 2:
        return same, ""
    common = os.path.commonprefix(names)
    cut = max(common.rfind("-"), common.rfind("_")) + 1
    short = {n: n[cut:] for n in names}
    if not cut or not all(short.values()) or len(set(short.values())) < len(short):
        return same, ""
    return short, names[0][:cut]


def short_matrix(d: dict[str, Any]) -> tuple[list[str], list[str], list[str], str]:
    """Rows, columns and held-out columns of a run detail with short task names, and the prefix left out."""
    short, prefix = short_names(list(d["columns"]))
    rows = []
    for label in d["rows"]:
        # longest first: a name that is a prefix of another must not cut into it
        for full in sorted(short, key=len, reverse=True):
            label = label.replace(full, short[full])
        rows.append(label)
    return rows, [short[c] for c in d["columns"]], [short.get(c, c) for c in d["heldout"]], prefix


def matrix_title(prefix: str) -> str:
    """The heading above an accuracy matrix (saying which prefix the task names lost)."""
    note = f" · '{prefix}' left out" if prefix else ""
    return f"Accuracy (%) · rows: after each stage · columns: tested on · * held-out{note}"



class MatrixTable(DataTable):
    """Rows: zero-shot then each stage; columns: tasks (held-out ones marked ``*``)."""

    DEFAULT_CSS = """
    MatrixTable { height: auto; max-height: 14; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, **kwargs)
        self._shape: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._values: dict[tuple[int, int], float | None] = {}

    def show(self, rows: list[str], columns: list[str], heldout: list[str], matrix: list[list[float | None]]) -> int:
        """Show a matrix, rebuilding only when its shape changed; returns how many cells changed."""
        shape = (tuple(rows), tuple(columns))
        if shape != self._shape:
            self.clear(columns=True)
            self.add_column("after \\ on", key="label")
            for j, c in enumerate(columns):
                self.add_column(c + ("*" if c in heldout else ""), key=f"c{j}")
            for i, label in enumerate(rows):
                self.add_row(label, *(cell(v) for v in matrix[i]), key=f"r{i}")
            self._shape = shape
            self._values = {(i, j): v for i, r in enumerate(matrix) for j, v in enumerate(r)}
            return len(self._values)
        changed = 0
        for i, r in enumerate(matrix):
            for j, v in enumerate(r):
                if self._values.get((i, j)) != v:
                    self.update_cell(f"r{i}", f"c{j}", cell(v), update_width=True)
                    self._values[(i, j)] = v
                    changed += 1
        return changed

    def show_detail(self, detail: dict[str, Any]) -> int:
        """Show the matrix of a run detail (``Store.detail``)."""
        return self.show(detail["rows"], detail["columns"], detail["heldout"], detail["matrix"])
