"""A study's aggregated results as tables: Markdown, LaTeX (booktabs, best per column in bold), CSV.

All take the dict of :func:`medtui.study.aggregate.aggregate`. Accuracies are shown in %,
``bwt``/``fwt`` signed, as ``mean ± std``; ``n`` is ``k/planned`` for an incomplete cell.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from medtui.metrics import HIGHER_IS_BETTER
from medtui.store.compare import latex_escape

FORMATS: tuple[str, ...] = ("table", "markdown", "latex", "csv")


def fmt_value(name: str, x: float | None, digits: int = 1) -> str:
    """One number in %: signed for differences, ``—`` when missing."""
    if x is None:
        return "—"
    return f"{100 * x:+.{digits}f}" if name in ("bwt", "fwt") else f"{100 * x:.{digits}f}"


def fmt_stat(name: str, s: dict[str, Any], sep: str = " ± ") -> str:
    """``85.3 ± 1.2`` (``85.3`` alone when n = 1, ``—`` when there is no value)."""
    if s.get("mean") is None:
        return "—"
    std = s.get("std")
    return fmt_value(name, s["mean"]) + ("" if std is None else f"{sep}{100 * std:.1f}")


def n_text(cell: dict[str, Any]) -> str:
    """``3`` for a complete cell, ``2/3`` for one that holds fewer finished runs than it plans."""
    if cell["planned"] and cell["n"] < cell["planned"]:
        return f"{cell['n']}/{cell['planned']}"
    return str(cell["n"])


def metric_names(result: dict[str, Any], only: list[str] | None = None) -> list[str]:
    """Metrics to show: ``only`` (in its order) or every metric some cell has a value of."""
    return [m for m in only if m in result["metric_names"]] if only else list(result["metric_names"])


def results_table(result: dict[str, Any], only: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table: the varying axes, n, then each metric's mean ± std."""
    names = metric_names(result, only)
    axes = result["varying"]
    header = [*axes, "n", *names]
    rows = []
    for c in result["cells"]:
        vals = ["—" if c["values"].get(a) is None else str(c["values"][a]) for a in axes]
        rows.append([*vals, n_text(c), *(fmt_stat(m, c["metrics"].get(m, {})) for m in names)])
    return header, rows


def best_cells(result: dict[str, Any], name: str) -> set[int]:
    """Indices of the cells with the best mean of ``name`` (ties included; lower is better for forgetting)."""
    means = [(i, c["metrics"].get(name, {}).get("mean")) for i, c in enumerate(result["cells"])]
    means = [(i, round(m, 6)) for i, m in means if m is not None]
    if len(means) < 2:
        return set()
    pick = max if HIGHER_IS_BETTER.get(name, True) else min
    best = pick(m for _, m in means)
    return {i for i, m in means if m == best}


def matrix_rows(cell: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a cell's mean ± std accuracy matrix (in %)."""
    header = ["after \\ on", *cell["columns"]]
    rows = []
    for label, mean, std in zip(cell["rows"], cell["matrix_mean"], cell["matrix_std"]):
        rows.append([label, *(fmt_stat("acc", {"mean": m, "std": s}) for m, s in zip(mean, std))])
    return header, rows


def to_markdown(result: dict[str, Any], only: list[str] | None = None, with_matrices: bool = True) -> str:
    """The results table, then each cell's mean matrix, as GitHub Markdown."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731

    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|",
                *("| " + " | ".join(map(esc, r)) + " |" for r in rows)]

    header, rows = results_table(result, only)
    parts = [f"### Study {result['study']}: mean ± std over seeds and orders (%)", "", *table(header, rows)]
    if with_matrices:
        for c in result["cells"]:
            if c["n"]:
                parts += ["", f"#### Accuracy matrix, {c['label']} (mean ± std over {c['n']} runs, %)", "", *table(*matrix_rows(c))]
    return "\n".join(parts) + "\n"


def to_latex(result: dict[str, Any], only: list[str] | None = None) -> str:
    """A booktabs ``table``: one row per cell, metrics as $mean \\pm std$, the best of each column bold."""
    names = metric_names(result, only)
    axes = result["varying"]
    best = {m: best_cells(result, m) for m in names}
    spec = "l" * len(axes) + "r" * (1 + len(names))
    head = [latex_escape(a.replace("_", " ")) for a in axes] + ["$n$"] + [latex_escape(m.replace("_", " ")) for m in names]
    body = [" & ".join(head) + r" \\", r"\midrule"]
    for i, c in enumerate(result["cells"]):
        vals = [latex_escape("--" if c["values"].get(a) is None else str(c["values"][a])) for a in axes]
        cells = []
        for m in names:
            s = c["metrics"].get(m, {})
            if s.get("mean") is None:
                cells.append("--")
                continue
            text = fmt_value(m, s["mean"]) + ("" if s.get("std") is None else f" \\pm {100 * s['std']:.1f}")
            cells.append(f"$\\mathbf{{{text}}}$" if i in best[m] else f"${text}$")
        body.append(" & ".join([*vals, latex_escape(n_text(c)), *cells]) + r" \\")
    caption = latex_escape(f"Study {result['study']}: mean ± std over seeds and task orders (accuracies in %); best in bold.").replace("±", r"$\pm$")
    return "\n".join(
        [r"\begin{table}[t]", r"\centering", r"\small", f"\\caption{{{caption}}}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
         *body, r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    ) + "\n"


def to_csv(result: dict[str, Any]) -> str:
    """Long format: one line per cell and metric or matrix entry: axis values, kind, name, column, mean, std, n."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    axes = result["axes"]
    w.writerow([*axes, "kind", "name", "column", "mean", "std", "n", "planned"])
    num = lambda x: "" if x is None else f"{x:.6f}"  # noqa: E731
    for c in result["cells"]:
        vals = ["" if c["values"].get(a) is None else c["values"][a] for a in axes]
        for m, s in c["metrics"].items():
            w.writerow([*vals, "metric", m, "", num(s["mean"]), num(s["std"]), s["n"], c["planned"] or ""])
        for label, mean, std, count in zip(c["rows"], c["matrix_mean"], c["matrix_std"], c["matrix_n"]):
            for col, m, s, k in zip(c["columns"], mean, std, count):
                w.writerow([*vals, "accuracy", label, col, num(m), num(s), k, c["planned"] or ""])
    return buf.getvalue()
