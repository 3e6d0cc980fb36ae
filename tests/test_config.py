"""Run configs: defaults, resolution, TOML round trip, one-line errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from medtui.config import DEFAULT_TASKS, LR_FROM_SCRATCH, LR_PRETRAINED, RunConfig, from_mapping, load_toml, resolve, stage_labels, to_toml
from medtui.errors import ConfigError


def test_default_is_the_embedded_synthetic_run() -> None:
    cfg = resolve(RunConfig())
    assert cfg.tasks == DEFAULT_TASKS and cfg.model == "medtui-tiny" and cfg.paradigm == "continual"
    assert cfg.lr == LR_FROM_SCRATCH and cfg.name and cfg.columns == DEFAULT_TASKS


def test_lr_auto_depends_on_weights() -> None:
    assert resolve(RunConfig(model="ViT-B-16", pretrained="openai")).lr == LR_PRETRAINED
    assert resolve(RunConfig(model="hf-hub:org/repo")).lr == LR_PRETRAINED
    assert resolve(RunConfig(lr=0.5)).lr == 0.5
    assert resolve(RunConfig(pretrained="none")).pretrained is None


def test_toml_roundtrip_with_user_tasks(tmp_path: Path) -> None:
    cfg = resolve(
        RunConfig(
            tasks=("synth-cxr-a", "mine"),
            heldout=("synth-blood",),
            buffer_size=50,
            max_train=100,
            user_tasks=({"name": "mine", "domain": "x-ray", "format": "npz", "path": str(tmp_path / "m.npz"), "classes": ["a", "b"]},),
        )
    )
    p = tmp_path / "exp.toml"
    p.write_text(to_toml(cfg))
    assert load_toml(p) == cfg


def test_relative_task_paths_resolve_against_the_toml_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "exp.toml"
    p.write_text('tasks = ["mine"]\n[[task]]\nname = "mine"\ndomain = "x"\nformat = "npz"\npath = "data/m.npz"\nclasses = ["a", "b"]\n')
    cfg = load_toml(p)
    assert cfg.user_tasks[0]["path"] == str((tmp_path / "sub" / "data" / "m.npz").resolve())


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(paradigm="x"), "unknown paradigm"),
        (dict(tune="adapters"), "unknown tuning mode"),
        (dict(tune="lora", lora_rank=0), "lora rank must be in 1..4096"),
        (dict(tune="lora", lora_rank=5000), "lora rank must be in 1..4096"),
        (dict(tune="lora", lora_alpha=0.0), "lora alpha must be a finite number > 0"),
        (dict(tune="lora", lora_alpha=float("nan")), "lora alpha must be a finite number > 0"),
        (dict(tune="lora", lora_alpha=float("inf")), "lora alpha must be a finite number > 0"),
        (dict(tune="lora", lora_targets=("c_fc", "c_fc")), "lora target 'c_fc' appears twice"),
        (dict(tune="lora", lora_targets=("mlp c_fc",)), "is not a module name"),
        (dict(tune="lora", lora_targets=("",)), "is not a module name"),
        (dict(lora_rank=4), "lora rank applies only with tune = 'lora'"),
        (dict(tune="head", lora_targets=("c_fc",)), "lora targets applies only with tune = 'lora'"),
        (dict(tasks=()), "no tasks"),
        (dict(tasks=("a", "a")), "appears twice"),
        (dict(tasks=("a",), heldout=("a",)), "both trained and held out"),
        (dict(buffer_size=-1), "buffer size must be >= 0"),
        (dict(paradigm="specialized", buffer_size=5), "only applies to the continual paradigm"),
        (dict(epochs=0), "epochs must be > 0"),
        (dict(batch_size=0), "batch size must be > 0"),
        (dict(max_test=-3), "max test must be > 0"),
        (dict(lr=-1.0), "learning rate must be > 0"),
        (dict(warmup=1.5), "warmup"),
        (dict(device="tpu"), "unknown device"),
        (dict(name="\n"), "run name"),
    ],
)
def test_invalid_values_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        resolve(replace(RunConfig(), **change))
    assert "\n" not in str(e.value)


def test_mapping_rejects_unknown_keys_and_wrong_types() -> None:
    with pytest.raises(ConfigError, match="unknown key 'epoch'.*epochs"):
        from_mapping({"epoch": 3})
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        from_mapping({"epochs": "3"})
    with pytest.raises(ConfigError, match="'tasks' must be a list"):
        from_mapping({"tasks": 3})
    assert from_mapping({"tasks": "a, b"}).tasks == ("a", "b")


def test_stage_labels() -> None:
    assert stage_labels(RunConfig(tasks=("a", "b"))) == ["after a", "after b"]
    assert stage_labels(RunConfig(tasks=("a", "b"), paradigm="specialized")) == ["model a", "model b"]
    assert stage_labels(RunConfig(tasks=("a", "b"), paradigm="joint")) == ["joint"]
