"""What a study's charts plot, as plain data (shared by the exported figures and the app's chart; no plotting here)."""

from __future__ import annotations

from typing import Any


def numeric_axis(result: dict[str, Any], prefer: str | None = None) -> str | None:
    """The axis to plot against: ``prefer``, else ``buffer_size``, else the first varying numeric axis."""
    candidates = [prefer] if prefer else ["buffer_size", *result["varying"]]
    for axis in candidates:
        if axis and axis in result["axes"]:
            vals = [c["values"].get(axis) for c in result["cells"]]
            if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                return axis
    return None


def series(result: dict[str, Any], metric: str, axis: str) -> tuple[dict[str, list[tuple[float, float, float | None]]], dict[str, tuple[float, float | None]]]:
    """Lines (group label -> [(x, mean, std)]) and reference levels (label -> (mean, std)) of ``metric`` over ``axis``."""
    others = [a for a in result["varying"] if a != axis]
    lines: dict[str, list[tuple[float, float, float | None]]] = {}
    refs: dict[str, tuple[float, float | None]] = {}
    for c in result["cells"]:
        s = c["metrics"].get(metric) or {}
        if s.get("mean") is None:
            continue
        group = " · ".join(str(c["values"].get(a)) for a in others if c["values"].get(a) is not None) or metric
        x = c["values"].get(axis)
        if x is None:
            refs[group] = (s["mean"], s.get("std"))
        else:
            lines.setdefault(group, []).append((float(x), s["mean"], s.get("std")))
    return {k: sorted(v) for k, v in lines.items()}, refs


def numeric_axes(result: dict[str, Any]) -> list[str]:
    """Every grid axis with numeric values (what a metric can be plotted against), ``buffer_size`` first."""
    out = []
    for axis in sorted(result["axes"], key=lambda a: a != "buffer_size"):
        vals = [c["values"].get(axis) for c in result["cells"]]
        if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out.append(axis)
    return out


def bars(result: dict[str, Any], metric: str) -> list[tuple[str, float, float | None]]:
    """One bar per cell that has ``metric``: (cell label, mean, std)."""
    out = []
    for c in result["cells"]:
        s = c["metrics"].get(metric) or {}
        if s.get("mean") is not None:
            out.append((c.get("label") or "all", s["mean"], s.get("std")))
    return out
