"""A study's declaration: a base run config, a grid of axes, seeds and task orders, read from TOML.

A study file is a run-config TOML (every key of :class:`~medtui.config.RunConfig`, plus
``[[task]]`` tables) with a ``[study]`` table::

    [study]
    name = "rehearsal-sweep"
    seeds = [0, 1, 2]
    [study.grid]                 # any run-config key; each combination is one cell
    paradigm = ["specialized", "joint", "continual"]
    buffer_size = [0, 100, 500]
    [study.orders]               # optional task orders of the sequence
    count = 2                    # the given order + 1 seeded permutation (or: lists = [[...], ...])

Everything is checked here, before anything is stored: unknown keys, empty axes, values
invalid for their key (each value is applied to the base config and checked), orders that
are not permutations of the sequence. Errors are one-line :class:`~medtui.errors.ConfigError`.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from medtui.config import FIELD_NAMES, RunConfig, _close, from_mapping, read_toml
from medtui.errors import ConfigError

_STUDY_KEYS = ("name", "seeds", "grid", "orders", "description")
_ORDER_KEYS = ("count", "lists", "seed")
#: Keys that make no sense as axes: they name or place a run rather than define its experiment.
_NOT_AXES = ("name", "seed", "user_tasks")
MAX_RUNS = 100_000
#: key -> (the key it depends on, the values of that key under which it has an effect). Keys not
#: listed always apply. Keys absent from the run config (a feature not installed) are ignored.
APPLIES_WHEN: dict[str, tuple[str, tuple[Any, ...]]] = {
    "buffer_size": ("paradigm", ("continual",)),
    "method": ("paradigm", ("continual",)),
    "method_opts": ("paradigm", ("continual",)),
    "joint_sampling": ("paradigm", ("joint",)),
    "text_lr_scale": ("tune", ("full", "lora")),
    "lora_rank": ("tune", ("lora",)),
    "lora_alpha": ("tune", ("lora",)),
    "lora_targets": ("tune", ("lora",)),
}


@dataclass(frozen=True)
class StudySpec:
    """A parsed study: its name, base config, axes (key -> values, in file order), seeds and orders.

    ``orders`` holds explicit task orders (``None``: the base order plus ``order_count - 1``
    permutations drawn with ``order_seed``, computed at expansion).
    """

    name: str
    base: RunConfig
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    seeds: tuple[int, ...] = (0,)
    order_count: int = 1
    orders: tuple[tuple[str, ...], ...] | None = None
    order_seed: int = 0
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (what the ``studies`` table stores; :func:`from_json` reads it)."""
        return {
            "name": self.name,
            "base": self.base.to_dict(),
            "grid": {k: list(v) for k, v in self.axes},
            "seeds": list(self.seeds),
            "orders": {"count": self.order_count, "lists": [list(o) for o in self.orders] if self.orders else None, "seed": self.order_seed},
            "description": self.description,
        }

    def canonical(self) -> str:
        """A canonical JSON string: two specs are the same study when these are equal."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def from_json(data: Mapping[str, Any]) -> StudySpec:
    """A spec from :meth:`StudySpec.to_json` output (as stored)."""
    orders = data.get("orders") or {}
    lists = orders.get("lists")
    return StudySpec(
        name=data["name"],
        base=from_mapping(data["base"], origin=f"study {data['name']}"),
        axes=tuple((k, tuple(_freeze(v) for v in vs)) for k, vs in (data.get("grid") or {}).items()),
        seeds=tuple(data.get("seeds") or (0,)),
        order_count=int(orders.get("count") or 1),
        orders=tuple(tuple(o) for o in lists) if lists else None,
        order_seed=int(orders.get("seed") or 0),
        description=data.get("description") or "",
    )


def _freeze(v: Any) -> Any:
    """Lists become tuples (axis values must be hashable to collapse duplicates)."""
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _thaw(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


def _check_int_list(origin: str, key: str, value: Any, minimum: int = 0) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{origin}: study.{key} must be a non-empty list of integers")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"{origin}: study.{key} must hold integers >= {minimum}, got {v!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{origin}: study.{key} lists a value twice")
    return tuple(value)


def parse_study(data: Mapping[str, Any], origin: str = "study", name: str | None = None) -> StudySpec:
    """Build and check a spec from a parsed TOML mapping (``[study]`` plus run-config keys)."""
    data = dict(data)
    table = data.pop("study", None)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{origin}: no [study] table (a study file is a run config plus a [study] table)")
    for k in table:
        if k not in _STUDY_KEYS:
            raise ConfigError(f"{origin}: unknown key study.{k}{_close(k, _STUDY_KEYS)}")
    base = from_mapping(data, origin=origin)
    study_name = name or table.get("name")
    if not isinstance(study_name, str) or not study_name.strip():
        raise ConfigError(f"{origin}: study.name must be a non-empty string")
    study_name = study_name.strip()
    if len(study_name) > 60 or study_name.isdigit() or any(ch in study_name for ch in "\n\t/"):
        raise ConfigError(f"{origin}: study name {study_name!r} must be 1-60 characters, not all digits, without '/'")
    seeds = _check_int_list(origin, "seeds", table["seeds"]) if "seeds" in table else (base.seed,)

    grid = table.get("grid", {})
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{origin}: study.grid must be a table of key = [values]")
    axes: list[tuple[str, tuple[Any, ...]]] = []
    for raw_key, values in grid.items():
        key = "user_tasks" if raw_key == "task" else raw_key.replace("-", "_")
        if key not in FIELD_NAMES:
            raise ConfigError(f"{origin}: unknown grid key {raw_key!r}{_close(key, FIELD_NAMES)}")
        if key in _NOT_AXES:
            hint = " (use study.seeds)" if key == "seed" else ""
            raise ConfigError(f"{origin}: {raw_key!r} cannot be a grid axis{hint}")
        if not isinstance(values, list):
            raise ConfigError(f"{origin}: grid axis {raw_key!r} must be a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"{origin}: grid axis {raw_key!r} is empty: give at least one value")
        frozen = tuple(_freeze(v) for v in values)
        if len(set(frozen)) != len(frozen):
            raise ConfigError(f"{origin}: grid axis {raw_key!r} lists a value twice")
        for v in values:
            check_value(base, key, v, f"{origin}: grid axis {raw_key!r}")
        axes.append((key, frozen))

    orders_t = table.get("orders", {})
    if not isinstance(orders_t, Mapping):
        raise ConfigError(f"{origin}: study.orders must be a table (count = N, or lists = [[...], ...])")
    for k in orders_t:
        if k not in _ORDER_KEYS:
            raise ConfigError(f"{origin}: unknown key study.orders.{k}{_close(k, _ORDER_KEYS)}")
    order_seed = orders_t.get("seed", 0)
    if isinstance(order_seed, bool) or not isinstance(order_seed, int):
        raise ConfigError(f"{origin}: study.orders.seed must be an integer")
    orders: tuple[tuple[str, ...], ...] | None = None
    count = 1
    if "lists" in orders_t:
        lists = orders_t["lists"]
        if not isinstance(lists, list) or not lists or not all(isinstance(o, list) for o in lists):
            raise ConfigError(f"{origin}: study.orders.lists must be a non-empty list of task lists")
        if any("tasks" == k for k, _ in axes):
            raise ConfigError(f"{origin}: study.orders.lists cannot go with a 'tasks' grid axis (use orders.count)")
        for o in lists:
            if sorted(o) != sorted(base.tasks) or len(o) != len(base.tasks):
                raise ConfigError(f"{origin}: task order {o!r} is not a permutation of the sequence {list(base.tasks)!r}")
        orders = tuple(tuple(o) for o in lists)
        if len(set(orders)) != len(orders):
            raise ConfigError(f"{origin}: study.orders.lists lists an order twice")
        count = len(orders)
    elif "count" in orders_t:
        count = orders_t["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"{origin}: study.orders.count must be an integer >= 1, got {count!r}")
        sequences = [v for k, vs in axes if k == "tasks" for v in vs] or [base.tasks]
        shortest = min(len(s) for s in sequences)
        if count > math.factorial(shortest):
            raise ConfigError(f"{origin}: study.orders.count {count} exceeds the {math.factorial(shortest)} orders of {shortest} tasks")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{origin}: study.description must be a string")
    return StudySpec(
        name=study_name, base=base, axes=tuple(axes), seeds=seeds, order_count=count, orders=orders,
        order_seed=order_seed, description=description,
    )


def check_value(base: RunConfig, key: str, value: Any, origin: str) -> None:
    """Raise ConfigError unless ``value`` is a valid value of run-config ``key`` (type and range).

    The value is judged where it applies (a buffer size under the continual protocol), with
    the keys that then do not apply collapsed, exactly as the expansion will.
    """
    from medtui.config import resolve

    cfg = from_mapping({key: value}, base=base, origin=origin)
    if key in APPLIES_WHEN:
        gate, allowed = APPLIES_WHEN[key]
        cfg = replace(cfg, **{gate: allowed[0]})
    try:
        resolve(collapse(cfg))
    except ConfigError as e:
        raise ConfigError(f"{origin}: value {_thaw(value)!r}: {e}") from None


def applies(config: RunConfig, key: str) -> bool:
    """Whether run-config ``key`` has an effect on ``config`` (buffer size: continual only, ...)."""
    rule = APPLIES_WHEN.get(key)
    return rule is None or getattr(config, rule[0]) in rule[1]


def collapse(config: RunConfig) -> RunConfig:
    """``config`` with every key that does not apply to it reset to its default (one cell, not duplicates)."""
    defaults = RunConfig()
    reset = {k: getattr(defaults, k) for k in APPLIES_WHEN if k in FIELD_NAMES and not applies(config, k)}
    return replace(config, **reset) if reset else config


def load_study(path: str | Path, name: str | None = None) -> StudySpec:
    """Read a study TOML file (relative ``[[task]]`` paths resolve against its folder)."""
    data = read_toml(path, "study")
    return parse_study(data, origin=Path(path).name, name=name)


def _form_values(key: str, text: str, origin: str) -> list[Any]:
    """The values of one axis line: ``0, 200, 500`` (TOML scalars, else bare strings) or a TOML array."""
    import tomllib

    from medtui.methods import parse_value

    text = text.strip()
    if text.startswith("["):
        try:
            values = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{origin}: axis {key!r}: {text!r} is not a TOML array ({str(e).splitlines()[0]})") from None
        return list(values)
    values = [parse_value(v.strip()) for v in text.split(",")]
    if any(v == "" for v in values):
        raise ConfigError(f"{origin}: axis {key!r} has an empty value in {text!r}")
    return values


def study_from_form(base: RunConfig, name: str, seeds: str, grid: str, orders: str = "1") -> StudySpec:
    """A study typed into the app: ``base`` (the new-experiment form's config), a name, seeds as
    ``0, 1, 2``, one axis a line as ``key = v1, v2`` (or ``key = [TOML array]``; blank lines and
    ``#`` comments are skipped) and a number of task orders. Checked exactly as a study file is
    (:func:`parse_study`); errors are one-line :class:`ConfigError`.
    """
    origin = "study"
    if not name.strip():
        raise ConfigError(f"{origin}: give the study a name")
    seed_list: list[int] = []
    for part in (p.strip() for p in seeds.split(",")):
        if not part.isdigit():
            raise ConfigError(f"{origin}: seeds must be whole numbers separated by commas (e.g. 0, 1, 2), got {seeds.strip()!r}")
        seed_list.append(int(part))
    axes: dict[str, list[Any]] = {}
    for n, line in enumerate(grid.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, values = line.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"{origin}: grid line {n} {line!r}: expected KEY = v1, v2 (e.g. buffer_size = 0, 200, 500)")
        if key in axes:
            raise ConfigError(f"{origin}: grid axis {key!r} is given twice")
        axes[key] = _form_values(key, values, origin)
    count = orders.strip() or "1"
    if not count.isdigit():
        raise ConfigError(f"{origin}: task orders must be a whole number >= 1, got {count!r}")
    data = {k: v for k, v in base.to_dict().items() if v is not None}
    data["study"] = {"name": name, "seeds": seed_list, "grid": axes, "orders": {"count": int(count)}}
    return parse_study(data, origin=origin)
