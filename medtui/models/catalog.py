"""Model names without importing torch: open_clip's config files and medtui's tiny configs.

The CLI and the app validate a model name with this before anything is stored or
launched; the worker builds the model with :mod:`medtui.models.clip`.
"""

from __future__ import annotations

import difflib
import importlib.util
from functools import lru_cache
from pathlib import Path

from medtui.errors import ModelError

CONFIG_DIR = Path(__file__).parent / "configs"
#: Well-known hub models worth suggesting (weights fetched from Hugging Face by open_clip).
HUB_MODELS: tuple[str, ...] = ("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",)


@lru_cache(maxsize=1)
def architectures() -> tuple[str, ...]:
    """Every architecture name open_clip can build, medtui's tiny configs first."""
    tiny = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
    spec = importlib.util.find_spec("open_clip")
    names: list[str] = []
    if spec is not None and spec.submodule_search_locations:
        cfg_dir = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
        names = sorted(p.stem for p in cfg_dir.glob("*.json"))
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
