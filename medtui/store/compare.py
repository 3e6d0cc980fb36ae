"""Comparing runs side by side: differing config first, metrics with deltas, matrices; exports.

Used by ``medtui compare`` and the app's Compare screen. Deltas are against the
first run given (the baseline); ``↑``/``↓`` say better/worse by the metric's own
direction (lower forgetting is better). Exports: Markdown, LaTeX (booktabs), CSV
(long format, one value per line) and JSON.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from medtui.config import LORA_KEYS
from medtui.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from medtui.store.store import Store

FORMATS: tuple[str, ...] = ("table", "markdown", "latex", "csv", "json")
#: Config keys never worth showing as differences.
_SKIP_KEYS = {"user_tasks"}


@dataclass
class Comparison:
    """Runs compared: their details, config keys that differ / agree, metric rows."""

    runs: list[dict[str, Any]]
    config_diff: dict[str, list[Any]]
    config_same: dict[str, Any]
    metric_names: list[str]

    @property
    def labels(self) -> list[str]:
        """Column labels of the runs: ``#id name``."""
        return [f"#{r['id']} {r['name']}" for r in self.runs]

    def metric(self, name: str) -> list[float | None]:
        """Values of one metric across the runs."""
        return [r["metrics"].get(name) for r in self.runs]

    def delta(self, name: str, i: int) -> float | None:
        """Run ``i``'s metric minus the baseline's (run 0), None if either is missing."""
        vals = self.metric(name)
        if i == 0 or vals[0] is None or vals[i] is None:
            return None
        return vals[i] - vals[0]


def arrow(name: str, delta: float | None, eps: float = 1e-9) -> str:
    """``↑`` when ``delta`` is an improvement for metric ``name``, ``↓`` when worse, ``=`` when equal."""
    if delta is None:
        return ""
    if abs(delta) <= eps:
        return "="
    better = (delta > 0) == HIGHER_IS_BETTER.get(name, True)
    return "↑" if better else "↓"


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config with each method option as its own key (``method.temperature``), so diffs name it."""
    out = {k: v for k, v in config.items() if k != "method_opts"}
    for k, v in (config.get("method_opts") or {}).items():
        out[f"method.{k}"] = v
    return out


def compare(store: Store, run_ids: list[int]) -> Comparison:
    """Gather what a comparison of ``run_ids`` (baseline first) shows."""
    runs = [store.detail(i) for i in run_ids]
    flat = [_flat_config(r["config"]) for r in runs]
    keys: list[str] = []
    skip = _SKIP_KEYS if any(r["config"].get("tune") == "lora" for r in runs) else _SKIP_KEYS | set(LORA_KEYS)
    for cfg in flat:
        keys += [k for k in cfg if k not in keys and k not in skip]
    diff, same = {}, {}
    for k in keys:
        vals = [cfg.get(k) for cfg in flat]
        if all(v == vals[0] for v in vals):
            same[k] = vals[0]
        else:
            diff[k] = vals
    names: list[str] = []
    for r in runs:
        for n in METRIC_NAMES.get(r["paradigm"], ()):
            if n not in names:
                names.append(n)
    return Comparison(runs=runs, config_diff=diff, config_same=same, metric_names=names)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return "—" if v is None else str(v)


def metric_cell(c: Comparison, name: str, i: int) -> str:
    """``71.3`` for the baseline, ``64.0 (−7.3 ↓)`` for the others."""
    v = c.metric(name)[i]
    d = c.delta(name, i)
    if d is None:
        return _pct(v)
    return f"{_pct(v)} ({100 * d:+.1f} {arrow(name, d)})"


def sections(c: Comparison) -> list[tuple[str, list[str], list[list[str]]]]:
    """The comparison as (title, header, rows) tables: config differences, metrics, then each matrix."""
    out = []
    if c.config_diff:
        out.append(("Config differences", ["key", *c.labels], [[k, *map(_value, v)] for k, v in c.config_diff.items()]))
    out.append(("Metrics (%)", ["metric", *c.labels], [[n, *(metric_cell(c, n, i) for i in range(len(c.runs)))] for n in c.metric_names]))
    for label, r in zip(c.labels, c.runs):
        cols = [col + (" (held-out)" if col in r["heldout"] else "") for col in r["columns"]]
        rows = [[row, *map(_pct, vals)] for row, vals in zip(r["rows"], r["matrix"])]
        out.append((f"Accuracy matrix {label} (%)", ["after \\ on", *cols], rows))
    return out


def to_markdown(c: Comparison) -> str:
    """GitHub-flavoured Markdown tables."""
    parts = []
    for title, header, rows in sections(c):
        esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines = [f"### {title}", "", "| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


_LATEX_ESC = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
              "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "—": "--", "−": "-", "→": r"$\to$"}


def latex_escape(s: str) -> str:
    """Escape LaTeX special characters (and the arrows and dashes medtui prints)."""
    return "".join(_LATEX_ESC.get(ch, ch) for ch in str(s))


def to_latex(c: Comparison) -> str:
    """One booktabs ``table`` per section."""
    parts = []
    for title, header, rows in sections(c):
        spec = "l" + "r" * (len(header) - 1)
        body = [" & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
        body += [" & ".join(latex_escape(v) for v in r) + r" \\" for r in rows]
        parts.append(
            "\n".join(
                [r"\begin{table}[t]", r"\centering", f"\\caption{{{latex_escape(title)}}}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
                 *body, r"\bottomrule", r"\end{tabular}", r"\end{table}"]
            )
        )
    return "\n\n".join(parts) + "\n"


def to_csv(c: Comparison) -> str:
    """Long format: ``run_id,run_name,kind,row,column,value`` (kind: config, metric, accuracy)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run_id", "run_name", "kind", "row", "column", "value"])
    for r in c.runs:
        for k, v in r["config"].items():
            if k not in _SKIP_KEYS:
                w.writerow([r["id"], r["name"], "config", k, "", _value(v)])
        for n in c.metric_names:
            v = r["metrics"].get(n)
            w.writerow([r["id"], r["name"], "metric", n, "", "" if v is None else f"{v:.6f}"])
        for row, vals in zip(r["rows"], r["matrix"]):
            for col, v in zip(r["columns"], vals):
                w.writerow([r["id"], r["name"], "accuracy", row, col, "" if v is None else f"{v:.6f}"])
    return buf.getvalue()


def to_json(c: Comparison) -> str:
    """The comparison as one JSON object."""
    return json.dumps(
        {
            "runs": [{k: r[k] for k in ("id", "name", "status", "paradigm", "rows", "columns", "heldout", "matrix", "metrics")} for r in c.runs],
            "config_diff": c.config_diff,
            "config_same": c.config_same,
            "metrics": {n: {"values": c.metric(n), "delta": [c.delta(n, i) for i in range(len(c.runs))]} for n in c.metric_names},
        },
        indent=2,
    ) + "\n"


EXPORTERS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json}
EXTENSIONS = {"markdown": "md", "latex": "tex", "csv": "csv", "json": "json"}
