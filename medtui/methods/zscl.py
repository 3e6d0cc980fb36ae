"""``zscl``: ZSCL-style distillation to the zero-shot model (after Zheng et al., ICCV 2023).

Loss added to the cross-entropy at every step::

    λ · ½ [ T² KL(p_t^{i→t} ‖ p_s^{i→t}) + T² KL(p_t^{t→i} ‖ p_s^{t→i}) ]

on a batch of ``ref_batch`` **reference images** against the **reference texts**: ``p^{i→t}``
is the softmax (temperature T) of the scaled cosine logits of each image over all texts,
``p^{t→i}`` that of each text over the batch's images; ``s`` is the model being trained and
``t`` the frozen initial (zero-shot) model. Reference images are ``ref_samples`` training
images of ``ref_task`` or, by default, a fresh draw (its own seed, never the tasks' splits)
of every built-in synthetic task; reference texts are the class embeddings (mean over
templates) of every class of every task in the run, trained and held out. Then **weight
ensembling**: every ``we_every`` steps the weights join a running average that starts with
the stage's initial weights; at the end of the stage the model becomes that average.
Logged as the ``distill`` component.

Kept from ZSCL: distillation in the image–text logit space to the zero-shot model on a
reference set unrelated to the task, both directions, and weight ensembling during training.
Simplified: the reference set is small and fixed (ZSCL samples ImageNet/Conceptual Captions
and uses captions as texts), texts are class prompts, the average is uniform over snapshots.
Memory: the initial model on the device (eval, no gradients) and the average's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medtui.methods import register_method
from medtui.methods.base import Forward, HookContext, Loss, Method, cross_entropy
from medtui.methods.lwf import distill_kl

if TYPE_CHECKING:
    import torch

#: Seed offset of the default reference images: a draw distinct from every task's own splits.
REFERENCE_SEED = 7_000_001


@dataclass(frozen=True)
class ZsclOptions:
    """Options of ``zscl``."""

    weight: float = field(default=1.0, metadata={"help": "λ: weight of the distillation loss"})
    temperature: float = field(default=2.0, metadata={"help": "T: softmax temperature of the distillation"})
    ref_task: str = field(default="", metadata={"help": "task whose train images are the reference set ('' = built-in synthetic)"})
    ref_samples: int = field(default=500, metadata={"help": "reference images"})
    ref_batch: int = field(default=32, metadata={"help": "reference images per step"})
    we_every: int = field(default=10, metadata={"help": "steps between weight-ensembling snapshots (0 = off)"})

    def check(self) -> None:
        """Raise ValueError for out-of-range values."""
        if self.weight < 0 or not self.temperature > 0:
            raise ValueError("weight must be >= 0 and temperature > 0")
        if self.ref_samples < 2 or self.ref_batch < 2:
            raise ValueError("ref_samples and ref_batch must be >= 2")
        if self.we_every < 0:
            raise ValueError(f"we_every must be >= 0, got {self.we_every}")


def reference_images(ctx: HookContext, task: str, n: int) -> list["torch.Tensor"]:
    """The reference images as uint8 ``N x C x H x W`` tensors (one per source), ``n`` in all."""
    import torch

    from medtui.data.synthetic import SYNTHETIC_SPECS, generate

    if task:
        data = ctx.load_task(task).train
        return [data.images[: min(n, len(data))]]
    out, per = [], -(-n // len(SYNTHETIC_SPECS))
    for i, spec in enumerate(SYNTHETIC_SPECS):
        k = min(per, n - per * i)
        if k > 0:
            split = generate(spec, seed=REFERENCE_SEED + i, n_train=k, n_val=0, n_test=1).splits["train"]
            out.append(torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous())
    return out


@register_method("zscl")
class ZSCL(Method):
    """ZSCL-style: distil the zero-shot model's image–text logits on reference data, plus weight ensembling."""

    Options = ZsclOptions
    paper = "Zheng et al., Preventing Zero-Shot Transfer Degradation in Continual Learning of VLMs, ICCV 2023"
    needs_initial = True

    def __init__(self, options: ZsclOptions) -> None:
        super().__init__(options)
        self.sources: list[Any] = []
        self.teacher_feats: Any = None
        self.teacher_text: Any = None
        self.avg: dict[str, Any] | None = None
        self.n_avg = 0

    def before_stage(self, ctx: HookContext) -> None:
        """Load the reference set and the zero-shot model's features of it (once), start the average."""
        import torch

        if self.teacher_feats is None:
            self.sources = reference_images(ctx, self.opts.ref_task, self.opts.ref_samples)
            teacher = ctx.initial()
            with torch.no_grad(), ctx.autocast():
                feats = [teacher.encode_images(teacher.prepare(x[i : i + 64].to(ctx.device)))
                         for x in self.sources for i in range(0, len(x), 64)]
                self.teacher_feats = torch.cat(feats).float()
                self.teacher_text = torch.cat([teacher.class_embeddings(t) for t in ctx.config.columns]).float()
                self.scale = float(teacher.clip.logit_scale.exp())
        self.avg, self.n_avg = None, 0
        if self.opts.we_every:
            self._fold(ctx)

    def _reference_batch(self, ctx: HookContext) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        sizes = [len(x) for x in self.sources]
        pick = torch.from_numpy(ctx.rng.choice(sum(sizes), size=min(self.opts.ref_batch, sum(sizes)), replace=False))
        pick, _ = pick.sort()
        xs, start = [], 0
        for x, n in zip(self.sources, sizes):
            mine = pick[(pick >= start) & (pick < start + n)] - start
            if len(mine):
                xs.append(ctx.model.prepare(x.index_select(0, mine).to(ctx.device)))
            start += n
        return torch.cat(xs), pick.to(ctx.device)

    def loss(self, ctx: HookContext, out: Forward) -> Loss:
        """Cross-entropy plus ``distill`` on a reference batch."""
        import torch

        result = cross_entropy(out)
        if self.opts.weight == 0:
            return result
        x, pick = self._reference_batch(ctx)
        student = ctx.model.encode_images(x)
        text = torch.cat([ctx.model.class_embeddings(t) for t in ctx.config.columns])
        s_logits = self.scale * student @ text.t()
        t_logits = self.scale * self.teacher_feats[pick] @ self.teacher_text.t()
        t = self.opts.temperature
        distill = 0.5 * (distill_kl(s_logits, t_logits, t) + distill_kl(s_logits.t(), t_logits.t(), t))
        distill = self.opts.weight * distill
        result.components["distill"] = distill
        return Loss(result.total + distill, result.components)

    def _fold(self, ctx: HookContext) -> None:
        """Add the current weights to the running average."""
        import torch

        with torch.no_grad():
            state = ctx.model.state_dict()
            if self.avg is None:
                self.avg = {k: v.detach().float().clone() for k, v in state.items() if torch.is_floating_point(v)}
            else:
                for k, v in self.avg.items():
                    v.mul_(self.n_avg / (self.n_avg + 1)).add_(state[k].float(), alpha=1 / (self.n_avg + 1))
        self.n_avg += 1

    def after_step(self, ctx: HookContext) -> None:
        """Every ``we_every`` steps, fold the weights into the average."""
        if self.opts.we_every and ctx.step % self.opts.we_every == 0:
            self._fold(ctx)

    def after_stage(self, ctx: HookContext) -> None:
        """The stage's model is the weight ensemble (with the final weights folded in)."""
        import torch

        if not self.opts.we_every or self.avg is None:
            return
        self._fold(ctx)
        state = ctx.model.state_dict()
        with torch.no_grad():
            ctx.model.load_state_dict({k: self.avg[k].to(v.dtype) if k in self.avg else v for k, v in state.items()})
        ctx.model.clear_eval_cache()
        self.avg = None
