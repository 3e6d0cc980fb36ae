"""How long a run still needs: a plan of the work (made when the tasks are loaded) and pure ETA arithmetic.

A run's work is its evaluation points (row 0 unless resumed, then one after each stage) and the
training of each stage. The engine makes a :func:`make_plan` once it knows the data sizes; the
store keeps it in the run's ``progress`` with the measured rates; :func:`eta_seconds` turns a
``progress`` dict into seconds left. Everything here is plain arithmetic (no torch, no store), so
the CLI, the app, the queue and study listings all give the same figure.

The ETA is

    remaining training images / measured training img/s + remaining evaluations × images per evaluation / eval img/s

less the time since the progress was written. The evaluation rate is measured on the zero-shot
evaluation; until it is known (a resumed run) it is :data:`EVAL_SPEEDUP` times the training rate,
and the training rate before the first logged step is the evaluation rate divided by it.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Mapping, Sequence

#: Evaluation (forward only, no gradients) against training (forward and backward), in images per second.
EVAL_SPEEDUP = 3.0


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Batches in one epoch of ``n_samples`` (the training loop merges a last batch of one into the one before)."""
    if n_samples <= 0:
        return 0
    n = math.ceil(n_samples / batch_size)
    if n > 1 and n_samples - (n - 1) * batch_size < 2:
        n -= 1
    return n


def make_plan(
    stage_tasks: Sequence[Sequence[str]],
    train_sizes: Mapping[str, int],
    test_sizes: Mapping[str, int],
    epochs: int,
    batch_size: int,
    buffer_size: int = 0,
) -> dict[str, Any]:
    """The work of a run as a JSON-ready dict: per stage its steps and images (all epochs), and images per evaluation.

    With a replay buffer (``buffer_size`` > 0, stages in sequence) a stage after the first also replays up to
    ``batch_size`` samples per step from the buffer, which holds at most ``buffer_size`` of the samples seen so far.
    """
    stages = []
    seen = 0
    for tasks in stage_tasks:
        n = sum(int(train_sizes.get(t, 0)) for t in tasks)
        per_epoch = steps_per_epoch(n, batch_size)
        replay = min(batch_size, buffer_size, seen) if buffer_size > 0 else 0
        stages.append({"tasks": list(tasks), "samples": n, "steps": per_epoch * epochs, "images": (n + per_epoch * replay) * epochs})
        seen += n
    return {"stages": stages, "epochs": epochs, "eval_images": int(sum(int(v) for v in test_sizes.values()))}


def rates(progress: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(training img/s, evaluation img/s) from a progress dict: measured where known, else derived from the other."""
    plan = progress.get("plan") or {}
    train = float(progress.get("throughput") or 0) or None
    eval_s = float(progress.get("eval_s") or 0)
    evaluation = plan.get("eval_images", 0) / eval_s if eval_s > 0 and plan.get("eval_images") else None
    if train is None and evaluation is not None:
        train = evaluation / EVAL_SPEEDUP
    if evaluation is None and train is not None:
        evaluation = train * EVAL_SPEEDUP
    return train, evaluation


def remaining_work(progress: Mapping[str, Any]) -> tuple[float, int] | None:
    """(training images, evaluation points) still to do, or None without a plan.

    ``rows_done`` counts finished rows (0 before the zero-shot evaluation ends); the stage in training
    (``stage`` with ``step`` of ``n_steps``) counts only its steps left.
    """
    plan = progress.get("plan") or {}
    stages = plan.get("stages")
    if not stages:
        return None
    done = int(progress.get("rows_done") or 0)
    current, step, n_steps = int(progress.get("stage") or 0), int(progress.get("step") or 0), int(progress.get("n_steps") or 0)
    images, evals = 0.0, 0 if done else 1
    for k, st in enumerate(stages, start=1):
        if k < done:
            continue
        left = 1.0
        if k == current and n_steps:
            left = max(0.0, 1.0 - step / n_steps)
        images += left * float(st.get("images") or 0)
        evals += 1
    return images, evals


def eta_seconds(progress: Mapping[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds until the run described by ``progress`` ends, or None when there is nothing to go on yet.

    ``progress`` holds ``plan`` (see :func:`make_plan`), ``rows_done``, ``stage``/``step``/``n_steps``,
    ``throughput`` (training img/s), ``eval_s`` (seconds of one evaluation point) and ``at`` (when it was
    written; the time since then is taken off, never below zero).
    """
    if not progress:
        return None
    work = remaining_work(progress)
    train, evaluation = rates(progress)
    if work is None or train is None or evaluation is None:
        return None
    images, evals = work
    left = images / train + evals * (progress.get("plan") or {}).get("eval_images", 0) / evaluation
    at = progress.get("at")
    if at:
        left -= max(0.0, (time.time() if now is None else now) - float(at))
    return max(0.0, left)


def run_eta(run: Mapping[str, Any], now: float | None = None) -> float | None:
    """The ETA of a run row (``runs`` listing or detail): only a running run has one."""
    if run.get("status") != "running":
        return None
    return eta_seconds(run.get("progress") or {}, now)


def schedule_eta(durations: Iterable[float], parallel: int = 1) -> float:
    """When the last of several jobs ends if they take these seconds each and ``parallel`` run at once, in order.

    Each job starts on the slot that frees first (how the queue starts runs); for a study or the queue
    this gives the time until everything is done.
    """
    slots = [0.0] * max(1, int(parallel))
    for d in durations:
        i = min(range(len(slots)), key=slots.__getitem__)
        slots[i] += max(0.0, float(d))
    return max(slots)


def parse_duration(text: str) -> float | None:
    """Seconds from the one duration format (``1h02m``, ``3m05s``, ``12s``, ``4.2s``); None for ``—`` or anything else."""
    import re

    m = re.fullmatch(r"(?:(\d+)h(\d\d)m|(\d+)m(\d\d)s|(\d+(?:\.\d)?)s)", text.strip())
    if not m:
        return None
    h, hm, m_, ms, s = m.groups()
    if h is not None:
        return int(h) * 3600 + int(hm) * 60
    if m_ is not None:
        return int(m_) * 60 + int(ms)
    return float(s)


def fmt_eta(seconds: float | None) -> str:
    """``ETA 3m05s`` (the one duration format, see :func:`medtui.format.fmt_duration`); ``ETA —`` when unknown."""
    from medtui.format import fmt_duration

    return f"ETA {fmt_duration(seconds)}"


class ProgressTracker:
    """Folds engine events into the same ``progress`` fields the store keeps, for an in-process ETA.

    The headless progress display uses it, so it needs no store reads; :class:`medtui.store.sink.StoreSink`
    writes the same fields into the run's row.
    """

    def __init__(self, progress: Mapping[str, Any] | None = None) -> None:
        self.progress: dict[str, Any] = dict(progress or {})

    def __call__(self, event: Any) -> None:
        """Update the fields an event changes (other events are ignored)."""
        from medtui.events import RunStarted, StageFinished, StageStarted, StepLogged

        p, now = self.progress, time.time()
        if isinstance(event, RunStarted):
            p.update(plan=event.plan, n_stages=len(event.rows) - 1, stage=event.start_row, step=0, n_steps=0,
                     rows_done=event.start_row + 1 if event.start_row else 0, at=now)
        elif isinstance(event, StageStarted):
            p.update(stage=event.stage, step=0, n_steps=event.n_steps, at=now)
        elif isinstance(event, StepLogged):
            p.update(step=event.step, n_steps=event.n_steps, throughput=event.throughput, at=now)
        elif isinstance(event, StageFinished):
            p.update(stage=event.stage, rows_done=event.stage + 1, at=now, **({"eval_s": event.seconds} if event.stage == 0 else {}))

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left (see :func:`eta_seconds`)."""
        return eta_seconds(self.progress, now)
