"""Frozen model copies for methods: the initial (zero-shot) model and snapshots of the current one.

A copy is made only when a method asks for it, lives on the training device in eval mode
with gradients off, and is dropped when the method lets go of it. The initial weights
are kept on the CPU (when a protocol resets stages or the method needs them), so that
asking for them costs no device memory until a model is actually built from them.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from medtui.models.classifier import ClipClassifier


def freeze(model: ClipClassifier) -> ClipClassifier:
    """``model`` in eval mode with every parameter's gradient off (in place); returns it."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model._text_cache.clear()
    return model


class FrozenModels:
    """Makes frozen copies of the model being trained; holds the initial weights."""

    def __init__(self, initial_state: dict[str, torch.Tensor] | None) -> None:
        self._initial_state = initial_state
        self._initial: ClipClassifier | None = None

    @staticmethod
    def capture(model: ClipClassifier) -> dict[str, torch.Tensor]:
        """A CPU copy of what training can change in ``model`` (its checkpoint state: with LoRA, the adapters)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in model.checkpoint_state().items()}

    @property
    def initial_state(self) -> dict[str, torch.Tensor]:
        """The initial weights (CPU tensors; the checkpoint state, see :meth:`capture`)."""
        if self._initial_state is None:
            raise RuntimeError("the initial weights were not kept: set needs_initial on the method")
        return self._initial_state

    def copy(self, model: ClipClassifier, state: dict[str, Any] | None = None) -> ClipClassifier:
        """A frozen deep copy of ``model`` (with ``state`` loaded, if given), on ``model``'s device."""
        # cached class embeddings may belong to an autograd graph, which deepcopy refuses
        cache, model._text_cache = model._text_cache, {}
        try:
            clone = copy.deepcopy(model)
        finally:
            model._text_cache = cache
        if state is not None:
            clone.load_checkpoint_state(state)
        return freeze(clone)

    def initial(self, model: ClipClassifier) -> ClipClassifier:
        """The frozen initial model, made on first call and kept."""
        if self._initial is None:
            self._initial = self.copy(model, self.initial_state)
        return self._initial

    def release(self) -> None:
        """Drop the initial model copy (its weights stay on the CPU)."""
        self._initial = None
