"""Continual-learning methods: how a continual stage trains (torch-free to import).

A method is one file in this package: a :class:`~medtui.methods.base.Method` subclass
registered with :func:`register_method`, whose ``Options`` dataclass declares its options
with their defaults. The registry discovers every module of the package on first use, so
adding a method is adding a file. Options are validated here (unknown key, wrong type,
out-of-range value → :class:`~medtui.errors.ConfigError`, one line) and stored resolved,
with every default filled in. Method files import torch only inside their hooks, so the
CLI and the app can list methods and draw their options without it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
import typing
from typing import TYPE_CHECKING, Any, Callable, Mapping

from medtui.errors import ConfigError

if TYPE_CHECKING:
    from medtui.methods.base import Method

_REGISTRY: dict[str, type["Method"]] = {}
_DISCOVERED = False


def register_method(name: str) -> Callable[[type["Method"]], type["Method"]]:
    """Class decorator: make a method available under ``name``."""

    def deco(cls: type["Method"]) -> type["Method"]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")
    _DISCOVERED = True


def method_names() -> tuple[str, ...]:
    """Registered method names, ``naive`` first, then alphabetical."""
    _discover()
    return tuple(sorted(_REGISTRY, key=lambda n: (n != "naive", n)))


def get_method(name: str) -> type["Method"]:
    """The method class registered as ``name``; ConfigError (with close matches) if there is none."""
    _discover()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=2, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown method {name!r}{hint}: choose one of {', '.join(method_names())}")
    return _REGISTRY[name]


def option_fields(name: str) -> list[dict[str, Any]]:
    """The options of method ``name``: ``name``, ``type`` (int/float/bool/str), ``default``, ``help``."""
    cls = get_method(name).Options
    hints = typing.get_type_hints(cls)
    return [
        {"name": f.name, "type": hints[f.name].__name__, "default": f.default, "help": f.metadata.get("help", "")}
        for f in dataclasses.fields(cls)
    ]


def _coerce(method: str, key: str, kind: type, value: Any) -> Any:
    bad = ConfigError(f"method {method!r} option {key!r} must be {'an' if kind is int else 'a'} {kind.__name__}, got {value!r}")
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
            raise bad
        return float(value)
    if not isinstance(value, str):
        raise bad
    return value


def resolve_options(name: str, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated options of method ``name`` with every default filled in (plain JSON values).

    Keys may use ``-`` for ``_``. Raises ConfigError naming the method and the option.
    """
    cls = get_method(name).Options
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        k = str(key).replace("-", "_")
        if k not in known:
            close = difflib.get_close_matches(k, known, n=2, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            opts = f"its options: {', '.join(known)}" if known else "it has no options"
            raise ConfigError(f"method {name!r} has no option {key!r}{hint}; {opts}")
        values[k] = _coerce(name, k, hints[k], value)
    opts = cls(**values)
    check = getattr(opts, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as e:
            raise ConfigError(f"method {name!r}: {e}") from None
    return dataclasses.asdict(opts)


def parse_value(text: str) -> Any:
    """A ``--opt KEY=VALUE`` value as TOML reads it (``0.5``, ``2``, ``true``), else the string itself."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def describe() -> list[dict[str, Any]]:
    """Every method: name, one-line description, paper, options with defaults (what ``medtui methods`` lists)."""
    out = []
    for name in method_names():
        cls = get_method(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append({"name": name, "description": doc[0] if doc else "", "paper": cls.paper, "options": option_fields(name)})
    return out
