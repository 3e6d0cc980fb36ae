"""``ewc``: Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017).

Loss added to the cross-entropy once a stage has finished::

    (λ / 2) · Σ_i F_i (θ_i − θ*_i)²

over the trained parameters, where ``θ*`` are the weights at the end of the last finished
stage and ``F`` the diagonal Fisher information accumulated over the finished stages.
After each stage, ``F_stage`` is estimated on ``fisher_samples`` of the stage's training
samples as the mean squared gradient of the log-likelihood of the true labels (the
*empirical* Fisher, as most implementations do), with the model in eval mode: per-sample
gradients with ``fisher_batch = 1``, else (default 4, faster) the squared *summed* gradient of
each minibatch (exact when per-sample gradients are uncorrelated). Accumulation is **online** (Schwarz et al., 2018):
``F ← γ·F + F_stage`` with one anchor ``θ*`` (the latest weights); ``γ = 1`` sums the
stages' Fishers. The original keeps one penalty per task with its own anchor; with one
anchor the memory is two copies of the trained parameters whatever the number of tasks.
Logged as the ``penalty`` component. ``F`` and ``θ*`` are tensors in the stage checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medtui.methods import register_method
from medtui.methods.base import Forward, HookContext, Loss, Method, cross_entropy

if TYPE_CHECKING:
    import torch


def ewc_penalty(params: dict[str, "torch.Tensor"], fisher: dict[str, "torch.Tensor"], anchor: dict[str, "torch.Tensor"]) -> "torch.Tensor":
    """``½ Σ F (θ − θ*)²`` over the named parameters that have a Fisher entry."""
    import torch

    total = torch.zeros((), device=next(iter(params.values())).device)
    for name, p in params.items():
        if name in fisher:
            total = total + (fisher[name] * (p.float() - anchor[name]) ** 2).sum()
    return 0.5 * total


@dataclass(frozen=True)
class EwcOptions:
    """Options of ``ewc``."""

    weight: float = field(default=1e5, metadata={"help": "λ: weight of the quadratic penalty"})
    gamma: float = field(default=1.0, metadata={"help": "γ: decay of the accumulated Fisher (online EWC; 1 = sum)"})
    fisher_samples: int = field(default=100, metadata={"help": "training samples per stage for the Fisher estimate"})
    fisher_batch: int = field(default=4, metadata={"help": "samples per gradient (1 = per-sample Fisher)"})

    def check(self) -> None:
        """Raise ValueError for out-of-range values."""
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.fisher_samples < 1 or self.fisher_batch < 1:
            raise ValueError("fisher_samples and fisher_batch must be >= 1")


def trained(model: Any) -> dict[str, "torch.Tensor"]:
    """The model's parameters that train, by name."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@register_method("ewc")
class EWC(Method):
    """Elastic Weight Consolidation: a Fisher-weighted quadratic pull towards the previous stages' weights."""

    Options = EwcOptions
    paper = "Kirkpatrick et al., Overcoming catastrophic forgetting in neural networks, PNAS 2017"

    def __init__(self, options: EwcOptions) -> None:
        super().__init__(options)
        self.fisher: dict[str, Any] = {}
        self.anchor: dict[str, Any] = {}

    def loss(self, ctx: HookContext, out: Forward) -> Loss:
        """Cross-entropy plus ``penalty`` (from the second stage on)."""
        result = cross_entropy(out)
        if not self.fisher or self.opts.weight == 0:
            return result
        penalty = self.opts.weight * ewc_penalty(trained(ctx.model), self.fisher, self.anchor)
        result.components["penalty"] = penalty
        return Loss(result.total + penalty, result.components)

    def after_stage(self, ctx: HookContext) -> None:
        """Estimate this stage's Fisher, fold it into the accumulated one, and move the anchor here."""
        stage_fisher = self.estimate_fisher(ctx)
        for name, f in stage_fisher.items():
            self.fisher[name] = self.opts.gamma * self.fisher[name] + f if name in self.fisher else f
        self.anchor = {n: p.detach().float().clone() for n, p in trained(ctx.model).items()}

    def estimate_fisher(self, ctx: HookContext) -> dict[str, "torch.Tensor"]:
        """Mean squared log-likelihood gradients on the stage's training samples (eval mode)."""
        import torch
        import torch.nn.functional as F

        model = ctx.model
        params = trained(model)
        fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
        was_training, n_seen = model.training, 0
        model.eval()
        try:
            for task in ctx.stage.tasks:
                for x, y in ctx.train_batches(task, self.opts.fisher_samples, self.opts.fisher_batch):
                    with ctx.autocast():
                        logits = model.logits(model.encode_images(x), task)
                    loss = F.cross_entropy(logits.float(), y)
                    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                    for (n, _), g in zip(params.items(), grads):
                        if g is not None:
                            fisher[n] += g.float() ** 2 * len(y) * len(y)  # batch mean → per-sample scale
                    n_seen += len(y)
        finally:
            model.train(was_training)
            model.clear_eval_cache()
        return {n: f / max(1, n_seen) for n, f in fisher.items()}

    def state_dict(self) -> dict[str, Any]:
        """The accumulated Fisher and the anchor (tensors)."""
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the Fisher and the anchor."""
        self.fisher = dict(state.get("fisher") or {})
        self.anchor = dict(state.get("anchor") or {})
