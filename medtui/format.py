"""Formatting of values for people: percentages, metrics, durations, times, progress (CLI and app)."""

from __future__ import annotations

import time
from typing import Any

from medtui.config import LORA_KEYS


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage, ``—`` for missing."""
    return "—" if x is None else f"{100 * x:.{digits}f}"


def fmt_metric(name: str, x: float | None) -> str:
    """A metric value for display: accuracies in %, differences signed."""
    if x is None:
        return "—"
    if name in ("bwt", "fwt"):
        return f"{100 * x:+.1f}"
    return f"{100 * x:.1f}"


def fmt_duration(seconds: float | None) -> str:
    """The one duration format: ``1h02m``, ``3m05s``, ``12s``, ``4.2s`` (tenths below ten seconds); ``—`` for missing."""
    if seconds is None:
        return "—"
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f}s"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_time(ts: float | None) -> str:
    """A local timestamp ``YYYY-MM-DD HH:MM``; ``—`` for missing."""
    return "—" if not ts else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def run_duration(run: dict[str, Any]) -> float | None:
    """Seconds from start to finish (or to now for a running run)."""
    if not run.get("started_at"):
        return None
    end = run.get("finished_at") or (time.time() if run.get("status") == "running" else None)
    return None if end is None else end - run["started_at"]


def progress_text(run: dict[str, Any]) -> str:
    """``stage 2/5 37%`` for a running run, the status otherwise."""
    p = run.get("progress") or {}
    if run.get("status") != "running" or not p.get("n_stages"):
        return run.get("status", "")
    stage, n = p.get("stage", 0), p["n_stages"]
    pct = int(100 * p.get("step", 0) / p["n_steps"]) if p.get("n_steps") else 0
    return f"stage {stage}/{n} {pct}%"


def fmt_trained(progress: dict[str, Any] | None) -> str | None:
    """``73,068 of 8,571,741 parameters trained (0.85%)`` from a run's progress; None before the run started."""
    p = progress or {}
    n_train, n_all = p.get("n_trainable"), p.get("n_params")
    if n_train is None or not n_all:
        return None
    return f"{n_train:,} of {n_all:,} parameters trained ({fmt_share(n_train / n_all)})"


def fmt_share(x: float) -> str:
    """A share as a percentage with two significant digits, never rounded to 100 % or 0 % unless exact
    (``0.85%``, ``12%``, ``>99.9%``, ``100%``)."""
    if x >= 1:
        return "100%"
    if x <= 0:
        return "0%"
    pct = 100 * x
    if pct >= 99.9:
        return ">99.9%"
    if pct < 0.01:
        return "<0.01%"
    if pct < 10:
        return f"{pct:.2g}%"
    return f"{pct:.0f}%" if pct < 99.5 else f"{pct:.1f}%"


def config_items(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """A stored config's (key, value) pairs to show, without the LoRA keys of a run that does not use LoRA."""
    return [(k, v) for k, v in config.items() if k not in LORA_KEYS or config.get("tune") == "lora"]


def fmt_method(config: dict[str, Any]) -> str:
    """A stored config's method with its options: ``lwf (temperature=2.0, weight=1.0)``; ``naive``."""
    name = config.get("method") or "naive"
    opts = config.get("method_opts") or {}
    return f"{name} ({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else name
