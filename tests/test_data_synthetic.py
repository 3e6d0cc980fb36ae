"""Tests of the built-in synthetic tasks: determinism, layout, balance and the cross-domain pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medtui.data.base import TaskData, TaskSpec, validate_split
from medtui.data.synthetic import SYNTHETIC_SPECS, generate
from medtui.errors import DataError

SPECS = {s.name: s for s in SYNTHETIC_SPECS}


@pytest.fixture(scope="module")
def generated() -> dict[str, TaskData]:
    """Every built-in task generated once with its default options."""
    return {name: generate(spec) for name, spec in SPECS.items()}


def test_task_names_and_order() -> None:
    assert [s.name for s in SYNTHETIC_SPECS] == [
        "synth-cxr-a", "synth-cxr-b", "synth-derm", "synth-histo", "synth-blood"
    ]
    assert len({s.options["seed"] for s in SYNTHETIC_SPECS}) == len(SYNTHETIC_SPECS)


@pytest.mark.parametrize("spec", SYNTHETIC_SPECS, ids=lambda s: s.name)
def test_spec_fields(spec: TaskSpec) -> None:
    assert spec.source == "synthetic"
    assert spec.image_size == 32
    assert spec.channels in (1, 3)
    assert spec.domain and spec.description and "\n" not in spec.description
    assert len(spec.classes) == len(set(spec.classes)) >= 2
    assert 3 <= len(spec.templates) <= 4
    for template in spec.templates:
        assert template.count("{}") == 1
        assert template.count("{") == template.count("}") == 1
    assert {"seed", "n_train", "n_val", "n_test"} <= set(spec.options)


def test_expected_channels_and_domains() -> None:
    assert SPECS["synth-cxr-a"].channels == SPECS["synth-cxr-b"].channels == 1
    assert SPECS["synth-derm"].channels == SPECS["synth-histo"].channels == SPECS["synth-blood"].channels == 3
    assert SPECS["synth-cxr-a"].domain == SPECS["synth-cxr-b"].domain == "chest x-ray"
    assert SPECS["synth-blood"].n_classes == 3


@pytest.mark.parametrize("name", list(SPECS))
def test_shapes_dtypes_sizes(generated: dict[str, TaskData], name: str) -> None:
    spec = SPECS[name]
    data = generated[name]
    assert data.spec is spec
    assert set(data.splits) == {"train", "val", "test"}
    for split, split_data in data.splits.items():
        n = spec.options[f"n_{split}"]
        assert split_data.images.shape == (n, 32, 32, spec.channels)
        assert split_data.images.dtype == np.uint8
        assert split_data.labels.shape == (n,)
        assert split_data.labels.dtype == np.int64
        assert split_data.images.flags["C_CONTIGUOUS"]
        # Images use a good part of the range rather than being flat or saturated.
        assert 20 < split_data.images.std() and 30 < split_data.images.mean() < 230


@pytest.mark.parametrize("name", list(SPECS))
def test_splits_pass_the_shared_validation(generated: dict[str, TaskData], name: str) -> None:
    for split, split_data in generated[name].splits.items():
        checked = validate_split(name, split, split_data.images, split_data.labels, SPECS[name].n_classes)
        assert checked.images.shape == split_data.images.shape


@pytest.mark.parametrize("name", list(SPECS))
def test_class_balance(generated: dict[str, TaskData], name: str) -> None:
    for counts in generated[name].counts().values():
        assert max(counts) - min(counts) <= 1


def test_uneven_sizes_stay_balanced() -> None:
    data = generate(SPECS["synth-blood"], n_train=31, n_val=5, n_test=7)
    assert data.counts() == {"train": [11, 10, 10], "val": [2, 2, 1], "test": [3, 2, 2]}


@pytest.mark.parametrize("name", list(SPECS))
def test_deterministic(name: str) -> None:
    a = generate(SPECS[name], n_train=40, n_val=8, n_test=16)
    b = generate(SPECS[name], n_train=40, n_val=8, n_test=16)
    for split in a.splits:
        assert a.splits[split].images.tobytes() == b.splits[split].images.tobytes()
        assert np.array_equal(a.splits[split].labels, b.splits[split].labels)
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize("name", list(SPECS))
def test_seed_changes_data(name: str) -> None:
    default = generate(SPECS[name], n_train=40, n_val=8, n_test=16)
    other = generate(SPECS[name], seed=SPECS[name].options["seed"] + 1, n_train=40, n_val=8, n_test=16)
    assert default.fingerprint() != other.fingerprint()
    assert not np.array_equal(default.splits["train"].images, other.splits["train"].images)


def test_explicit_seed_matches_spec_seed() -> None:
    spec = SPECS["synth-derm"]
    a = generate(spec, n_train=20, n_val=4, n_test=8)
    b = generate(spec, seed=spec.options["seed"], n_train=20, n_val=4, n_test=8)
    assert a.fingerprint() == b.fingerprint()


def test_splits_differ_from_each_other() -> None:
    data = generate(SPECS["synth-histo"], n_train=30, n_val=30, n_test=30)
    assert not np.array_equal(data.splits["train"].images, data.splits["test"].images)
    assert not np.array_equal(data.splits["train"].images, data.splits["val"].images)


def test_split_streams_are_independent() -> None:
    spec = SPECS["synth-cxr-a"]
    base = generate(spec, n_train=50, n_val=10, n_test=20)
    more_test = generate(spec, n_train=50, n_val=10, n_test=60)
    for split in ("train", "val"):
        assert base.splits[split].images.tobytes() == more_test.splits[split].images.tobytes()
        assert np.array_equal(base.splits[split].labels, more_test.splits[split].labels)
    no_val = generate(spec, n_train=50, n_val=0, n_test=20)
    assert "val" not in no_val.splits
    assert no_val.splits["train"].images.tobytes() == base.splits["train"].images.tobytes()
    assert no_val.splits["test"].images.tobytes() == base.splits["test"].images.tobytes()


def test_options_set_sizes_and_arguments_override_them() -> None:
    spec = SPECS["synth-derm"]
    small = TaskSpec(**{**spec.__dict__, "options": {**spec.options, "n_train": 12, "n_val": 6, "n_test": 9}})
    data = generate(small)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [12, 6, 9]
    data = generate(small, n_train=4, n_test=2)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [4, 6, 2]


def test_cxr_pair_shares_classes_but_not_pixel_statistics(generated: dict[str, TaskData]) -> None:
    a, b = generated["synth-cxr-a"], generated["synth-cxr-b"]
    assert a.spec.classes == b.spec.classes
    assert a.spec.templates == b.spec.templates
    ia = a.splits["train"].images.astype(np.float64)
    ib = b.splits["train"].images.astype(np.float64)
    # Site B is washed out: lower contrast and lifted blacks, at about the same average exposure.
    assert ia.std() - ib.std() > 5
    assert np.percentile(ib, 5) - np.percentile(ia, 5) > 20
    assert abs(ia.mean() - ib.mean()) < 30


@pytest.mark.parametrize("name", list(SPECS))
def test_mean_brightness_does_not_give_the_class_away(generated: dict[str, TaskData], name: str) -> None:
    split = generated[name].splits["train"]
    means = split.images.reshape(len(split), -1).mean(axis=1)
    per_class = [means[split.labels == c] for c in range(SPECS[name].n_classes)]
    spread = np.mean([m.std() for m in per_class])
    gaps = [abs(x.mean() - y.mean()) for i, x in enumerate(per_class) for y in per_class[i + 1:]]
    assert max(gaps) < spread


@pytest.mark.parametrize("name", list(SPECS))
def test_within_class_variation(generated: dict[str, TaskData], name: str) -> None:
    split = generated[name].splits["train"]
    for c in range(SPECS[name].n_classes):
        images = split.images[split.labels == c].astype(np.float64)
        # No two images of a class are the same, and pixels vary a lot across the class.
        assert len({im.tobytes() for im in images.astype(np.uint8)}) == len(images)
        assert images.std(axis=0).mean() > 10


def test_unknown_generator_and_bad_sizes_raise() -> None:
    spec = TaskSpec("synth-nope", "x", ("a", "b"), ("{}",), "synthetic", 32, 1, options={"seed": 1})
    with pytest.raises(DataError, match="synth-nope"):
        generate(spec)
    with pytest.raises(DataError, match="n_train"):
        generate(SPECS["synth-derm"], n_train=-1)
    with pytest.raises(DataError, match="n_test"):
        generate(SPECS["synth-derm"], n_test=0)
    with pytest.raises(DataError, match="seed"):
        generate(SPECS["synth-derm"], seed=-1)


def test_renamed_copy_uses_generator_option() -> None:
    spec = SPECS["synth-histo"]
    copy = TaskSpec(**{**spec.__dict__, "name": "my-histo", "options": {**spec.options, "generator": "synth-histo"}})
    assert generate(copy, n_train=10, n_val=2, n_test=4).fingerprint() == generate(
        spec, n_train=10, n_val=2, n_test=4
    ).fingerprint()


def test_module_does_not_import_torch() -> None:
    # A fresh interpreter, since other tests in the session may have imported torch already.
    code = "import sys, medtui.data.synthetic as s; s.generate(s.SYNTHETIC_SPECS[0], n_train=2, n_val=0, n_test=2); "
    code += "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("name", list(SPECS))
def test_tiny_splits_render(name: str) -> None:
    # Fewer images than classes leaves some class-specific drawing with nothing to draw on.
    data = generate(SPECS[name], n_train=1, n_val=0, n_test=2)
    assert [len(s) for s in data.splits.values()] == [1, 2]
    assert data.splits["train"].images.shape[1:] == (32, 32, SPECS[name].channels)
