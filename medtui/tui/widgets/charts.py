"""Line charts of a run (plotext through textual-plotext): training loss per stage, and accuracy per task.

The series are built by pure functions (:func:`loss_series`, :func:`accuracy_series`) so that what a
chart shows is testable without drawing it; the widgets only draw them, with axes, ticks and a legend.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from textual_plotext import PlotextPlot

from medtui.heat import matrix_labels

#: A series: its label and its (x, y) points.
Series = tuple[str, list[float], list[float]]
#: Points drawn per series at most (a long run's steps are thinned evenly; the last point is kept).
MAX_POINTS = 400
#: plotext colours, one per series in turn (readable on dark and light themes).
COLOURS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "gray")


def _components(step: dict[str, Any]) -> dict[str, float]:
    raw = step.get("components")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, (int, float))}


def thin(xs: list[float], ys: list[float], n: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most ``n`` points, evenly spread over the series, the last one always kept."""
    if len(xs) <= n:
        return xs, ys
    idx = sorted({round(i * (len(xs) - 1) / (n - 1)) for i in range(n)})
    return [xs[i] for i in idx], [ys[i] for i in idx]


def loss_series(steps: Iterable[dict[str, Any]]) -> list[Series]:
    """The loss of each stage (``stage 1``, ``stage 2``…) and each loss component (by name) over the run's steps.

    x is the step counted from the start of the run (a stage's steps follow the previous stage's),
    so the stages sit side by side on one axis.
    """
    offsets: dict[int, int] = {}
    end = 0
    loss: dict[int, tuple[list[float], list[float]]] = {}
    parts: dict[str, tuple[list[float], list[float]]] = {}
    for s in steps:
        stage = int(s.get("stage") or 0)
        if stage not in offsets:
            offsets[stage] = end
        end = max(end, offsets[stage] + int(s.get("n_steps") or s.get("step") or 0))
        x = float(offsets[stage] + int(s.get("step") or 0))
        if s.get("loss") is not None:
            xs, ys = loss.setdefault(stage, ([], []))
            xs.append(x)
            ys.append(float(s["loss"]))
        for name, v in _components(s).items():
            xs, ys = parts.setdefault(name, ([], []))
            xs.append(x)
            ys.append(v)
    out: list[Series] = [(f"stage {k}", *thin(*loss[k])) for k in sorted(loss)]
    out += [(name, *thin(*xy)) for name, xy in parts.items()]
    return out


def accuracy_series(detail: dict[str, Any]) -> tuple[list[str], list[Series]]:
    """Tick labels of the evaluation points (``zs``, ``1``…) and each task's accuracy (%) at the points evaluated.

    Lines that fall after a task was trained on are forgetting; held-out tasks end in ``*``.
    """
    labels = matrix_labels(detail)
    ticks = ["zs" if r == "zs" else r.split(" ")[0] for r in labels.rows]
    out: list[Series] = []
    for j, (name, held) in enumerate(zip(labels.columns, labels.heldout)):
        pts = [(float(i), round(100 * float(row[j]), 2)) for i, row in enumerate(detail["matrix"]) if row[j] is not None]
        if pts:
            out.append((name + ("*" if held else ""), [p[0] for p in pts], [p[1] for p in pts]))
    return ticks, out


class Chart(PlotextPlot):
    """A plotext chart that redraws only when its series change."""

    DEFAULT_CSS = """
    Chart { height: 12; width: 1fr; }
    """

    def __init__(self, title: str, xlabel: str, ylabel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart_title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.series: list[Series] = []
        self._ticks: list[str] = []
        self._version = 0
        self._cached: tuple[tuple[Any, ...], Any] | None = None

    def render(self) -> Any:
        """The drawn chart; rebuilt only when the data, the size or the theme changed (plotext is slow to build)."""
        key = (self.size.width, self.size.height, self.app.theme, self.theme, self._version)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, super().render())
        return self._cached[1]

    def set_series(self, series: list[Series], ticks: list[str] | None = None) -> bool:
        """Draw these series (returns whether anything changed)."""
        ticks = ticks or []
        if series == self.series and ticks == self._ticks:
            return False
        self.series, self._ticks = series, ticks
        self._version += 1
        self._draw()
        self.refresh()
        return True

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.chart_title)
        plt.xlabel(self.xlabel)
        plt.ylabel(self.ylabel)
        for k, (label, xs, ys) in enumerate(self.series):
            # one point is a line of length zero: plotext draws nothing for it, so mark it
            marker = "dot" if len(xs) == 1 else "braille"
            plt.plot(xs, ys, label=label, color=COLOURS[k % len(COLOURS)], marker=marker)
        self._limits()

    def _limits(self) -> None:
        """Axis ranges and ticks (subclasses)."""


class LossChart(Chart):
    """Training loss over the run's steps: one line per stage, plus one per loss component when a method logs them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("loss per stage (and its components)", "step", "loss", **kwargs)

    def show_steps(self, steps: Iterable[dict[str, Any]]) -> bool:
        """Draw the loss of these step rows (``Store.steps``)."""
        return self.set_series(loss_series(steps))

    def _limits(self) -> None:
        ys = [y for _, _, s in self.series for y in s]
        if ys:
            self.plt.ylim(0, max(ys) * 1.05 or 1.0)


class AccuracyChart(Chart):
    """Each task's accuracy across the evaluation points (zero-shot, after each stage)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("accuracy per task (falling lines: forgetting)", "evaluated after stage", "acc %", **kwargs)

    def show_detail(self, detail: dict[str, Any]) -> bool:
        """Draw the matrix of a run detail (``Store.detail``) as lines."""
        ticks, series = accuracy_series(detail)
        return self.set_series(series, ticks)

    def _limits(self) -> None:
        self.plt.ylim(0, 100)
        self.plt.yticks([0, 25, 50, 75, 100])
        if self._ticks:
            self.plt.xticks(list(range(len(self._ticks))), self._ticks)
            self.plt.xlim(-0.2, len(self._ticks) - 0.8)
