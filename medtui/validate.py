"""Checking a run config before anything is stored or launched (torch-free; used by the CLI and the app)."""

from __future__ import annotations

from dataclasses import replace

from medtui.config import RunConfig, resolve
from medtui.data.registry import TaskRegistry
from medtui.models.catalog import check_lora_targets, check_model


def check_config(config: RunConfig) -> RunConfig:
    """Resolve ``config`` and check its task names and model; returns it with the data dir filled in.

    Raises a one-line :class:`~medtui.errors.UsageError` subclass naming the problem.
    """
    cfg = resolve(config)
    registry = TaskRegistry(cfg.data_dir, cfg.user_tasks)
    for name in cfg.columns:
        registry.get(name)
    check_model(cfg.model)
    if cfg.tune == "lora":
        check_lora_targets(cfg.model, cfg.lora_targets)
    return replace(cfg, data_dir=str(registry.data_dir))


def task_notes(config: RunConfig) -> list[str]:
    """One-line notes about the run's tasks worth saying once (e.g. a user task without a validation split)."""
    registry = TaskRegistry(config.data_dir, config.user_tasks)
    return [str(note) for name in config.columns if (note := registry.get(name).options.get("note"))]
