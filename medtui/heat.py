"""The accuracy matrix at a glance: short row and column labels, a legend, and heat colours (CLI and app).

Rows are ``zs`` (zero-shot) and ``1 cxr-a`` (the stage's number and its task, short); columns are the
tasks, short. Short names drop the prefix all tasks share up to a separator (``synth-``), MedMNIST's
``mnist`` and cut what is still too long for a five-task matrix to fit 80 columns; the legend gives
every full name that was shortened. Colours run red → yellow → green with the accuracy, and the
text on them is black or white, whichever reads better. Nothing here imports torch or Textual.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from medtui.format import fmt_pct

#: red (0%) → yellow (50%) → green (100%), ColorBrewer's RdYlGn end and middle points.
SCALE: tuple[tuple[float, tuple[int, int, int]], ...] = ((0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80)))
#: Label width used when the matrix has few columns (wider would only spread it out).
MAX_LABEL = 12
#: Total width a matrix should fit.
WIDTH = 80
ZERO_SHOT = "zero-shot"


def colour_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``NO_COLOR`` is set (to anything non-empty), as https://no-color.org asks."""
    return not (os.environ if env is None else env).get("NO_COLOR")


def heat_rgb(x: float) -> tuple[int, int, int]:
    """Background colour of an accuracy in [0, 1] (piecewise-linear along :data:`SCALE`)."""
    x = min(1.0, max(0.0, float(x)))
    for (x0, c0), (x1, c1) in zip(SCALE, SCALE[1:]):
        if x <= x1:
            t = (x - x0) / (x1 - x0)
            r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1))
            return r, g, b
    return SCALE[-1][1]


def _luminance(rgb: tuple[int, int, int]) -> float:
    # WCAG relative luminance
    def lin(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def readable_on(rgb: tuple[int, int, int]) -> str:
    """``black`` or ``white``: the foreground with the higher contrast on ``rgb`` (WCAG contrast ratio)."""
    lum = _luminance(rgb)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def heat_style(x: float) -> str:
    """A Rich/Textual style string for a cell of accuracy ``x``: ``black on #fee08b``."""
    rgb = heat_rgb(x)
    return f"{readable_on(rgb)} on #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}"


def cell_text(x: float | None) -> str:
    """A cell's text: the accuracy in % with one decimal, ``·`` when not evaluated yet."""
    return "·" if x is None else fmt_pct(x)


def _shorten(name: str) -> str:
    # pneumoniamnist_64 -> pneumonia64
    return re.sub(r"mnist(?:_(?=\d))?(?=$|\d)", "", name) or name


def short_names(names: Sequence[str], width: int = MAX_LABEL) -> dict[str, str]:
    """Each name made short and unique: shared prefix (up to ``-``/``_``) and ``mnist`` dropped, cut to ``width``.

    Where cutting would make two names equal, they become ``t1``, ``t2``… (their position).
    """
    names = list(names)
    cut = 0
    if len(names) > 1:
        common = os.path.commonprefix(names)
        cut = max(common.rfind("-"), common.rfind("_")) + 1
        if any(not n[cut:] for n in names):
            cut = 0
    short = {n: _shorten(n[cut:]) for n in names}
    short = {n: s if len(s) <= width else s[: width - 1] + "…" for n, s in short.items()}
    if len(set(short.values())) < len(short):
        return {n: (n if len(n) <= width else f"t{i}") for i, n in enumerate(names, start=1)}
    return short


def label_width(n_columns: int) -> int:
    """Widest label that lets a matrix of ``n_columns`` tasks fit :data:`WIDTH` columns (at least 5)."""
    # the row label column is "NN " plus a name; each task column is a label plus one space
    return max(5, min(MAX_LABEL, (WIDTH - 3) // (n_columns + 1) - 1))


@dataclass(frozen=True)
class MatrixLabels:
    """Short labels of a matrix and the legend that maps them back to the full names."""

    rows: list[str]
    columns: list[str]
    heldout: list[bool]
    legend: list[tuple[str, str]]

    def legend_text(self) -> str:
        """``zs zero-shot · cxr-a synth-cxr-a · … · * held-out`` (only what was shortened, and the marks used)."""
        parts = [f"{s} = {full}" for s, full in self.legend]
        if any(self.heldout):
            parts.append("* held-out")
        return " · ".join(parts)


def row_task(label: str) -> str | None:
    """The task a stage row is about (``after synth-derm`` → ``synth-derm``), None for other rows."""
    for prefix in ("after ", "model "):
        if label.startswith(prefix):
            return label[len(prefix):]
    return None


def matrix_labels(detail: Mapping[str, Any]) -> MatrixLabels:
    """Short labels for a run detail's matrix (``rows``, ``columns``, ``heldout`` as in :meth:`Store.detail`)."""
    columns = list(detail["columns"])
    short = short_names(columns, label_width(len(columns)))
    rows = []
    for i, label in enumerate(detail["rows"]):
        task = row_task(label)
        if label == ZERO_SHOT:
            rows.append("zs")
        elif task is not None:
            rows.append(f"{i} {short.get(task) or short_names([task], label_width(len(columns)))[task]}")
        else:
            rows.append(label if len(label) <= MAX_LABEL else f"{i} {label[: MAX_LABEL - 3]}…")
    heldout = set(detail.get("heldout") or ())
    legend = [("zs", ZERO_SHOT)] if ZERO_SHOT in detail["rows"] else []
    legend += [(s, full) for full, s in short.items() if s != full]
    return MatrixLabels(rows, [short[c] for c in columns], [c in heldout for c in columns], legend)
