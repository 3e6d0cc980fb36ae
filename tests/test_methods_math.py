"""Each method's loss, penalty or weight surgery, checked by hand on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medtui.methods.ewc import ewc_penalty
from medtui.methods.lwf import distill_kl
from medtui.methods.wise_ft import interpolate


def test_lwf_kl_at_t1_is_the_hand_value() -> None:
    # teacher p = softmax([0, ln 3]) = (1/4, 3/4); student q = softmax([0, 0]) = (1/2, 1/2)
    teacher = torch.tensor([[0.0, math.log(3.0)]])
    student = torch.tensor([[0.0, 0.0]])
    hand = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert distill_kl(student, teacher, 1.0).item() == pytest.approx(hand, rel=1e-6)
    assert distill_kl(teacher, teacher, 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_lwf_kl_temperature_scales_logits_and_multiplies_by_t_squared() -> None:
    teacher = torch.tensor([[0.0, 2.0 * math.log(3.0)], [1.0, 1.0]])
    student = torch.tensor([[0.0, 0.0], [0.0, 2.0 * math.log(3.0)]])
    # at T = 2 row 1 is the T = 1 case above; row 2: p = (1/2, 1/2), q = (1/4, 3/4)
    row1 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    row2 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert distill_kl(student, teacher, 2.0).item() == pytest.approx(4.0 * (row1 + row2) / 2, rel=1e-6)


def test_ewc_penalty_is_zero_at_the_anchor_and_the_hand_value_elsewhere() -> None:
    anchor = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5])}
    fisher = {"w": torch.tensor([2.0, 0.5]), "b": torch.tensor([4.0])}
    at = {k: v.clone().requires_grad_(True) for k, v in anchor.items()}
    assert ewc_penalty(at, fisher, anchor).item() == 0.0
    moved = {"w": torch.tensor([2.0, 0.0]), "b": torch.tensor([0.0])}
    # ½ (2·1² + 0.5·2² + 4·0.5²) = ½ (2 + 2 + 1)
    assert ewc_penalty(moved, fisher, anchor).item() == pytest.approx(2.5)
    # a parameter without a Fisher entry (not trained before) adds nothing
    assert ewc_penalty({**moved, "new": torch.ones(3)}, fisher, anchor).item() == pytest.approx(2.5)


def test_wise_ft_alpha_one_is_identity_and_alpha_zero_restores_the_initial_weights() -> None:
    rng = np.random.default_rng(0)
    init = {"w": torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32), "n": torch.tensor(0)}
    cur = {"w": torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32), "n": torch.tensor(7)}
    assert torch.equal(interpolate(init, cur, 1.0)["w"], cur["w"])
    assert torch.equal(interpolate(init, cur, 0.0)["w"], init["w"])
    half = interpolate(init, cur, 0.5)
    assert torch.allclose(half["w"], (init["w"] + cur["w"]) / 2)
    assert half["n"].item() == 7  # integer counters are not interpolated


def test_wise_ft_on_a_model_restores_theta0_exactly_at_alpha_zero() -> None:
    from medtui.data.registry import TaskRegistry
    from medtui.engine.frozen import FrozenModels
    from medtui.methods.base import HookContext
    from medtui.methods.wise_ft import WiseFT, WiseFtOptions
    from medtui.models.classifier import ClipClassifier
    from medtui.models.clip import load_clip
    from medtui.protocols import PROTOCOLS

    torch.manual_seed(0)
    model = ClipClassifier(load_clip("medtui-tiny", None), [TaskRegistry().get("synth-cxr-a")], "full")
    frozen = FrozenModels(FrozenModels.capture(model))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    stages = PROTOCOLS["continual"].stages(["synth-cxr-a"])
    ctx = HookContext(stages[0], stages, model, {}, torch.device("cpu"), "off", None, np.random.default_rng(0),  # type: ignore[arg-type]
                      lambda e: None, frozen, lambda n: None)
    WiseFT(WiseFtOptions(alpha=0.0)).after_stage(ctx)
    assert all(torch.equal(v, frozen.initial_state[k]) for k, v in model.state_dict().items())


def test_balanced_joint_sampling_gives_every_task_the_same_share() -> None:
    from medtui.engine.train import balanced_positions

    task_ids = np.array([0] * 90 + [1] * 10)  # a large and a small task
    pos = balanced_positions(task_ids, np.random.default_rng(0))
    assert len(pos) == 100  # the epoch keeps its length
    assert (task_ids[pos] == 0).sum() == 50 and (task_ids[pos] == 1).sum() == 50
    small = pos[task_ids[pos] == 1]
    assert np.bincount(small, minlength=100)[90:].tolist() == [5] * 10  # the small task cycles evenly
    large = pos[task_ids[pos] == 0]
    assert len(set(large.tolist())) == 50  # the large one is subsampled without repeats
