"""The hook surface of a method, and what the hooks see of the run.

The engine calls, for each continual stage: :meth:`Method.before_stage`, then per
training step :meth:`Method.loss` and :meth:`Method.after_step`, then
:meth:`Method.after_stage` (before the stage is evaluated: weight surgery done here is
what gets evaluated). :meth:`Method.state_dict` is saved in the stage checkpoint and
must hold only tensors and plain values (checkpoints load with ``weights_only=True``).

A :class:`HookContext` gives a hook the model being trained, frozen copies on demand
(:meth:`HookContext.initial`, :meth:`HookContext.frozen_copy`), every loaded task's
data, the device and its autocast. :meth:`Method.loss` gets a :class:`Forward`: the
batch's prepared images and image features, and per task group its name, labels and
logits, with replayed samples marked. It returns a :class:`Loss`: the total and its
named components (``task``, ``replay``, ``distill``, ``penalty``), which are logged as
separate series. Torch is imported inside functions only (see :mod:`medtui.methods`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

import numpy as np

from medtui.protocols import Stage

if TYPE_CHECKING:
    import torch

    from medtui.config import RunConfig
    from medtui.events import Event


@dataclass(frozen=True)
class NoOptions:
    """A method without options."""


@dataclass
class Group:
    """The samples of one task in a batch: prepared images, labels, image features, logits over its classes."""

    task: str
    images: "torch.Tensor"
    labels: "torch.Tensor"
    features: "torch.Tensor"
    logits: "torch.Tensor"
    replay: bool = False


@dataclass
class Forward:
    """One training batch after the forward pass: all prepared images and features, and the task groups."""

    images: "torch.Tensor"
    features: "torch.Tensor"
    groups: list[Group]

    @property
    def n(self) -> int:
        """Samples in the batch."""
        return int(self.images.shape[0])


@dataclass
class Loss:
    """A batch's loss: ``total`` (what is back-propagated) and its named components (each a scalar tensor)."""

    total: "torch.Tensor"
    components: dict[str, "torch.Tensor"] = field(default_factory=dict)


@dataclass
class HookContext:
    """What a method's hooks see of the run during one stage.

    ``stages`` is every stage of the run; ``tasks`` every loaded task (train and test
    tensors) by name; ``rng`` a generator seeded from (seed, stage) for the method's own
    draws (separate from the training stream, so that methods never shift it); ``step`` the
    optimizer steps done in this stage. ``frozen`` makes frozen model copies (see
    :meth:`initial` and :meth:`frozen_copy`).
    """

    stage: Stage
    stages: list[Stage]
    model: Any
    tasks: dict[str, Any]
    device: "torch.device"
    amp: str
    config: "RunConfig"
    rng: np.random.Generator
    emit: Callable[["Event"], None]
    frozen: Any
    load_task: Callable[[str], Any]
    step: int = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """The training autocast (mixed precision on CUDA, nothing on the CPU)."""
        from medtui.engine.train import autocast

        return autocast(self.device, self.amp)

    def initial(self) -> Any:
        """A frozen copy of the initial (pre-trained, zero-shot) model: eval mode, no grads, on the device.

        Made on first use and kept for the rest of the run; only methods that call this pay for it.
        """
        return self.frozen.initial(self.model)

    def initial_state(self) -> dict[str, "torch.Tensor"]:
        """The initial model's state dict (on the CPU; no extra model on the device)."""
        return self.frozen.initial_state

    def frozen_copy(self) -> Any:
        """A frozen copy of the model as it is now (in ``before_stage``: the previous stage's model)."""
        return self.frozen.copy(self.model)

    def seen_tasks(self, include_current: bool = False) -> list[str]:
        """Tasks trained in earlier stages (and this one's if ``include_current``), in order."""
        last = self.stage.index if include_current else self.stage.index - 1
        out: list[str] = []
        for s in self.stages[:last]:
            out += [t for t in s.tasks if t not in out]
        return out

    def train_batches(self, task: str, n: int, batch_size: int) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
        """Up to ``n`` training samples of ``task`` (drawn with :attr:`rng`), as (prepared images, labels) batches."""
        data = self.tasks[task].train
        pick = self.rng.permutation(len(data))[: min(n, len(data))]
        for start in range(0, len(pick), batch_size):
            x, y = data.gather(pick[start : start + batch_size], self.device)
            yield self.model.prepare(x), y


class Method:
    """Base class: plain fine-tuning (cross-entropy on the batch). Subclasses override any hook.

    ``Options`` is a frozen dataclass of the method's options (defaults required; optional
    ``check()`` raising ValueError for out-of-range values). ``paper`` cites what it follows.
    ``needs_initial`` asks the engine to keep the initial weights (for :meth:`HookContext.initial`).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    paper: ClassVar[str] = ""
    needs_initial: ClassVar[bool] = False

    def __init__(self, options: Any) -> None:
        self.opts = options

    def before_stage(self, ctx: HookContext) -> None:
        """Called before a stage trains (the model holds the previous stage's weights)."""

    def loss(self, ctx: HookContext, out: Forward) -> Loss:
        """Cross-entropy, mean over all samples: ``task`` (the stage's data) + ``replay`` (buffer samples)."""
        return cross_entropy(out)

    def after_step(self, ctx: HookContext) -> None:
        """Called after each optimizer step (``ctx.step`` steps done)."""

    def after_stage(self, ctx: HookContext) -> None:
        """Called after a stage trained, before it is evaluated; changes to the weights are evaluated."""

    def state_dict(self) -> dict[str, Any]:
        """What the method carries between stages: tensors and plain values only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (called on resume, before the next stage)."""


def cross_entropy(out: Forward) -> Loss:
    """The classification loss of a batch: summed cross-entropy of each group over all samples.

    Components ``task`` and ``replay`` split it by whether samples came from the buffer
    (they add up to the total).
    """
    import torch
    import torch.nn.functional as F

    parts = {"task": torch.zeros((), device=out.images.device), "replay": torch.zeros((), device=out.images.device)}
    for g in out.groups:
        key = "replay" if g.replay else "task"
        parts[key] = parts[key] + F.cross_entropy(g.logits.float(), g.labels, reduction="sum") / out.n
    if not any(g.replay for g in out.groups):
        del parts["replay"]
    return Loss(sum(parts.values()), parts)  # type: ignore[arg-type]
