"""``wise-ft``: weight-space ensembling with the pre-trained weights (Wortsman et al., CVPR 2022).

No loss term: after each stage the weights are interpolated towards the initial ones::

    θ ← (1 − α) · θ_0 + α · θ

over every floating-point entry of the model's state (parameters and float buffers; the
engine then re-estimates batch-norm statistics for the interpolated weights). The model
evaluated after the stage — and the one the next stage continues from — is this ensemble.
``α = 1`` leaves the fine-tuned weights unchanged; ``α = 0`` restores ``θ_0`` exactly.
WiSE-FT was proposed for one fine-tuning run; applying it after each stage of a sequence
is how the ZSCL paper evaluates it as a continual baseline. ``θ_0`` is kept on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from medtui.methods import register_method
from medtui.methods.base import HookContext, Method

if TYPE_CHECKING:
    import torch


def interpolate(
    initial: dict[str, "torch.Tensor"], current: dict[str, "torch.Tensor"], alpha: float, keys: "set[str] | None" = None
) -> dict[str, "torch.Tensor"]:
    """``(1 − α)·initial + α·current`` for floating-point entries (only ``keys``, when given); others from ``current``."""
    import torch

    out = {}
    for k, v in current.items():
        if torch.is_floating_point(v) and k in initial and (keys is None or k in keys):
            if alpha == 1.0:
                out[k] = v.clone()
            elif alpha == 0.0:
                out[k] = initial[k].to(v.device, v.dtype).clone()
            else:
                out[k] = torch.lerp(initial[k].to(v.device, torch.float32), v.float(), alpha).to(v.dtype)
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class WiseFtOptions:
    """Options of ``wise-ft``."""

    alpha: float = field(default=0.5, metadata={"help": "α: weight of the fine-tuned weights (1 = none, 0 = θ0)"})

    def check(self) -> None:
        """Raise ValueError for out-of-range values."""
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


@register_method("wise-ft")
class WiseFT(Method):
    """WiSE-FT: after each stage, interpolate the weights with the pre-trained ones."""

    Options = WiseFtOptions
    paper = "Wortsman et al., Robust fine-tuning of zero-shot models, CVPR 2022"
    needs_initial = True

    def after_stage(self, ctx: HookContext) -> None:
        """Replace the weights by the ensemble ``(1 − α)·θ0 + α·θ``."""
        import torch

        with torch.no_grad():
            state = ctx.model.state_dict()
            # with LoRA only the B factors move: that is the exact ensemble of the adapted weights
            ctx.model.load_state_dict(interpolate(ctx.initial_state(), state, self.opts.alpha, ctx.model.interpolation_keys(state)))
        ctx.model.clear_eval_cache()
