"""Loading open_clip models: built-in names + pretrained tags, ``hf-hub:`` ids, local checkpoints.

This is the only module that imports open_clip. The tiny configs shipped in
``medtui/models/configs/`` are registered with open_clip's own config registry
(``add_model_config``), so they are built exactly like any other open_clip model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import torch

from medtui.errors import ModelError
from medtui.models.catalog import CONFIG_DIR, check_model



@lru_cache(maxsize=1)
def _open_clip() -> Any:
    """Import open_clip once and register medtui's tiny configs with it."""
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)
    return open_clip


@dataclass
class LoadedClip:
    """An open_clip model with what it takes to feed it.

    ``mean``/``std``/``image_size`` come from the model's preprocessing config;
    ``weights`` says in words where the weights came from (``random``, a tag, a path).
    """

    model: torch.nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    weights: str


def pretrained_tags(model: str) -> list[str]:
    """The open_clip pretrained tags known for architecture ``model``."""
    return list(_open_clip().list_pretrained_tags_by_model(model))


def weights_source(model: str, tag: str) -> str:
    """Where open_clip fetches ``model``/``tag`` from: ``hf-hub:org/repo/file`` or a URL."""
    cfg = _open_clip().get_pretrained_cfg(model, tag) or {}
    if cfg.get("hf_hub"):
        return f"hf-hub:{cfg['hf_hub']}"
    return cfg.get("url", "")


def _hf_cached(repo_id: str, filename: str | None) -> bool:
    """Whether a file of an HF repo is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename and filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    for name in names:
        hit = try_to_load_from_cache(repo_id=repo_id, filename=name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return True
    return False


def weights_cached(model: str, tag: str) -> bool:
    """Whether the weights of ``model``/``tag`` are on disk (no download needed)."""
    cfg = _open_clip().get_pretrained_cfg(model, tag) or {}
    if cfg.get("file"):
        return os.path.isfile(cfg["file"])
    if cfg.get("hf_hub"):
        # open_clip writes 'org/repo/file' or 'org/repo/' (trailing slash: the default file name)
        repo_id, filename = os.path.split(cfg["hf_hub"])
        if _hf_cached(repo_id, filename or None):
            return True
    if cfg.get("url"):
        return os.path.isfile(os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(cfg["url"])))
    return False


def hub_cached(model_id: str) -> bool:
    """Whether an ``hf-hub:`` model's config and weights are in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    repo = model_id.removeprefix("hf-hub:")
    cfg = try_to_load_from_cache(repo_id=repo, filename="open_clip_config.json")
    return isinstance(cfg, str) and _hf_cached(repo, None)


def load_clip(model: str, pretrained: str | None, device: torch.device | str = "cpu") -> LoadedClip:
    """Build ``model`` with ``pretrained`` weights on ``device``.

    ``pretrained`` is an open_clip tag (``openai``), a path to a checkpoint file, or
    None for random weights (only sensible for the tiny test configs). ``model`` may be
    ``hf-hub:org/repo`` (e.g. BiomedCLIP) or ``local-dir:/path``; their weights come with them.
    Weights that are not cached and cannot be downloaded give a one-line ModelError that
    says what to fetch.
    """
    oc = _open_clip()
    check_model(model)
    kwargs: dict[str, Any] = {}
    weights = "random"
    if model.startswith("hf-hub:"):
        weights = model
        kwargs["require_pretrained"] = True
    elif model.startswith("local-dir:"):
        weights = model.removeprefix("local-dir:")
        kwargs["require_pretrained"] = True
    elif pretrained:
        tags = pretrained_tags(model)
        if pretrained in tags:
            weights = f"{model}/{pretrained}"
        elif os.path.isfile(os.path.expanduser(pretrained)):
            pretrained = os.path.abspath(os.path.expanduser(pretrained))
            weights = pretrained
        else:
            known = f"known tags: {', '.join(tags)}" if tags else "it has no published tags"
            raise ModelError(f"pretrained {pretrained!r} is neither a tag of {model} nor a checkpoint file ({known})")
        kwargs["pretrained"] = pretrained
        kwargs["require_pretrained"] = True
    # open_clip logs a warning for random init at every build; the run records its weights instead.
    logging.disable(logging.CRITICAL)
    try:
        clip = oc.create_model(model, device=device, **kwargs)
    except ImportError as e:
        raise ModelError(f"{model}: a package it needs is missing ({e}); e.g. BiomedCLIP needs `pip install transformers`") from None
    except Exception as e:  # open_clip raises RuntimeError/FileNotFoundError/ValueError for missing weights
        raise ModelError(_explain_load_failure(model, pretrained, e)) from None
    finally:
        logging.disable(logging.NOTSET)
    tokenizer = oc.get_tokenizer(model)
    pp = clip.visual.preprocess_cfg if hasattr(clip.visual, "preprocess_cfg") else {}
    size = pp.get("size", getattr(clip.visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        size = size[0]
    return LoadedClip(
        model=clip,
        tokenizer=tokenizer,
        mean=tuple(pp.get("mean", oc.OPENAI_DATASET_MEAN)),
        std=tuple(pp.get("std", oc.OPENAI_DATASET_STD)),
        image_size=int(size),
        weights=weights,
    )


def _explain_load_failure(model: str, pretrained: str | None, err: Exception) -> str:
    """One line saying which weights are missing and where to put them."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if model.startswith("hf-hub:"):
        return (
            f"cannot load {model}: not in the Hugging Face cache and not downloadable here ({first[:160]}); "
            f"fetch it on a connected machine (huggingface-cli download {model.removeprefix('hf-hub:')}) "
            "and copy the cache (HF_HOME) over"
        )
    if pretrained and not os.path.isfile(pretrained):
        src = weights_source(model, pretrained)
        return (
            f"cannot load weights {model}/{pretrained}: not cached and not downloadable here ({first[:160]}); "
            f"fetch {src} into the Hugging Face cache, or pass --pretrained PATH to a local checkpoint"
        )
    return f"cannot load {model} ({pretrained or 'random weights'}): {first[:200]}"
