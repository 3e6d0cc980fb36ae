"""Continual-learning metrics computed from an accuracy matrix (pure numpy, no torch).

``R[i][j]`` is the accuracy (a fraction in ``[0, 1]``) on task ``j``'s test split at
evaluation point ``i``.  Row ``0`` is zero-shot (the pre-trained model before any
training); rows ``1..T`` follow the stages of the run.  The first ``n_trained``
columns are the trained tasks in sequence order, the remaining columns are held-out
tasks (evaluated, never trained).  In the formulas below tasks are numbered from 1:
trained column ``c`` (0-based) is task ``j = c + 1`` and is trained at row ``j``.

Missing entries (``None`` / NaN: not evaluated yet, run stopped early) are never
treated as 0: they are skipped inside means, a difference term is skipped when either
side is missing, and a metric whose terms are all missing or that has no terms at
all (e.g. ``bwt`` with one stage) is ``None``.  Every value returned is a Python
``float`` or ``None``, so the result is JSON-serialisable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_HELP",
    "METRIC_NAMES",
    "compute_metrics",
    "continual_metrics",
    "joint_metrics",
    "specialized_metrics",
    "to_array",
]

MatrixLike = Sequence[Sequence[float | None]] | np.ndarray
Metrics = dict[str, float | None]

METRIC_NAMES: dict[str, tuple[str, ...]] = {
    "continual": ("last", "avg", "aia", "la", "bwt", "fwt", "forgetting", "transfer", "zero_shot", "heldout"),
    "specialized": ("in_domain", "cross", "zero_shot", "heldout"),
    "joint": ("last", "zero_shot", "heldout"),
}
"""Paradigm -> metric names, in display order."""

METRIC_HELP: dict[str, str] = {
    "last": "Mean accuracy on the trained tasks after the final stage",
    "avg": "Mean accuracy over every stage and every trained task",
    "aia": "Average incremental accuracy: mean over stages of the accuracy on the tasks seen so far",
    "la": "Learning accuracy: mean accuracy on each task right after training on it",
    "bwt": "Backward transfer: final minus just-learned accuracy on earlier tasks (negative = forgetting)",
    "fwt": "Forward transfer: accuracy on a task before training on it, minus its zero-shot accuracy",
    "forgetting": "Mean drop from the best earlier accuracy to the final accuracy on earlier tasks",
    "transfer": "Mean accuracy on each task at the stages before it was trained",
    "zero_shot": "Mean zero-shot accuracy of the pre-trained model on the trained tasks",
    "heldout": "Mean accuracy on the held-out (never trained) tasks",
    "in_domain": "Mean accuracy of each specialist on its own task",
    "cross": "Mean accuracy of each specialist on the other trained tasks",
}
"""Metric name -> one-line description (for tooltips and legends)."""

HIGHER_IS_BETTER: dict[str, bool] = {name: name != "forgetting" for name in METRIC_HELP}
"""Metric name -> whether a larger value is better (only ``forgetting`` is lower-is-better)."""


def to_array(matrix: MatrixLike) -> np.ndarray:
    """Convert an accuracy matrix to a 2-D ``float64`` array, with NaN for ``None``.

    ``R[i][j]`` must be ``None``, NaN or a number in ``[0, 1]``.  An empty matrix gives
    an array of shape ``(0, 0)``.  Raises :class:`ValueError` on ragged rows, on a
    matrix that is not 2-D, on non-numeric entries and on values outside ``[0, 1]``
    (infinities included).
    """
    if isinstance(matrix, np.ndarray):
        if matrix.ndim != 2:
            raise ValueError(f"accuracy matrix must be 2-D, got {matrix.ndim} dimension(s)")
        try:
            arr = matrix.astype(np.float64)  # always a copy
        except (TypeError, ValueError) as exc:
            raise ValueError(f"accuracy matrix has non-numeric entries: {exc}") from None
    else:
        rows = list(matrix)
        width = None
        values: list[list[float]] = []
        for i, row in enumerate(rows):
            if isinstance(row, (str, bytes)) or not isinstance(row, Iterable):
                raise ValueError(f"row {i} of the accuracy matrix is not a sequence: {row!r}")
            row = list(row)
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise ValueError(f"ragged accuracy matrix: row {i} has {len(row)} entries, row 0 has {width}")
            out: list[float] = []
            for j, value in enumerate(row):
                if value is None:
                    out.append(math.nan)
                    continue
                try:
                    out.append(float(value))
                except (TypeError, ValueError):
                    raise ValueError(f"R[{i}][{j}] is not a number: {value!r}") from None
            values.append(out)
        arr = np.array(values, dtype=np.float64).reshape(len(values), width or 0)
    bad = ~np.isnan(arr) & ((arr < 0.0) | (arr > 1.0))
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"R[{i}][{j}] = {arr[i, j]!r} is outside [0, 1] (accuracies are fractions)")
    return arr


def _mean(values: Iterable[float | None]) -> float | None:
    """Mean of the non-missing values (nanmean semantics); ``None`` if there are none."""
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    return math.fsum(kept) / len(kept) if kept else None


def _diff(a: float | None, b: float | None) -> float | None:
    """``a - b``, or ``None`` when either side is missing."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return float(a) - float(b)


def _max(values: Iterable[float | None]) -> float | None:
    """Maximum of the non-missing values; ``None`` if there are none."""
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    return max(kept) if kept else None


def _prepare(matrix: MatrixLike, n_trained: int, n_rows: int) -> np.ndarray:
    """Validate ``matrix`` and ``n_trained`` and pad the matrix with NaN rows to ``n_rows`` rows."""
    if isinstance(n_trained, bool) or not isinstance(n_trained, (int, np.integer)) or n_trained < 0:
        raise ValueError(f"n_trained must be a non-negative integer, got {n_trained!r}")
    arr = to_array(matrix)
    if arr.shape == (0, 0):
        arr = np.empty((0, int(n_trained)))
    if n_trained > arr.shape[1]:
        raise ValueError(f"n_trained = {n_trained} but the accuracy matrix has only {arr.shape[1]} column(s)")
    if arr.shape[0] > n_rows:
        raise ValueError(f"accuracy matrix has {arr.shape[0]} rows, at most {n_rows} expected")
    pad = np.full((n_rows - arr.shape[0], arr.shape[1]), np.nan)
    return np.vstack([arr, pad])


def _stages_done(R: np.ndarray, n_trained: int) -> int:
    """Index of the last row among ``1..n_trained`` with a non-missing trained entry (0 if none)."""
    for i in range(n_trained, 0, -1):
        if not np.isnan(R[i, :n_trained]).all():
            return i
    return 0


def continual_metrics(matrix: MatrixLike, n_trained: int) -> Metrics:
    """Metrics of a continual (sequential fine-tuning) run; tasks ``j`` are 1-based.

    With ``T`` the number of stages done (see below) and ``j`` ranging over the
    trained tasks ``1..T``:

    - ``last`` = mean_j R[T][j]
    - ``avg`` = mean of R[i][j] over i = 1..T and j = 1..T
    - ``aia`` = mean_{i=1..T} ( mean_{j <= i} R[i][j] )
    - ``la`` = mean_j R[j][j]
    - ``bwt`` = mean_{j < T} ( R[T][j] - R[j][j] )
    - ``fwt`` = mean_{1 < j <= T} ( R[j-1][j] - R[0][j] )
    - ``forgetting`` = mean_{j < T} ( max_{j <= l < T} R[l][j] - R[T][j] )
    - ``transfer`` = mean_{1 < j <= T} ( mean_{1 <= i < j} R[i][j] )
    - ``zero_shot`` = mean of R[0][j] over *all* ``n_trained`` trained tasks
    - ``heldout`` = mean of R[T][h] over the held-out columns h

    Partial runs (still going, cancelled or failed): ``T`` is the index of the last
    row among ``1..n_trained`` that has at least one non-missing trained entry, so a
    finished run has ``T = n_trained`` and the metrics describe "the sequence so far".
    Tasks not yet trained (j > T) are left out of every metric except ``zero_shot``.
    With ``T = 0`` (nothing trained yet) every metric is ``None`` except
    ``zero_shot`` and ``heldout``, which then uses row 0.  Rows past the matrix end
    count as missing.  Raises :class:`ValueError` for a matrix with more than
    ``n_trained + 1`` rows, fewer than ``n_trained`` columns, or bad entries.
    """
    R = _prepare(matrix, n_trained, n_trained + 1)
    T = _stages_done(R, n_trained)

    def r(i: int, j: int) -> float:
        return float(R[i, j - 1])

    tasks = range(1, T + 1)
    return {
        "last": _mean(r(T, j) for j in tasks),
        "avg": _mean(r(i, j) for i in tasks for j in tasks),
        "aia": _mean(_mean(r(i, j) for j in range(1, i + 1)) for i in tasks),
        "la": _mean(r(j, j) for j in tasks),
        "bwt": _mean(_diff(r(T, j), r(j, j)) for j in range(1, T)),
        "fwt": _mean(_diff(r(j - 1, j), r(0, j)) for j in range(2, T + 1)),
        "forgetting": _mean(_diff(_max(r(l, j) for l in range(j, T)), r(T, j)) for j in range(1, T)),
        "transfer": _mean(_mean(r(i, j) for i in range(1, j)) for j in range(2, T + 1)),
        "zero_shot": _mean(R[0, :n_trained]),
        "heldout": _mean(R[T, n_trained:]),
    }


def specialized_metrics(matrix: MatrixLike, n_trained: int) -> Metrics:
    """Metrics of a specialized run: row ``i`` (1..T) is the model fine-tuned only on task ``i``.

    With ``T = n_trained`` and ``j`` ranging over the trained tasks ``1..T``:

    - ``in_domain`` = mean_j R[j][j]
    - ``cross`` = mean of R[i][j] over i = 1..T, j = 1..T, i != j
    - ``zero_shot`` = mean_j R[0][j]
    - ``heldout`` = mean of R[i][h] over i = 1..T and the held-out columns h

    Specialists are independent, so a partial run simply has missing rows (skipped).
    Raises :class:`ValueError` for more than ``n_trained + 1`` rows or bad entries.
    """
    R = _prepare(matrix, n_trained, n_trained + 1)
    tasks = range(1, n_trained + 1)
    return {
        "in_domain": _mean(float(R[j, j - 1]) for j in tasks),
        "cross": _mean(float(R[i, j - 1]) for i in tasks for j in tasks if i != j),
        "zero_shot": _mean(R[0, :n_trained]),
        "heldout": _mean(R[1:, n_trained:].ravel()),
    }


def joint_metrics(matrix: MatrixLike, n_trained: int) -> Metrics:
    """Metrics of a joint run: row 0 is zero-shot, row 1 the model trained on the union of tasks.

    - ``last`` = mean_j R[1][j] over the trained tasks j
    - ``zero_shot`` = mean_j R[0][j] over the trained tasks j
    - ``heldout`` = mean of R[1][h] over the held-out columns h

    A missing row 1 (training not finished) makes ``last`` and ``heldout`` ``None``.
    Raises :class:`ValueError` for more than 2 rows or bad entries.
    """
    R = _prepare(matrix, n_trained, 2)
    return {
        "last": _mean(R[1, :n_trained]),
        "zero_shot": _mean(R[0, :n_trained]),
        "heldout": _mean(R[1, n_trained:]),
    }


_DISPATCH = {
    "continual": continual_metrics,
    "specialized": specialized_metrics,
    "joint": joint_metrics,
}


def compute_metrics(matrix: MatrixLike, paradigm: str, n_trained: int) -> Metrics:
    """Compute the metrics of ``paradigm`` (keys in the order of ``METRIC_NAMES[paradigm]``).

    Dispatches to :func:`continual_metrics`, :func:`specialized_metrics` or
    :func:`joint_metrics`, whose docstrings give the formulas.  Raises
    :class:`ValueError` for an unknown paradigm.
    """
    try:
        fn = _DISPATCH[paradigm]
    except (KeyError, TypeError):
        raise ValueError(f"unknown paradigm {paradigm!r} (expected one of: {', '.join(METRIC_NAMES)})") from None
    return fn(matrix, n_trained)
