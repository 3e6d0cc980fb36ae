"""The task registry: every task medtui knows by name, and how to load it.

Three sources: the built-in synthetic tasks (``synth-…``), the 2D MedMNIST sets
(``pneumoniamnist``, ``pneumoniamnist_64``, …) looked up in a data directory, and
user tasks declared in TOML (``[[task]]`` tables). Listing is cheap and torch-free;
loading decodes a task once into ``uint8`` arrays.
"""

from __future__ import annotations

import difflib
import os
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from medtui.data.base import Split, TaskData, TaskSpec
from medtui.errors import DataError, UnknownTaskError


def default_data_dir() -> Path:
    """Where MedMNIST files are looked up: ``$MEDTUI_DATA_DIR`` or the user cache dir."""
    env = os.environ.get("MEDTUI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("medtui")) / "medmnist"


class TaskRegistry:
    """All known tasks; ``get`` a spec by name, ``load`` its data.

    ``user_tasks`` are ``[[task]]`` tables (see :mod:`medtui.data.user`); they may
    not reuse a built-in name.
    """

    def __init__(self, data_dir: str | Path | None = None, user_tasks: Iterable[Mapping[str, Any]] = ()) -> None:
        from medtui.data import medmnist, synthetic, user

        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
        self._specs: dict[str, TaskSpec] = {}
        for spec in synthetic.SYNTHETIC_SPECS:
            self._specs[spec.name] = spec
        for spec in medmnist.medmnist_specs():
            self._specs[spec.name] = spec
        self._refused: dict[str, str] = dict(medmnist.REFUSED)
        for table in user_tasks:
            spec = user.parse_task_table(dict(table), Path.cwd(), "config")
            if spec.name in self._specs or spec.name in self._refused:
                raise DataError(f"user task {spec.name!r} clashes with a built-in task name")
            self._specs[spec.name] = spec

    def specs(self) -> list[TaskSpec]:
        """Every known task spec, built-in order first, then user tasks."""
        return list(self._specs.values())

    def names(self) -> list[str]:
        """Every known task name."""
        return list(self._specs)

    def get(self, name: str) -> TaskSpec:
        """The spec called ``name``; an unknown name raises with close matches listed."""
        if name in self._specs:
            return self._specs[name]
        if name in self._refused:
            raise DataError(self._refused[name])
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see `medtui datasets`)"
        raise UnknownTaskError(f"unknown task {name!r}{hint}")

    def available(self, spec: TaskSpec) -> bool:
        """Whether the task can be loaded without a download."""
        if spec.source == "medmnist":
            from medtui.data import medmnist

            return medmnist.locate(spec, self.data_dir) is not None
        return True

    def load(
        self,
        name: str,
        *,
        download: bool = True,
        max_train: int | None = None,
        max_test: int | None = None,
        seed: int = 0,
        shots: int = 0,
    ) -> TaskData:
        """Decode task ``name`` into memory; optionally cap train/test with a stratified subsample.

        ``shots`` K > 0 first keeps K training samples per class (all of a class that has fewer),
        drawn with ``seed``; ``max_train`` then caps what is left.
        """
        spec = self.get(name)
        if spec.source == "synthetic":
            from medtui.data import synthetic

            data = synthetic.generate(spec)
        elif spec.source == "medmnist":
            from medtui.data import medmnist

            data = medmnist.load_medmnist(spec, self.data_dir, download=download)
        else:
            from medtui.data import user

            data = user.load_user_task(spec)
        if "train" not in data.splits or "test" not in data.splits:
            raise DataError(f"task {name!r} needs a train and a test split")
        if shots > 0:
            data.splits["train"] = few_shot_subsample(data.splits["train"], shots, seed, name)
        for split, cap in (("train", max_train), ("test", max_test)):
            if cap is not None and len(data.splits[split]) > cap:
                data.splits[split] = stratified_subsample(data.splits[split], cap, seed)
        return data


def stratified_subsample(split: Split, n: int, seed: int) -> Split:
    """Keep ``n`` samples with class proportions preserved (largest-remainder rounding), seeded.

    The kept samples stay in their original order so that loading is reproducible.
    """
    labels = split.labels
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (n / len(labels))
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n - int(take.sum())]:
        take[i] += 1
    rng = np.random.default_rng([seed, 7919])
    keep = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, size=int(k), replace=False))
    order = np.sort(np.concatenate(keep))
    return Split(images=split.images[order], labels=labels[order])


def few_shot_subsample(split: Split, shots: int, seed: int, task: str = "") -> Split:
    """Keep ``shots`` samples of every class (all of a class with fewer), uniformly at random, seeded.

    The draw depends on ``seed`` and the task name, so two tasks of one run draw independently
    and the same (seed, task) always keeps the same samples; kept samples stay in file order.
    """
    rng = np.random.default_rng([seed, zlib.crc32(task.encode()), 104729])
    keep = []
    for c in np.unique(split.labels):
        idx = np.flatnonzero(split.labels == c)
        keep.append(idx if len(idx) <= shots else rng.choice(idx, size=shots, replace=False))
    order = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return Split(images=split.images[order], labels=split.labels[order])
