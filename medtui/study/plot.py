"""Figures of a study with matplotlib (Agg, no display): sized for one paper column, readable when printed.

Three kinds, from the dict of :func:`medtui.study.aggregate.aggregate`:

- :func:`plot_metric` — a metric against a numeric axis (buffer size by default) with error
  bars (± sample std), one line per combination of the other varying axes (paradigm,
  method, …); cells where the axis does not apply (joint, specialized) are horizontal
  reference lines;
- :func:`plot_matrix` — a cell's mean accuracy matrix as a heat map, mean ± std in each cell;
- :func:`plot_stages` — a cell's per-task accuracy across evaluation points (zero-shot, then
  after each stage), mean with error bars.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medtui.errors import UsageError  # noqa: E402
from medtui.study.series import numeric_axis, series  # noqa: E402

FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
#: One column of a two-column paper (inches) and a height that keeps labels readable.
COLUMN_W = 3.4
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
         "ytick.labelsize": 7, "figure.dpi": 150, "savefig.dpi": 300, "axes.spines.top": False, "axes.spines.right": False,
         "svg.fonttype": "none", "pdf.fonttype": 42}
_LABEL = {"last": "final accuracy (%)", "forgetting": "forgetting (%)", "bwt": "backward transfer (%)", "aia": "avg. incremental acc. (%)",
          "avg": "average accuracy (%)", "la": "learning accuracy (%)", "fwt": "forward transfer (%)", "in_domain": "in-domain accuracy (%)",
          "cross": "cross-task accuracy (%)", "heldout": "held-out accuracy (%)", "zero_shot": "zero-shot accuracy (%)", "transfer": "transfer (%)"}


def slug(text: str) -> str:
    """A file-name-safe form of a cell label."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-").lower() or "all"


def plot_metric(result: dict[str, Any], metric: str, path: Path, axis: str | None = None) -> Path:
    """Write ``metric`` against ``axis`` (default: buffer size) with ± std error bars; returns the path."""
    axis = numeric_axis(result, axis)
    if axis is None:
        raise UsageError(f"study {result['study']!r} has no numeric axis to plot {metric} against")
    lines, refs = series(result, metric, axis)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_W, 2.4), constrained_layout=True)
        for group, pts in lines.items():
            xs = [p[0] for p in pts]
            ax.errorbar(xs, [100 * p[1] for p in pts], yerr=[100 * (p[2] or 0) for p in pts], marker="o", ms=3, capsize=2,
                        lw=1.2, label=group)
        styles = ["--", ":", "-."]
        for k, (group, (mean, std)) in enumerate(refs.items()):
            line = ax.axhline(100 * mean, ls=styles[k % 3], lw=1, color=f"C{len(lines) + k}", label=f"{group} (no {axis.replace('_', ' ')})")
            if std:
                ax.axhspan(100 * (mean - std), 100 * (mean + std), color=line.get_color(), alpha=0.12, lw=0)
        xs_all = sorted({p[0] for pts in lines.values() for p in pts})
        if xs_all:
            ax.set_xticks(xs_all)
            if xs_all[0] > 0 and xs_all[-1] / xs_all[0] >= 20:
                ax.set_xscale("symlog")
                ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
        ax.set_xlabel(axis.replace("_", " ") + (" (samples)" if axis == "buffer_size" else ""))
        ax.set_ylabel(_LABEL.get(metric, metric))
        ax.set_title(f"{result['study']}: {metric.replace('_', ' ')} vs {axis.replace('_', ' ')} (mean ± std)")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(frameon=False, loc="best")
        fig.savefig(path)
        plt.close(fig)
    return path


def _short(names: list[str]) -> list[str]:
    """Task names without the prefix all of them share up to a separator (``synth-``), when that stays unambiguous."""
    import os

    common = os.path.commonprefix(names) if len(names) > 1 else ""
    cut = max(common.rfind("-"), common.rfind("_")) + 1
    short = [n[cut:] for n in names]
    return short if cut and all(short) and len(set(short)) == len(short) else list(names)


def cell_title(result: dict[str, Any], cell: dict[str, Any]) -> str:
    """``paradigm continual, buffer size 96``: the cell's varying values that apply, with their axis names."""
    parts = [f"{k.replace('_', ' ')} {cell['values'][k]}" for k in result["varying"] if cell["values"].get(k) is not None]
    return ", ".join(parts) or result["study"]


def _short_rows(rows: list[str], columns: list[str]) -> list[str]:
    """Row labels with the task names shortened as the columns are (``model synth-derm`` -> ``derm``)."""
    short = dict(zip(columns, _short(columns)))
    out = []
    for r in rows:
        for prefix in ("after ", "model "):
            if r.startswith(prefix) and r[len(prefix):] in short:
                r = short[r[len(prefix):]]
        out.append("0-shot" if r == "zero-shot" else r)
    return out


def plot_matrix(result: dict[str, Any], cell: dict[str, Any], path: Path) -> Path:
    """Write a cell's mean accuracy matrix as a heat map with ``mean±std`` in each cell; returns the path."""
    import numpy as np

    mean = np.array([[np.nan if v is None else 100 * v for v in row] for row in cell["matrix_mean"]], dtype=float)
    std = cell["matrix_std"]
    rows, cols = cell["rows"], _short(cell["columns"])
    with plt.rc_context(STYLE):
        h = max(1.8, 0.32 * len(rows) + 1.1)
        fig, ax = plt.subplots(figsize=(COLUMN_W, h), constrained_layout=True)
        im = ax.imshow(mean, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        for i in range(mean.shape[0]):
            for j in range(mean.shape[1]):
                if np.isnan(mean[i, j]):
                    continue
                s = std[i][j]
                text = f"{mean[i, j]:.0f}" + ("" if s is None else f"±{100 * s:.0f}")
                ax.text(j, i, text, ha="center", va="center", fontsize=6 if len(cols) > 4 else 7, color="black")
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), _short_rows(rows, cell["columns"]))
        ax.set_xlabel("tested on")
        ax.set_ylabel("after stage")
        ax.set_title(f"{cell_title(result, cell)} (n = {cell['n']})")
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02).set_label("accuracy (%)")
        fig.savefig(path)
        plt.close(fig)
    return path


def plot_stages(result: dict[str, Any], cell: dict[str, Any], path: Path) -> Path:
    """Write each task's mean accuracy across the evaluation points of a cell (± std); returns the path."""
    rows, cols = cell["rows"], _short(cell["columns"])
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_W, 2.4), constrained_layout=True)
        xs = list(range(len(rows)))
        for j, name in enumerate(cols):
            ys = [cell["matrix_mean"][i][j] for i in xs]
            es = [cell["matrix_std"][i][j] for i in xs]
            pts = [(x, 100 * y, 100 * (e or 0)) for x, y, e in zip(xs, ys, es) if y is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", ms=3, capsize=2, lw=1.2,
                            label=name + (" (held-out)" if cell["columns"][j] in cell.get("heldout", []) else ""))
        ax.set_xticks(xs, _short_rows(rows, cell["columns"]), rotation=30, ha="right")
        ax.set_ylim(0, 100)
        ax.set_xlabel("evaluated after")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{cell_title(result, cell)}: per-task accuracy across stages")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(frameon=False, ncols=2 if len(cols) > 3 else 1)
        fig.savefig(path)
        plt.close(fig)
    return path


def plot_study(result: dict[str, Any], out: Path, fmt: str = "png", metrics: list[str] | None = None) -> list[Path]:
    """Write every figure of a study into ``out``; returns the paths written (cells with no finished run are skipped)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown figure format {fmt!r}: choose one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    axis = numeric_axis(result)
    if axis is not None:
        for m in metrics or [m for m in ("last", "forgetting", "bwt") if m in result["metric_names"]]:
            written.append(plot_metric(result, m, out / f"{m}-vs-{axis}.{fmt}", axis))
    for c in result["cells"]:
        if not c["n"]:
            continue
        name = slug(c["label"])
        written.append(plot_matrix(result, c, out / f"matrix-{name}.{fmt}"))
        if len(c["rows"]) > 2:
            written.append(plot_stages(result, c, out / f"stages-{name}.{fmt}"))
    return written
