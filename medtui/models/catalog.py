"""Model names without importing torch: open_clip's config files and medtui's tiny configs.

The CLI and the app validate a model name with this before anything is stored or
launched; the worker builds the model with :mod:`medtui.models.clip`.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from medtui.errors import ModelError

CONFIG_DIR = Path(__file__).parent / "configs"
#: Well-known hub models worth suggesting (weights fetched from Hugging Face by open_clip).
HUB_MODELS: tuple[str, ...] = ("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",)


def _open_clip_config_dir() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model_configs"


@lru_cache(maxsize=1)
def architectures() -> tuple[str, ...]:
    """Every architecture name open_clip can build, medtui's tiny configs first."""
    tiny = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
    cfg_dir = _open_clip_config_dir()
    names = sorted(p.stem for p in cfg_dir.glob("*.json")) if cfg_dir is not None else []
    return tuple(tiny + [n for n in names if n not in tiny])


def tiny_models() -> tuple[str, ...]:
    """The tiny random-weight configs shipped with medtui (for tests and the default run)."""
    return tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))


def check_model(name: str) -> None:
    """Raise ModelError for a name that is neither an architecture nor an ``hf-hub:``/``local-dir:`` id."""
    if name.startswith("hf-hub:"):
        if name.count("/") != 1 or name.endswith("/"):
            raise ModelError(f"model {name!r}: an hf-hub id looks like hf-hub:ORG/REPO")
        return
    if name.startswith("local-dir:"):
        if not Path(name.removeprefix("local-dir:")).expanduser().is_dir():
            raise ModelError(f"model {name!r}: no such directory")
        return
    names = architectures()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see `medtui models`)"
        raise ModelError(f"unknown model {name!r}{hint}")


#: Adaptable layer names (last path component) of open_clip's own towers, for the torch-free check.
_TRANSFORMER_LAYERS = ("in_proj", "out_proj", "c_fc", "c_proj")
_VIT_LAYERS = ("conv1",)  # the patch embedding
_RESNET_LAYERS = ("conv1", "conv2", "conv3", "downsample.0", "q_proj", "k_proj", "v_proj", "c_proj")


def lora_layer_names(model: str) -> tuple[str, ...] | None:
    """The layer names LoRA can target in ``model``, read from its JSON config without torch.

    None when the towers are not open_clip's own (timm or Hugging Face towers, ``hf-hub:``
    models): their names are checked when the model is built.
    """
    path = CONFIG_DIR / f"{model}.json"
    if not path.is_file():
        cfg_dir = _open_clip_config_dir()
        path = cfg_dir / f"{model}.json" if cfg_dir is not None else path
    if model.startswith(("hf-hub:", "local-dir:")) or not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    if vision.get("timm_model_name") or text.get("hf_model_name") or "text_cfg" not in cfg:
        return None
    layers = _RESNET_LAYERS if isinstance(vision.get("layers"), (list, tuple)) else _VIT_LAYERS + _TRANSFORMER_LAYERS
    return tuple(dict.fromkeys(layers + _TRANSFORMER_LAYERS))


def check_lora_targets(model: str, targets: tuple[str, ...]) -> None:
    """Raise ModelError for a LoRA target that names no layer of ``model`` (when that is known without torch).

    A target matches a layer when it is the layer's path or its last dotted components; here it
    is checked against those last components (``mlp.c_fc`` by its ``c_fc``), in full when the
    model is built.
    """
    names = lora_layer_names(model)
    if names is None:
        return
    for t in targets:
        if not any(t == n or t.endswith("." + n) or n.endswith("." + t) for n in names):
            raise ModelError(f"lora target {t!r} names no layer of {model} (its adaptable layers: {', '.join(names)})")
