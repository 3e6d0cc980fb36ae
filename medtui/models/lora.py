"""LoRA adapters on an open_clip model, through peft.

Low-rank adapters (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models"):
a frozen weight ``W`` (out × in) is used as ``W + (alpha / r) · B A`` with ``A`` (r × in)
and ``B`` (out × r) the only trained tensors. ``B`` starts at zero, so the adapted model
equals the pre-trained one before the first step.

A *target* is a module name, matched like peft's ``target_modules`` (the full path or its
last dotted components: ``c_fc`` matches every ``...mlp.c_fc``). Three kinds of layer exist
in open_clip's towers and each is adapted the way that keeps the frozen weights untouched:

- ``nn.Linear`` / ``nn.Conv2d`` layers whose ``forward`` runs (``mlp.c_fc``, ``mlp.c_proj``,
  the ResNet convolutions): peft's ``lora.Linear`` / ``lora.Conv2d`` (``target_modules``).
  A convolution's ``A`` is a k×k convolution to r channels and ``B`` a 1×1 one, so it adds
  ``r · (in · k² + out)`` parameters; a linear layer adds ``r · (in + out)``.
- the packed q/k/v projection of an attention layer (``in_proj``, the ``in_proj_weight``
  parameter of ``nn.MultiheadAttention``): peft's parameter targeting (``target_parameters``),
  which adds ``B A`` through a torch parametrization while the attention layer runs.
- linear layers whose weight another module reads without calling them (``out_proj`` of
  ``nn.MultiheadAttention``, ``q_proj``/``k_proj``/``v_proj``/``c_proj`` of the ResNet's
  attention pool, all passed straight to ``F.multi_head_attention_forward``): a peft
  module wrapper would be silently skipped there, so they are targeted as parameters too,
  and the reading module switches their parametrization on for the length of its forward.

peft's own ``nn.MultiheadAttention`` layer is not used: it adds ``B A`` into the weight
before each forward and subtracts it after, so the frozen weight drifts by rounding at
every step; the parametrization never writes to it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from medtui.errors import ModelError

#: Default targets per tower family (see :func:`default_targets`).
TRANSFORMER_TARGETS: tuple[str, ...] = ("in_proj", "out_proj", "c_fc", "c_proj")
RESNET_TARGETS: tuple[str, ...] = ("conv1", "conv2", "conv3", "q_proj", "k_proj", "v_proj", "c_proj")
TIMM_TARGETS: tuple[str, ...] = ("qkv", "proj", "fc1", "fc2")
HF_TEXT_TARGETS: tuple[str, ...] = ("query", "key", "value", "dense")

_ADAPTER_NAME = "default"


def _weight_readers() -> tuple[type, ...]:
    """Module types that pass their children's weights to a functional call instead of calling them."""
    from open_clip.modified_resnet import AttentionPool2d

    return (nn.MultiheadAttention, AttentionPool2d)


@dataclass(frozen=True)
class Target:
    """One adaptable layer: its module path, the name targets match against, and how peft reaches it.

    ``kind`` is ``module`` (peft wraps the layer), ``param`` (peft parametrizes ``param``, a
    direct parameter of ``path``; the module's own forward switches it on) or ``read``
    (as ``param``, but ``reader`` switches it on because it reads the weight itself).
    """

    name: str
    path: str
    kind: str
    param: str = "weight"
    reader: str = ""


def adaptable(model: nn.Module) -> list[Target]:
    """Every layer of ``model`` that LoRA can adapt, in module order."""
    readers = _weight_readers()
    out: list[Target] = []
    for path, mod in model.named_modules():
        if isinstance(mod, readers):
            for child_name, child in mod.named_children():
                if isinstance(child, nn.Linear):
                    out.append(Target(f"{path}.{child_name}", f"{path}.{child_name}", "read", "weight", path))
        if isinstance(getattr(mod, "in_proj_weight", None), nn.Parameter):
            out.append(Target(f"{path}.in_proj", path, "param", "in_proj_weight"))
        if isinstance(mod, (nn.Linear, nn.Conv2d)) and not any(t.path == path for t in out):
            out.append(Target(path, path, "module"))
    return out


def matches(target: str, name: str) -> bool:
    """peft's rule: ``target`` is the whole dotted ``name`` or its last components."""
    return name == target or name.endswith("." + target)


def default_targets(model: nn.Module) -> tuple[str, ...]:
    """The default target names for ``model``'s towers: attention and MLP projections.

    open_clip transformer towers (ViT image tower, text tower): ``in_proj``, ``out_proj``,
    ``c_fc``, ``c_proj``. ModifiedResNet image tower: every ``conv1``/``conv2``/``conv3``
    (stem and bottlenecks) and the attention pool's ``q_proj``/``k_proj``/``v_proj``/``c_proj``.
    timm towers: ``qkv``, ``proj``, ``fc1``, ``fc2``; Hugging Face text towers: ``query``,
    ``key``, ``value``, ``dense``. Only names that match a layer of the model are returned.
    """
    families = TRANSFORMER_TARGETS + RESNET_TARGETS + TIMM_TARGETS + HF_TEXT_TARGETS
    from open_clip.modified_resnet import ModifiedResNet

    visual = getattr(model, "visual", None)
    if not isinstance(visual, ModifiedResNet):
        # conv names belong to the ResNet family only: a ViT's patch embedding is left frozen
        families = tuple(n for n in families if not n.startswith("conv"))
    names = [t.name for t in adaptable(model)]
    chosen: list[str] = []
    for family_name in families:
        if family_name not in chosen and any(matches(family_name, n) for n in names):
            chosen.append(family_name)
    return tuple(chosen)


def select(model: nn.Module, targets: Iterable[str]) -> list[Target]:
    """The adaptable layers that ``targets`` name; a target that names none is a ModelError."""
    layers = adaptable(model)
    chosen: dict[str, Target] = {}
    for t in targets:
        hit = [layer for layer in layers if matches(t, layer.name)]
        if not hit:
            known = sorted({layer.name.rsplit(".", 1)[-1] for layer in layers})
            raise ModelError(f"lora target {t!r} matches no linear, convolution or attention layer of the model (layers are named {', '.join(known)})")
        for layer in hit:
            chosen[layer.name] = layer
    return [layer for layer in layers if layer.name in chosen]


def _param_wrapper(module: nn.Module, param: str) -> nn.Module:
    """The peft ``ParamWrapper`` around ``module`` that adapts its parameter ``param``."""
    from peft.tuners.lora.layer import ParamWrapper

    while isinstance(module, ParamWrapper):
        if module.parameter_name == param:
            return module
        module = module.base_layer
    raise ModelError(f"peft did not wrap the parameter {param!r}")


class _SwitchOn:
    """Forward hooks of a weight-reading module: its children's LoRA parametrizations are on while it runs.

    The hooks find the children by attribute name on the module they are called with, so a
    ``copy.deepcopy`` of the model switches on its own adapters, not the original's.
    """

    def __init__(self, children: tuple[tuple[str, str], ...]) -> None:
        self.children = children  # (attribute name, parameter name)

    def enter(self, module: nn.Module, _args: Any) -> None:
        """Forward pre-hook: switch the adapters on."""
        self.leave(module)  # a forward that raised leaves nothing switched on twice
        stack = contextlib.ExitStack()
        for attr, param in self.children:
            wrapper = _param_wrapper(getattr(module, attr), param)
            stack.enter_context(wrapper._activate_lora(wrapper.active_adapters))
        module.__dict__["_lora_switch"] = stack

    def leave(self, module: nn.Module, *_: Any) -> None:
        """Forward hook (also called when the forward raised): switch them off."""
        stack = module.__dict__.pop("_lora_switch", None)
        if stack is not None:
            stack.close()


def _install_reader_hooks(model: nn.Module, layers: list[Target]) -> None:
    """Hook each weight-reading module so that it switches its children's adapters on while it runs."""
    by_reader: dict[str, list[tuple[str, str]]] = {}
    for layer in layers:
        if layer.kind == "read":
            by_reader.setdefault(layer.reader, []).append((layer.path.rsplit(".", 1)[1], layer.param))
    for reader_path, children in by_reader.items():
        reader = _resolve(model, reader_path)
        switch = _SwitchOn(tuple(children))
        reader.register_forward_pre_hook(switch.enter)
        reader.register_forward_hook(switch.leave, always_call=True)


def _unwrapped(module: nn.Module) -> nn.Module:
    """The module under any peft wrappers."""
    while hasattr(module, "base_layer"):
        module = module.base_layer
    return module


def _resolve(model: nn.Module, path: str) -> nn.Module:
    """The module at ``path`` (a path from before the injection), under any peft wrappers."""
    module = _unwrapped(model)
    for part in path.split(".") if path else ():
        module = _unwrapped(getattr(module, part))
    return module


def frozen_weight(model: nn.Module, layer: Target) -> torch.Tensor:
    """The frozen tensor that ``layer``'s adapter adds to (for counting and checking)."""
    return getattr(_resolve(model, layer.path), layer.param)


def inject(model: nn.Module, targets: Iterable[str], rank: int, alpha: float) -> list[Target]:
    """Add LoRA adapters (rank ``rank``, scale ``alpha / rank``) to the layers ``targets`` name, in place.

    Every parameter of ``model`` is frozen except the adapters' ``lora_A``/``lora_B``;
    ``B`` starts at zero so the model's outputs do not change. Returns the adapted layers.
    """
    from peft import LoraConfig, inject_adapter_in_model

    layers = select(model, targets)
    # Two passes: peft walks the modules while it wraps them, so a parameter of a module inside
    # a module it has just wrapped (out_proj inside an attention layer whose in_proj it adapts)
    # would be looked up under a stale path. Children first, then the attention layers.
    passes = [
        ([t.path for t in layers if t.kind == "module"], [f"{t.path}.{t.param}" for t in layers if t.kind == "read"]),
        ([], [f"{t.path}.{t.param}" for t in layers if t.kind == "param"]),
    ]
    for modules, params in passes:
        if not modules and not params:
            continue
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=0.0,
            bias="none",
            # exact paths (a list matches by suffix, so a full path names one layer)
            target_modules=modules,
            target_parameters=params or None,
        )
        with warnings.catch_warnings():
            # the second pass adds to the same adapter; peft warns that the model already has one
            warnings.simplefilter("ignore", UserWarning)
            inject_adapter_in_model(config, model, adapter_name=_ADAPTER_NAME)
    _install_reader_hooks(model, layers)
    for name, p in model.named_parameters():
        p.requires_grad_(is_adapter_key(name))
    return layers


def is_adapter_key(name: str) -> bool:
    """Whether a parameter/state-dict key belongs to a LoRA adapter."""
    return ".lora_A." in name or ".lora_B." in name


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' tensors (keys as in ``model.state_dict()``), detached copies."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if is_adapter_key(k)}
