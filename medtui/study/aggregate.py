"""Aggregating a study: per cell, every metric's mean ± sample std over its finished runs, and the mean matrix.

Only finished runs are aggregated (a running run's metrics describe "the sequence so far");
each cell says how many runs it plans and how many it holds, and every metric carries its
own ``n`` (a metric missing from a run, e.g. ``heldout`` without held-out tasks, is not
counted). The std is the sample standard deviation (ddof = 1), ``None`` when n < 2.

Matrices are averaged cell-wise by position: ``R[i][j]`` is the accuracy after stage *i* on
the *j*-th task of that run's sequence, so runs with different task orders average as the
continual-learning literature reports them; when every run of a cell has the same order the
rows and columns keep their task names, otherwise they are ``stage i`` / ``task j``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np

from medtui.metrics import METRIC_NAMES
from medtui.store.store import Store
from medtui.study.expand import Plan, expand, jsonable
from medtui.study.spec import StudySpec
from medtui.study.store import get_study, study_runs, study_spec

_ORDER = [m for p in ("continual", "specialized", "joint") for m in METRIC_NAMES[p]]
METRIC_ORDER: list[str] = list(dict.fromkeys(_ORDER))
"""Every metric name in display order (continual first)."""


def stats(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "std", "n"}`` over the non-missing values; std with ddof = 1 (None when n < 2)."""
    xs = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(xs)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def _matrix_stats(mats: list[list[list[float | None]]]) -> tuple[list[list[float | None]], list[list[float | None]], list[list[int]]]:
    """Cell-wise mean, sample std (ddof = 1; None when n < 2) and n of same-position entries (numpy: 500 runs stay fast)."""
    rows = max((len(m) for m in mats), default=0)
    cols = max((len(r) for m in mats for r in m), default=0)
    a = np.full((len(mats), rows, cols), np.nan)
    for k, m in enumerate(mats):
        for i, row in enumerate(m):
            a[k, i, : len(row)] = [np.nan if v is None else v for v in row]
    ok = ~np.isnan(a)
    n = ok.sum(axis=0)
    total = np.where(ok, a, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.full((rows, cols), np.nan), where=n > 0)
    sq = np.where(ok, (a - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(sq, n - 1, out=np.full((rows, cols), np.nan), where=n > 1))

    def listed(x: np.ndarray) -> list[list[float | None]]:
        return [[None if np.isnan(v) else float(v) for v in row] for row in x.tolist()]

    return listed(mean), listed(std), n.astype(int).tolist()


def _labels(runs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    if not runs:
        return [], []
    first = runs[0]
    rows, cols = list(first["rows"]), list(first["tasks"]) + list(first["heldout"])
    same = all(list(r["rows"]) == rows and list(r["tasks"]) + list(r["heldout"]) == cols for r in runs)
    if same:
        return rows, cols
    n_t = len(first["tasks"])
    return ["zero-shot"] + [f"stage {i}" for i in range(1, len(rows))], [f"task {j + 1}" for j in range(n_t)] + list(first["heldout"])


def matrices(store: Store, run_ids: list[int], runs: dict[int, dict[str, Any]]) -> dict[int, list[list[float | None]]]:
    """Accuracy matrices of ``run_ids`` from one query (columns: the run's tasks then held-out tasks)."""
    out: dict[int, list[list[float | None]]] = {}
    index: dict[int, dict[str, int]] = {}
    for rid in run_ids:
        r = runs[rid]
        cols = list(r["tasks"]) + list(r["heldout"])
        index[rid] = {c: j for j, c in enumerate(cols)}
        out[rid] = [[None] * len(cols) for _ in r["rows"]]
    if not run_ids:
        return out
    marks = ",".join("?" * len(run_ids))
    for rid, row, task, acc in store.db.execute(f"select run_id, row, task, accuracy from evaluations where run_id in ({marks})", run_ids):
        j = index[rid].get(task)
        if j is not None and row < len(out[rid]):
            out[rid][row][j] = acc
    return out


def aggregate_runs(plan: Plan | None, runs: list[dict[str, Any]], mats: dict[int, list[list[float | None]]]) -> list[dict[str, Any]]:
    """Cells of a study from its runs (rows of :func:`~medtui.study.store.study_runs`) and their matrices.

    Cells come in the plan's order; runs whose cell the plan does not have (a spec replaced
    with ``--force``) form cells of their own after them, with ``planned`` None.
    """
    cells: dict[str, dict[str, Any]] = {}
    if plan is not None:
        per_cell: dict[int, int] = {}
        for r in plan.runs:
            per_cell[r.cell] = per_cell.get(r.cell, 0) + 1
        for c in plan.cells:
            cells[c.key] = {"values": c.values, "planned": per_cell.get(c.index, 0), "paradigm": c.config.paradigm, "runs": []}
    for r in runs:
        values = (r["key"] or {}).get("values", {})
        key = json.dumps(values, sort_keys=True)
        cell = cells.setdefault(key, {"values": values, "planned": None, "paradigm": r["paradigm"], "runs": []})
        cell["runs"].append(r)
    out = []
    for cell in cells.values():
        finished = [r for r in cell["runs"] if r["status"] == "finished"]
        status: dict[str, int] = {}
        for r in cell["runs"]:
            status[r["status"]] = status.get(r["status"], 0) + 1
        names = [m for m in METRIC_NAMES.get(cell["paradigm"], METRIC_ORDER)]
        metrics = {m: stats((r["metrics"] or {}).get(m) for r in finished) for m in names}
        mean, std, count = _matrix_stats([mats[r["id"]] for r in finished if r["id"] in mats])
        rows, cols = _labels(finished)
        planned = cell["planned"]
        out.append(
            {
                "values": cell["values"],
                "paradigm": cell["paradigm"],
                "n": len(finished),
                "planned": planned,
                "complete": planned is not None and len(finished) >= planned > 0,
                "status": status,
                "run_ids": [r["id"] for r in finished],
                "all_run_ids": [r["id"] for r in cell["runs"]],
                "metrics": metrics,
                "matrix_mean": mean,
                "matrix_std": std,
                "matrix_n": count,
                "rows": rows,
                "columns": cols,
                "heldout": list(finished[0]["heldout"]) if finished else [],
            }
        )
    return out


def varying_axes(spec: StudySpec, cells: list[dict[str, Any]]) -> list[str]:
    """Axes whose values differ between cells."""
    return [k for k, _ in spec.axes if len({json.dumps(c["values"].get(k), sort_keys=True) for c in cells}) > 1]


def cell_label(cell: dict[str, Any], axes: list[str]) -> str:
    """``continual · 100``: the varying values of a cell, ``—`` for an axis that does not apply."""
    return " · ".join("—" if cell["values"].get(k) is None else str(jsonable(cell["values"][k])) for k in axes) or "all"


def aggregate(store: Store, ref: str | int) -> dict[str, Any]:
    """The aggregated results of a study (what ``medtui study show --json`` prints)."""
    study = get_study(store, ref)
    spec = study_spec(store, study)
    runs = study_runs(store, study["id"])
    by_id = {r["id"]: r for r in runs}
    finished = [r["id"] for r in runs if r["status"] == "finished"]
    plan = expand(spec, check=False)
    cells = aggregate_runs(plan, runs, matrices(store, finished, by_id))
    varying = varying_axes(spec, cells)
    status: dict[str, int] = {}
    for r in runs:
        status[r["status"]] = status.get(r["status"], 0) + 1
    present = {m for c in cells for m, s in c["metrics"].items() if s["n"]}
    return {
        "study": study["name"],
        "id": study["id"],
        "runs": len(runs),
        "planned": len(plan.runs),
        "status": status,
        "axes": [k for k, _ in spec.axes],
        "varying": varying,
        "metric_names": [m for m in METRIC_ORDER if m in present],
        "cells": [{**c, "label": cell_label(c, varying)} for c in cells],
    }
