"""Helpers imported by tests (``from helpers import ...``)."""

from __future__ import annotations

from dataclasses import replace

from medtui.config import RunConfig, resolve


def fast_config(**overrides: object) -> RunConfig:
    """A two-task synthetic run small enough to finish in a few seconds on CPU."""
    base = RunConfig(
        tasks=("synth-cxr-a", "synth-derm"),
        epochs=1,
        batch_size=32,
        max_train=96,
        max_test=48,
        device="cpu",
        keep_checkpoints=1,
    )
    return resolve(replace(base, **overrides))
