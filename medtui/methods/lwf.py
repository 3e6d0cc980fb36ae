"""``lwf``: Learning without Forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017).

Loss added to the cross-entropy of a stage ``k > 1``::

    λ · mean over earlier tasks t of  T² · KL( softmax(z_t^old / T) ‖ softmax(z_t / T) )

where ``z_t`` are the logits of the model being trained over task ``t``'s classes on the
*current* batch's images, and ``z_t^old`` those of a frozen copy of the model as it was when
the stage began (the previous stage's model). With CLIP, task ``t``'s "head" is its class-text
embeddings, so the old heads are the earlier tasks' prompts through the text tower. The first
stage has no earlier task and trains with cross-entropy alone. The ``T²`` factor keeps the
gradient scale independent of ``T`` (Hinton et al., 2015). Logged as the ``distill`` component.
Memory: one extra frozen model on the device during a stage (eval mode, no gradients).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medtui.methods import register_method
from medtui.methods.base import Forward, HookContext, Loss, Method, cross_entropy

if TYPE_CHECKING:
    import torch


def distill_kl(student: "torch.Tensor", teacher: "torch.Tensor", temperature: float) -> "torch.Tensor":
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, averaged over the batch (rows)."""
    import torch.nn.functional as F

    t = temperature
    log_p_student = F.log_softmax(student.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return kl.mean() * t * t


@dataclass(frozen=True)
class LwfOptions:
    """Options of ``lwf``."""

    temperature: float = field(default=2.0, metadata={"help": "T: softmax temperature of the distillation"})
    weight: float = field(default=10.0, metadata={"help": "λ: weight of the distillation loss"})

    def check(self) -> None:
        """Raise ValueError for out-of-range values."""
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


@register_method("lwf")
class LwF(Method):
    """Learning without Forgetting: distil the previous stage's logits of earlier tasks on the current data."""

    Options = LwfOptions
    paper = "Li & Hoiem, Learning without Forgetting, TPAMI 2017"

    def __init__(self, options: LwfOptions) -> None:
        super().__init__(options)
        self.teacher: Any = None

    def before_stage(self, ctx: HookContext) -> None:
        """Freeze a copy of the model as it is now (the previous stage's model) when there are earlier tasks."""
        self.teacher = ctx.frozen_copy() if ctx.seen_tasks() else None

    def loss(self, ctx: HookContext, out: Forward) -> Loss:
        """Cross-entropy plus ``distill``."""
        import torch

        result = cross_entropy(out)
        old = ctx.seen_tasks()
        if self.teacher is None or not old or self.opts.weight == 0:
            return result
        with torch.no_grad():
            t_feats = self.teacher.encode_images(out.images)
            targets = [self.teacher.logits(t_feats, t) for t in old]
        terms = [distill_kl(ctx.model.logits(out.features, t), z, self.opts.temperature) for t, z in zip(old, targets)]
        distill = self.opts.weight * torch.stack(terms).mean()
        result.components["distill"] = distill
        return Loss(result.total + distill, result.components)

    def after_stage(self, ctx: HookContext) -> None:
        """Drop the frozen copy (frees its device memory)."""
        self.teacher = None
