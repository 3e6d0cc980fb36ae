"""Core data types shared by every task source.

A :class:`TaskSpec` describes a task (cheap, no pixel data, no torch); loading it
gives a :class:`TaskData` whose splits hold decoded ``uint8`` arrays in memory.
Images are always ``N x H x W x C`` (``C`` is 1 or 3), labels ``int64`` of shape ``N``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class TaskSpec:
    """A labelled image-classification task: its classes, prompts and where its data comes from.

    ``templates`` are prompt templates with one ``{}`` placeholder for the class name.
    ``source`` is one of ``synthetic``, ``medmnist``, ``npz``, ``folder``, ``csv``;
    ``options`` holds source-specific settings (file path, seed, size, ...).
    """

    name: str
    domain: str
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    source: str
    image_size: int
    channels: int
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def prompts(self) -> list[list[str]]:
        """Prompts per class: ``prompts()[c][t]`` is template ``t`` filled with class ``c``."""
        return [[t.format(c) for t in self.templates] for c in self.classes]


@dataclass
class Split:
    """One split of a task: ``images`` uint8 ``N x H x W x C``, ``labels`` int64 ``N``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class TaskData:
    """A loaded task: its spec and its splits (``train`` and ``test`` always, ``val`` when present)."""

    spec: TaskSpec
    splits: dict[str, Split]

    def fingerprint(self) -> str:
        """A short content hash of all splits (images and labels), stored with every run."""
        h = hashlib.sha1()
        for name in sorted(self.splits):
            s = self.splits[name]
            h.update(name.encode())
            h.update(str(s.images.shape).encode())
            h.update(np.ascontiguousarray(s.images).tobytes())
            h.update(np.ascontiguousarray(s.labels.astype(np.int64)).tobytes())
        return h.hexdigest()[:16]

    def counts(self) -> dict[str, list[int]]:
        """Samples per class for each split."""
        n = self.spec.n_classes
        return {k: np.bincount(s.labels, minlength=n).tolist() for k, s in self.splits.items()}


def validate_split(task: str, split: str, images: np.ndarray, labels: np.ndarray, n_classes: int) -> Split:
    """Check and normalise one split's arrays; raise :class:`~medtui.errors.DataError` naming the problem.

    Accepts images ``N x H x W`` or ``N x H x W x C`` (``C`` in 1, 3) and labels ``N`` or ``N x 1``.
    """
    from medtui.errors import DataError

    if images.dtype != np.uint8:
        raise DataError(f"task {task!r}: {split} images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"task {task!r}: {split} images must be N x H x W [x 1|3], got shape {images.shape}")
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"task {task!r}: {split} labels must be N or N x 1 (single-label), got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"task {task!r}: {split} has {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(
            f"task {task!r}: {split} labels must be in 0..{n_classes - 1}, found {int(labels.min())}..{int(labels.max())}"
        )
    return Split(images=np.ascontiguousarray(images), labels=labels.astype(np.int64))
