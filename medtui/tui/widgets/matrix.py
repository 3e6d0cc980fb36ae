"""The accuracy matrix as a heat table whose cells fill in as evaluations land.

Labels, legend and colours come from :mod:`medtui.heat`, the same as the command line's, so a
matrix reads the same in ``medtui show`` and in the app.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from medtui.heat import cell_text, heat_style, matrix_labels

MATRIX_TITLE = "Accuracy (%) · rows: after each stage · columns: tested on"


def cell(value: float | None) -> Text:
    """A matrix cell: the accuracy in % on its heat colour, or a dim dot when not evaluated yet."""
    if value is None:
        return Text("·", style="dim", justify="right")
    return Text(f" {cell_text(value)} ", style=heat_style(value), justify="right")


def matrix_legend(detail: dict[str, Any]) -> str:
    """The legend under a run's matrix: the full names behind the short labels, ``*`` held-out."""
    return matrix_labels(detail).legend_text()


class MatrixTable(DataTable):
    """Rows: zero-shot then each stage; columns: tasks (held-out ones marked ``*``); short labels."""

    DEFAULT_CSS = """
    MatrixTable { height: auto; max-height: 14; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, cell_padding=0, **kwargs)
        self._shape: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._values: dict[tuple[int, int], float | None] = {}

    def show(self, rows: list[str], columns: list[str], heldout: list[bool], matrix: list[list[float | None]]) -> int:
        """Show a matrix under these (short) labels, rebuilding only when its shape changed; returns how many cells changed."""
        shape = (tuple(rows), tuple(columns))
        if shape != self._shape:
            self.clear(columns=True)
            self.add_column("", key="label")
            for j, (c, held) in enumerate(zip(columns, heldout)):
                self.add_column(Text(f" {c}{'*' if held else ''} ", justify="right"), key=f"c{j}")
            for i, label in enumerate(rows):
                self.add_row(Text(f" {label} ", style="bold"), *(cell(v) for v in matrix[i]), key=f"r{i}")
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
        """Show the matrix of a run detail (``Store.detail``) with its short labels."""
        labels = matrix_labels(detail)
        return self.show(labels.rows, labels.columns, labels.heldout, detail["matrix"])
