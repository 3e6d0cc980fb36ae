"""Expanding a study into cells and runs: cells = the grid's combinations, runs = cells × seeds × orders.

Keys that do not apply to a combination (a buffer size under the joint protocol) are reset to
their default and shown as ``None`` in the cell's values, so such combinations fall into one
cell instead of making duplicate runs. Task orders apply to the continual protocol only (the
union of joint, and specialists trained each from the same start, do not depend on it).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import dataclass, replace
from typing import Any

from medtui.config import RunConfig, from_mapping, resolve
from medtui.errors import ConfigError, UsageError
from medtui.study.spec import MAX_RUNS, StudySpec, _thaw, applies, collapse

_SAFE = re.compile(r"[^A-Za-z0-9._+@:-]+")


@dataclass(frozen=True)
class Cell:
    """One combination of axis values (``None``: the axis does not apply to this combination)."""

    index: int
    values: dict[str, Any]
    config: RunConfig
    orders: tuple[tuple[str, ...], ...]

    @property
    def key(self) -> str:
        """Canonical JSON of the values (cells are equal when their keys are)."""
        return json.dumps(self.values, sort_keys=True)

    def label(self, axes: list[str] | None = None) -> str:
        """``paradigm continual · buffer_size 100`` (only ``axes``, default all applying ones)."""
        keys = axes if axes is not None else list(self.values)
        parts = [f"{k} {jsonable(self.values[k])}" for k in keys if self.values.get(k) is not None]
        return " · ".join(parts) or "all"


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: its cell, seed, order number and resolved config."""

    cell: int
    seed: int
    order: int
    config: RunConfig
    values: dict[str, Any]

    @property
    def key(self) -> str:
        """What identifies the run within its study (cell values, seed, task order)."""
        return run_key(self.values, self.seed, list(self.config.tasks))


@dataclass(frozen=True)
class Plan:
    """The expansion of a spec: its cells and its runs, in a stable order."""

    spec: StudySpec
    cells: list[Cell]
    runs: list[PlannedRun]

    @property
    def varying(self) -> list[str]:
        """Axes whose value differs between cells (what a row of the results table names)."""
        return [k for k, _ in self.spec.axes if len({json.dumps(c.values.get(k), sort_keys=True) for c in self.cells}) > 1]

    def to_json(self) -> dict[str, Any]:
        """What ``medtui study run --dry-run --json`` prints."""
        per_cell: dict[int, list[PlannedRun]] = {}
        for r in self.runs:
            per_cell.setdefault(r.cell, []).append(r)
        return {
            "study": self.spec.name,
            "runs": len(self.runs),
            "axes": [k for k, _ in self.spec.axes],
            "varying": self.varying,
            "cells": [
                {
                    "values": c.values,
                    "label": c.label(self.varying),
                    "n": len(per_cell.get(c.index, [])),
                    "seeds": list(self.spec.seeds),
                    "orders": [list(o) for o in c.orders],
                }
                for c in self.cells
            ],
        }


def jsonable(v: Any) -> Any:
    """Tuples and mappings of a config value as JSON types."""
    if isinstance(v, tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, dict) or hasattr(v, "items"):
        return {k: jsonable(x) for k, x in dict(v).items()}
    return v


def run_key(values: dict[str, Any], seed: int, tasks: list[str]) -> str:
    """The ``study_key`` stored on a run: canonical JSON of its cell values, seed and task order."""
    return json.dumps({"values": values, "seed": seed, "tasks": tasks}, sort_keys=True)


def task_orders(spec: StudySpec, tasks: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The orders of a sequence: explicit lists, or the given order and ``count - 1`` seeded permutations."""
    if spec.orders:
        return spec.orders
    out = [tuple(tasks)]
    if spec.order_count <= 1:
        return tuple(out)
    rng = random.Random(f"{spec.order_seed}:{','.join(tasks)}")
    if math.factorial(len(tasks)) <= 5040:
        perms = [p for p in itertools.permutations(tasks) if p != tuple(tasks)]
        rng.shuffle(perms)
        out += perms[: spec.order_count - 1]
    else:
        seen = set(out)
        while len(out) < spec.order_count:
            p = tuple(rng.sample(list(tasks), len(tasks)))
            if p not in seen:
                seen.add(p)
                out.append(p)
    return tuple(out)


def _name(spec: StudySpec, cell: Cell, varying: list[str], seed: int, order: int, n_orders: int) -> str:
    label = "-".join(_SAFE.sub("_", str(jsonable(cell.values[k]))) for k in varying if cell.values.get(k) is not None)
    tail = f"/s{seed}" + (f"/o{order + 1}" if n_orders > 1 else "")
    name = f"{spec.name}/{label or 'all'}{tail}"
    return name if len(name) <= 80 else f"{spec.name}/c{cell.index + 1}{tail}"[:80]


def expand(spec: StudySpec, check: bool = True) -> Plan:
    """Cells and runs of ``spec``; with ``check``, every cell's config is checked (tasks, model).

    Raises ConfigError naming the combination when one is invalid.
    """
    keys = [k for k, _ in spec.axes]
    n_combos = math.prod(len(v) for _, v in spec.axes)
    if n_combos * len(spec.seeds) * max(spec.order_count, 1) > MAX_RUNS:
        raise ConfigError(f"study {spec.name!r} would have more than {MAX_RUNS:,} runs")
    cells: list[Cell] = []
    seen: set[str] = set()
    for combo in itertools.product(*(v for _, v in spec.axes)):
        updates = {k: _thaw(v) for k, v in zip(keys, combo)}
        cfg = collapse(from_mapping(updates, base=spec.base, origin=f"study {spec.name}"))
        values = {k: jsonable(getattr(cfg, k)) if applies(cfg, k) else None for k in keys}
        key = json.dumps(values, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        what = ", ".join(f"{k}={jsonable(v)}" for k, v in zip(keys, combo)) or "the base config"
        try:
            if check:
                from medtui.validate import check_config

                cfg = check_config(cfg)
            else:
                cfg = resolve(cfg)
        except ConfigError as e:
            raise ConfigError(f"study {spec.name!r}, cell {what}: {e}") from None
        except UsageError as e:  # unknown task/model: keep their one line, name the cell
            raise type(e)(f"study {spec.name!r}, cell {what}: {e}") from None
        orders = task_orders(spec, cfg.tasks) if cfg.paradigm == "continual" else (tuple(cfg.tasks),)
        cells.append(Cell(index=len(cells), values=values, config=cfg, orders=orders))
    plan = Plan(spec=spec, cells=cells, runs=[])
    varying = plan.varying
    for cell in cells:
        for seed in spec.seeds:
            for k, order in enumerate(cell.orders):
                cfg = replace(cell.config, seed=seed, tasks=order, name=_name(spec, cell, varying, seed, k, len(cell.orders)))
                plan.runs.append(PlannedRun(cell=cell.index, seed=seed, order=k, config=cfg, values=cell.values))
    return plan
