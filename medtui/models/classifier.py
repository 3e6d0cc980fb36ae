"""CLIP as an image classifier over each task's own classes, through the text tower.

Prompts → normalised text embeddings (mean over templates, renormalised) → scaled
cosine logits. Four tuning modes:

- ``full``: both towers train; class embeddings are recomputed (with gradients) each step.
- ``vision``: the text tower is frozen; class embeddings are computed once per stage and cached.
- ``head``: both towers frozen; each task gets a linear head initialised from its class
  embeddings (so before training it equals zero-shot), and only the heads train.
- ``lora``: both towers frozen; low-rank adapters (peft, see :mod:`medtui.models.lora`) on
  their attention/MLP projections train. Adapters start at zero (so before training it
  equals zero-shot); class embeddings are recomputed each step when text-tower layers are adapted.

The logit scale stays at its pre-trained value in every mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medtui.data.base import TaskSpec
from medtui.errors import ModelError
from medtui.models.clip import LoadedClip

if TYPE_CHECKING:
    from medtui.config import RunConfig


class ClipClassifier(nn.Module):
    """A CLIP model that classifies images of ``tasks`` (by name) over each task's classes."""

    def __init__(
        self,
        loaded: LoadedClip,
        tasks: Sequence[TaskSpec],
        tune: str = "full",
        *,
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_targets: Sequence[str] = (),
    ) -> None:
        """``lora_*`` apply with ``tune="lora"``: adapter rank, scale numerator, target names (empty: defaults)."""
        super().__init__()
        self.clip = loaded.model
        self.tune = tune
        self.image_size = loaded.image_size
        self.weights = loaded.weights
        self.specs = {t.name: t for t in tasks}
        self.register_buffer("mean", torch.tensor(loaded.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(loaded.std).view(1, 3, 1, 1), persistent=False)
        device = next(self.clip.parameters()).device
        # Tokenise every prompt once; row c*T + t is class c, template t.
        self._tokens = {
            t.name: loaded.tokenizer([p for per_class in t.prompts() for p in per_class]).to(device) for t in tasks
        }
        self._text_cache: dict[str, torch.Tensor] = {}
        self.heads = nn.ModuleDict()
        if tune == "head":
            with torch.no_grad():
                for t in tasks:
                    emb = self._encode_class_text(t.name)
                    head = nn.Linear(emb.shape[1], emb.shape[0], device=device)
                    head.weight.copy_(emb)
                    head.bias.zero_()
                    self.heads[t.name] = head
        #: The LoRA target names in effect (the defaults for the architecture when none were given).
        self.lora_targets: tuple[str, ...] = ()
        #: The adapted layers (:class:`medtui.models.lora.Target`), in module order.
        self.lora_layers: list = []
        if tune == "lora":
            from medtui.models import lora

            self.lora_targets = tuple(lora_targets) or lora.default_targets(self.clip)
            self.lora_layers = lora.inject(self.clip, self.lora_targets, lora_rank, lora_alpha)
        adapted = [t.path for t in self.lora_layers]
        #: ``27 layers (in_proj, out_proj, ...)``: what the adapters sit on, for the run's log.
        self.lora_summary = f"{len(adapted)} layers ({', '.join(self.lora_targets)})" if adapted else ""
        #: Whether the text tower changes during training (then class embeddings are not cached across steps).
        self.text_trains = tune == "full" or any(not p.startswith("visual.") for p in adapted)
        # Convolutional towers run channels-last (measured 25 % faster training steps for the tiny
        # ResNet on CPU; the layout tensor cores want on GPU); images are laid out to match in prepare().
        # A ViT has one convolution (the patch embedding) whose output is flattened at once: left as is.
        self.channels_last = sum(isinstance(m, nn.Conv2d) for m in self.clip.visual.modules()) > 1
        if self.channels_last:
            self.clip.visual.to(memory_format=torch.channels_last)
        for p in self.clip.parameters():
            p.requires_grad_(False)
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    @classmethod
    def from_config(cls, loaded: LoadedClip, tasks: Sequence[TaskSpec], config: "RunConfig") -> "ClipClassifier":
        """The classifier a run's config asks for (its tuning mode and LoRA settings)."""
        return cls(
            loaded, tasks, config.tune,
            lora_rank=config.lora_rank, lora_alpha=config.lora_alpha, lora_targets=config.lora_targets,
        )

    # -- parameters -------------------------------------------------------------------------
    def _vision_parameters(self) -> Iterable[nn.Parameter]:
        return self.clip.visual.parameters()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the tuning mode trains."""
        if self.tune == "head":
            return list(self.heads.parameters())
        if self.tune == "lora":
            from medtui.models.lora import is_adapter_key

            return [p for n, p in self.clip.named_parameters() if is_adapter_key(n)]
        if self.tune == "vision":
            return list(self._vision_parameters())
        frozen = {id(getattr(self.clip, n)) for n in ("logit_scale", "logit_bias") if getattr(self.clip, n, None) is not None}
        return [p for p in self.clip.parameters() if id(p) not in frozen]

    def optimizer_groups(self, lr: float, text_lr_scale: float = 1.0) -> list[dict]:
        """The trainable parameters as optimizer groups: one at ``lr``, or, with ``text_lr_scale``
        != 1, the text tower's (its weights, or its adapters) in a second group at ``lr * text_lr_scale``.

        A small text tower trained at the image tower's rate can collapse its class embeddings
        in a few steps (BENCHMARKS.md, "the one-class collapse"); a lower rate for it is the lever.
        """
        params = self.trainable_parameters()
        if text_lr_scale == 1.0:
            return [{"params": params, "lr": lr}]
        image = {id(p) for p in self.clip.visual.parameters()} | {id(p) for p in self.heads.parameters()}
        own = [p for p in params if id(p) in image]
        text = [p for p in params if id(p) not in image]
        return [g for g in ({"params": own, "lr": lr}, {"params": text, "lr": lr * text_lr_scale}) if g["params"]]

    @property
    def frozen_base(self) -> bool:
        """Whether every pre-trained weight and norm statistic stays as loaded (``head`` and ``lora``)."""
        return self.tune in ("head", "lora")

    def train(self, mode: bool = True) -> "ClipClassifier":
        """Train mode, except that frozen towers stay in eval mode (their norm statistics must not move)."""
        super().train(mode)
        if mode and self.frozen_base:
            self.clip.eval()
        return self

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """What training can change, as tensors: the adapters in ``lora`` mode, else the whole state dict.

        With LoRA the frozen weights are rebuilt from the run's config (model and weights), so a
        stage checkpoint holds only the adapters (and would hold heads, were any trained).
        """
        if self.tune != "lora":
            return self.state_dict()
        from medtui.models.lora import is_adapter_key

        return {k: v for k, v in self.state_dict().items() if is_adapter_key(k) or k.startswith("heads.")}

    def interpolation_keys(self, state: dict[str, torch.Tensor]) -> set[str]:
        """The keys of ``state`` that weight-space interpolation with the initial model should move.

        Without LoRA every floating-point entry. With LoRA only the ``B`` factors (and heads):
        ``B`` starts at zero, so ``lerp(0, B, α) = α·B`` and every adapted weight becomes exactly
        ``W + α·ΔW = (1 − α)·W + α·(W + ΔW)``, the WiSE-FT ensemble; interpolating ``A`` too
        would scale ``ΔW`` by ``α·((1 − α)·A₀ + α·A)`` instead, which is no ensemble at all.
        """
        floats = {k for k, v in state.items() if torch.is_floating_point(v)}
        if self.tune != "lora":
            return floats
        return {k for k in floats if ".lora_B." in k or k.startswith("heads.")}

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`checkpoint_state` returned; keys must match exactly (a full or a LoRA checkpoint)."""
        if self.tune != "lora":
            self.load_state_dict(state)
            return
        expected = set(self.checkpoint_state())
        got = set(state)
        if got != expected:
            missing, extra = sorted(expected - got), sorted(got - expected)
            raise ModelError(
                f"checkpoint does not match this model's adapters: {len(missing)} missing (e.g. {missing[:1]}), "
                f"{len(extra)} unexpected (e.g. {extra[:1]}); was it written with the same lora_rank/lora_targets?"
            )
        self.load_state_dict(state, strict=False)

    # -- images -----------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``B x C x H x W`` (C = 1 or 3, on the model's device) → normalised float ``B x 3 x S x S``.

        Resizing happens here, on the device, in batches: no per-image PIL work in the loop.
        """
        x = images.float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings of prepared images."""
        return F.normalize(self.clip.encode_image(x), dim=-1)

    # -- text -------------------------------------------------------------------------------
    def _encode_class_texts(self, tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        """Class embeddings of ``tasks`` from one text-tower pass over all their prompts stacked.

        Per task: mean of normalised prompt embeddings per class, renormalised. Prompts are
        padded to the same context length, so stacking tasks changes nothing but the number
        of passes (one per step instead of one per task group).
        """
        tokens = self._tokens[tasks[0]] if len(tasks) == 1 else torch.cat([self._tokens[t] for t in tasks])
        emb = F.normalize(self.clip.encode_text(tokens), dim=-1)
        out, start = {}, 0
        for t in tasks:
            spec = self.specs[t]
            n = spec.n_classes * len(spec.templates)
            per_class = emb[start : start + n].view(spec.n_classes, len(spec.templates), -1).mean(dim=1)
            out[t] = F.normalize(per_class, dim=-1)
            start += n
        return out

    def _encode_class_text(self, task: str) -> torch.Tensor:
        """Class embeddings of one task."""
        return self._encode_class_texts([task])[task]

    def refresh_text_cache(self) -> None:
        """Recompute cached class embeddings (frozen text tower); call at the start of a stage."""
        self._text_cache.clear()
        if not self.text_trains:
            with torch.no_grad():
                self._text_cache.update({k: v.detach() for k, v in self._encode_class_texts(list(self.specs)).items()})

    def class_embeddings_for(self, tasks: Sequence[str], cache: bool = True) -> dict[str, torch.Tensor]:
        """Class embeddings of several tasks; those not cached come from a single text-tower pass.

        Empty in ``head`` mode (the heads replace the text tower). ``cache=False`` reads the
        cache but never writes it (evaluation under inference mode: its tensors must not be
        kept for training steps).
        """
        if self.tune == "head":
            return {}
        missing = [t for t in dict.fromkeys(tasks) if t not in self._text_cache]
        out = {t: self._text_cache[t] for t in tasks if t in self._text_cache}
        if missing:
            fresh = self._encode_class_texts(missing)
            if cache and (not self.text_trains or not torch.is_grad_enabled()):
                self._text_cache.update({k: v.detach() for k, v in fresh.items()})
            out.update(fresh)
        return out

    def class_embeddings(self, task: str) -> torch.Tensor:
        """Class embeddings for ``task`` (cached when the text tower is frozen)."""
        return self.class_embeddings_for([task])[task]

    def clear_eval_cache(self) -> None:
        """Forget class embeddings cached during an evaluation of a model whose text tower trains."""
        if self.text_trains:
            self._text_cache.clear()

    # -- logits -----------------------------------------------------------------------------
    def logits(self, features: torch.Tensor, task: str, class_emb: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled cosine logits of normalised image ``features`` over ``task``'s classes.

        ``class_emb`` passes embeddings already computed for this step (see :meth:`class_embeddings_for`).
        """
        scale = self.clip.logit_scale.exp()
        if self.tune == "head":
            return scale * self.heads[task](features)
        emb = class_emb if class_emb is not None else self.class_embeddings(task)
        return scale * features @ emb.t()
