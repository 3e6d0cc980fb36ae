"""A run's configuration: a frozen dataclass, read from and written to TOML.

The same file format is read by ``medtui run --config exp.toml`` and written by
the app's *save* action. Flags override the file; :func:`resolve` fills in the
values left to medtui (learning rate, name) and checks every field, raising
:class:`~medtui.errors.ConfigError` with a one-line message on bad input.
Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from medtui.errors import ConfigError
from medtui.protocols import PROTOCOLS, protocol_names

TUNE_MODES: tuple[str, ...] = ("full", "vision", "head", "lora")
AMP_MODES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
#: How a joint stage draws its batches: ``balanced`` gives every task the same share of each
#: epoch (small tasks repeat, large ones are subsampled), ``proportional`` draws in proportion
#: to task size (every sample once per epoch).
JOINT_SAMPLING: tuple[str, ...] = ("balanced", "proportional")
DEFAULT_TASKS: tuple[str, ...] = ("synth-cxr-a", "synth-cxr-b", "synth-derm", "synth-histo", "synth-blood")
DEFAULT_MODEL = "medtui-tiny"
#: Learning rates chosen when ``lr`` is left unset: random weights need a large step,
#: pre-trained CLIP weights are destroyed by one (fine-tuning practice is 1e-5).
LR_FROM_SCRATCH = 1e-3
LR_PRETRAINED = 1e-5
#: LoRA on pre-trained weights: the adapters start at zero and train alone, so they take a
#: larger step than full fine-tuning (1e-4, the order used for CLIP in CLIP-LoRA, Zanella & Ben Ayed 2024).
LR_LORA_PRETRAINED = 1e-4

#: Upper bounds on counts: far above any real run, they catch an extra zero (or ten) before a run is stored.
LIMITS: dict[str, int] = {
    "epochs": 10_000, "batch_size": 65_536, "eval_batch_size": 65_536, "buffer_size": 10_000_000,
    "max_train": 100_000_000, "max_test": 100_000_000, "keep_checkpoints": 1_000, "shots": 10_000_000,
}
MAX_LR = 10.0
MAX_SEED = 2**32 - 1
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: A LoRA target: a module name, or the last dotted components of a module path (``mlp.c_fc``).
_TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
#: Bounds of the LoRA rank (a rank above a layer's width adds parameters and nothing else).
LORA_RANK_MAX = 4096
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+@:/-]{0,79}$")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Stored, resolved, with the run and every checkpoint.

    ``tasks`` is the training sequence (its order matters for ``continual``);
    ``heldout`` tasks are evaluated at every point but never trained on.
    ``paradigm`` is the protocol (:mod:`medtui.protocols`: specialized, joint, continual).
    ``method`` is how a continual stage trains (:mod:`medtui.methods`; ``naive`` = plain
    fine-tuning) and ``method_opts`` its options, stored resolved (every default filled in).
    ``buffer_size`` is the rehearsal budget in samples (``continual`` only, any method;
    0 = no replay). ``joint_sampling`` is how a joint stage draws its batches (see
    :data:`JOINT_SAMPLING`). ``pretrained`` is an open_clip tag (``openai``), a local
    checkpoint path, or None for random weights; ``model`` may be an ``hf-hub:`` id.
    ``lr`` None means "choose for me" (see :func:`resolve`). ``max_train``/``max_test``
    cap each task's split with a class-stratified, seeded subsample. ``shots`` K > 0 keeps
    K labelled training samples per class of every task (seeded; 0 = all), the data-efficiency axis.
    ``eval_every`` N > 1 evaluates every column only after every N-th stage and the last
    (zero-shot always); the other stages evaluate just their own tasks, so ``la``/``bwt``
    keep their terms and the skipped cells stay missing (metrics skip them). ``deterministic``
    asks for deterministic GPU kernels (no cuDNN autotuning), so a GPU run resumed from a
    checkpoint matches one that never stopped.
    ``text_lr_scale`` multiplies the learning rate of the text tower's trainable parameters
    (``full`` tuning, and text-tower adapters of ``lora``); 1 = one rate for everything.
    ``recalibrate_bn`` re-estimates batch-norm statistics on the stage's data after each
    stage (models with batch norm only; see :func:`medtui.engine.train.recalibrate_norm_stats`).
    ``lora_rank``/``lora_alpha``/``lora_targets`` shape the adapters of ``tune = "lora"``
    (rank r, scale alpha / r, target module names; empty = the defaults for the architecture,
    see :func:`medtui.models.lora.default_targets`); with any other tuning mode they must keep
    their defaults (a value that would be ignored is an error, not a silent no-op).
    ``user_tasks`` holds task declarations (the ``[[task]]`` tables of a TOML file)
    so that a stored config is self-contained.
    """

    name: str | None = None
    tasks: tuple[str, ...] = DEFAULT_TASKS
    heldout: tuple[str, ...] = ()
    paradigm: str = "continual"
    method: str = "naive"
    method_opts: Mapping[str, Any] = field(default_factory=dict)
    buffer_size: int = 0
    joint_sampling: str = "balanced"
    model: str = DEFAULT_MODEL
    pretrained: str | None = None
    tune: str = "full"
    epochs: int = 3
    batch_size: int = 64
    lr: float | None = None
    weight_decay: float = 0.01
    warmup: float = 0.05
    text_lr_scale: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    data_dir: str | None = None
    max_train: int | None = None
    max_test: int | None = None
    shots: int = 0
    eval_batch_size: int = 256
    eval_every: int = 1
    deterministic: bool = False
    keep_checkpoints: int = 1
    recalibrate_bn: bool = True
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ()
    user_tasks: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-friendly dict (tuples become lists, None values kept)."""
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["heldout"] = list(self.heldout)
        d["lora_targets"] = list(self.lora_targets)
        d["user_tasks"] = [dict(t) for t in self.user_tasks]
        d["method_opts"] = dict(self.method_opts)
        return d

    @property
    def columns(self) -> tuple[str, ...]:
        """Matrix columns: trained tasks, then held-out tasks."""
        return self.tasks + self.heldout

    @property
    def n_stages(self) -> int:
        """Number of training stages (rows after row 0)."""
        return len(stage_labels(self))


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RunConfig))
#: Keys that only mean something with ``tune = "lora"`` (listings leave them out for other runs).
LORA_KEYS: tuple[str, ...] = ("lora_rank", "lora_alpha", "lora_targets")


def _close(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean x?)' suffix for an unknown name, or ''."""
    m = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(m)}?)" if m else ""


def _coerce(key: str, value: Any) -> Any:
    """Convert a raw TOML/flag value to the field's type, or raise ConfigError naming the key."""
    if key in ("tasks", "heldout"):
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key!r} must be a list of task names")
        return tuple(value)
    if key == "lora_targets":
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key!r} must be a list of module names, got {value!r}")
        return tuple(value)
    if key == "user_tasks":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
            raise ConfigError("'task' must be an array of tables ([[task]])")
        return tuple(dict(v) for v in value)
    if key == "method_opts":
        if not isinstance(value, Mapping):
            raise ConfigError("'method_opts' must be a table of method options")
        return dict(value)
    if key in ("recalibrate_bn", "deterministic"):
        if not isinstance(value, bool):
            raise ConfigError(f"{key!r} must be true or false, got {value!r}")
        return value
    if key in ("buffer_size", "epochs", "batch_size", "seed", "eval_batch_size", "eval_every", "keep_checkpoints", "shots", "lora_rank"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key!r} must be an integer, got {value!r}")
        return value
    if key in ("max_train", "max_test"):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key!r} must be an integer, got {value!r}")
        return value
    if key in ("lr", "weight_decay", "warmup", "lora_alpha", "text_lr_scale"):
        if value is None and key == "lr":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key!r} must be a number, got {value!r}")
        return float(value)
    if key in ("name", "pretrained", "data_dir"):
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{key!r} must be a string, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{key!r} must be a string, got {value!r}")
    return value


def from_mapping(data: Mapping[str, Any], base: RunConfig | None = None, origin: str = "config") -> RunConfig:
    """Build a config from a mapping (TOML table or stored JSON); unknown keys are errors.

    A ``task`` key (TOML ``[[task]]`` tables) declares user tasks. Values override ``base``.
    """
    updates: dict[str, Any] = {}
    data = dict(data)
    method = data.get("method")
    if isinstance(method, Mapping):  # a TOML [method] table: its name and its options
        table = dict(method)
        if not isinstance(table.get("name"), str):
            raise ConfigError(f"{origin}: the [method] table needs a name (e.g. name = \"lwf\")")
        data["method"] = table.pop("name")
        data["method_opts"] = {**table, **dict(data.get("method_opts") or {})}
    elif "method" in data and "method_opts" not in data:
        data["method_opts"] = {}  # a new method does not inherit another method's options
    for key, value in data.items():
        k = "user_tasks" if key == "task" else key.replace("-", "_")
        if k not in FIELD_NAMES:
            raise ConfigError(f"{origin}: unknown key {key!r}{_close(k, FIELD_NAMES)}")
        try:
            updates[k] = _coerce(k, value)
        except ConfigError as e:
            raise ConfigError(f"{origin}: {e}") from None
    return replace(base or RunConfig(), **updates)


def read_toml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """A TOML file's table; unreadable or malformed files give a one-line ConfigError naming ``what``.

    Relative ``path`` entries of ``[[task]]`` tables are made absolute against the file's folder.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {what} {str(p)!r}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p.name}: malformed TOML: {e}") from None
    tasks = data.get("task")
    if isinstance(tasks, list):
        data["task"] = [
            {**t, "path": str((p.parent / t["path"]).resolve())}
            if isinstance(t, dict) and isinstance(t.get("path"), str) and not Path(t["path"]).is_absolute()
            else t
            for t in tasks
        ]
    return data


def load_toml(path: str | Path) -> RunConfig:
    """Read an experiment TOML file; malformed TOML or unknown keys give a one-line ConfigError.

    Relative ``path`` entries of ``[[task]]`` tables are made absolute against the file's folder.
    """
    return from_mapping(read_toml(path), origin=Path(path).name)


def to_toml(config: RunConfig) -> str:
    """Serialise a config to TOML that :func:`load_toml` reads back to an equal config."""
    import tomli_w

    d = config.to_dict()
    user_tasks = d.pop("user_tasks")
    opts = d.pop("method_opts")
    out = {k: v for k, v in d.items() if v is not None and k != "method"}
    out["method"] = {"name": config.method, **opts}
    if user_tasks:
        out["task"] = user_tasks
    return tomli_w.dumps(out)


def auto_name(config: RunConfig) -> str:
    """A short readable default name: protocol, method, buffer and the sequence."""
    seq = "→".join(t.removeprefix("synth-") for t in config.tasks)
    if len(seq) > 40:
        seq = f"{len(config.tasks)} tasks"
    method = f"+{config.method}" if config.method != "naive" else ""
    buf = f"+buf{config.buffer_size}" if config.buffer_size else ""
    return f"{config.paradigm}{method}{buf} {seq}"


def resolve(config: RunConfig) -> RunConfig:
    """Check every field and fill in derived values (lr, name). Raises ConfigError on bad input.

    Task names are checked against the registry separately (that needs the data layer).
    """
    from medtui.methods import resolve_options

    if config.paradigm not in PROTOCOLS:
        raise ConfigError(f"unknown paradigm {config.paradigm!r}: choose one of {', '.join(protocol_names())}")
    if config.joint_sampling not in JOINT_SAMPLING:
        raise ConfigError(f"unknown joint sampling {config.joint_sampling!r}: choose one of {', '.join(JOINT_SAMPLING)}")
    method_opts = resolve_options(config.method, config.method_opts)
    if config.method != "naive" and not PROTOCOLS[config.paradigm].sequential:
        raise ConfigError(f"method {config.method!r} applies to continual runs only, not {config.paradigm} (use --method naive)")
    _check_lora(config)  # first: its messages are the more specific ones for the lora fields
    _check_bounds(config)
    if config.tune not in TUNE_MODES:
        raise ConfigError(f"unknown tuning mode {config.tune!r}: choose one of {', '.join(TUNE_MODES)}")
    if config.amp not in AMP_MODES:
        raise ConfigError(f"unknown amp mode {config.amp!r}: choose one of {', '.join(AMP_MODES)}")
    if config.amp == "fp16" and config.device == "cpu":
        raise ConfigError("amp fp16 needs a CUDA device (on the CPU use amp bf16 or off)")
    if not config.tasks:
        raise ConfigError("no tasks given: name at least one task to train on")
    for group, names in (("tasks", config.tasks), ("heldout", config.heldout)):
        dup = sorted({t for t in names if names.count(t) > 1})
        if dup:
            raise ConfigError(f"task {dup[0]!r} appears twice in {group}")
    both = sorted(set(config.tasks) & set(config.heldout))
    if both:
        raise ConfigError(f"task {both[0]!r} is both trained and held out")
    if config.buffer_size < 0:
        raise ConfigError(f"buffer size must be >= 0, got {config.buffer_size}")
    if config.buffer_size > 0 and not PROTOCOLS[config.paradigm].sequential:
        raise ConfigError(
            f"a replay buffer (buffer size {config.buffer_size}) only applies to the continual paradigm, not {config.paradigm}"
        )
    for key in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
        v = getattr(config, key)
        if v <= 0:
            raise ConfigError(f"{key.replace('_', ' ')} must be > 0, got {v}")
    if config.shots < 0:
        raise ConfigError(f"shots must be >= 0 (0 = all training samples), got {config.shots}")
    if config.keep_checkpoints < 0:
        raise ConfigError(f"keep checkpoints must be >= 0, got {config.keep_checkpoints}")
    for key in ("max_train", "max_test"):
        v = getattr(config, key)
        if v is not None and v <= 0:
            raise ConfigError(f"{key.replace('_', ' ')} must be > 0, got {v}")
    if config.lr is not None and not config.lr > 0:
        raise ConfigError(f"learning rate must be > 0, got {config.lr}")
    if config.weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {config.weight_decay}")
    if not 0 <= config.warmup < 1:
        raise ConfigError(f"warmup must be a fraction in [0, 1), got {config.warmup}")
    if not 0 < config.text_lr_scale <= 100:
        raise ConfigError(f"text lr scale must be in (0, 100], got {config.text_lr_scale:g}")
    if config.text_lr_scale != 1.0 and config.tune in ("vision", "head"):
        raise ConfigError(f"text lr scale {config.text_lr_scale:g} has no effect with tune {config.tune!r} (the text tower is frozen): leave it at 1")
    if not _DEVICE_RE.match(config.device):
        raise ConfigError(f"unknown device {config.device!r}: use auto, cpu or cuda[:i]")
    if config.name is not None and not _NAME_RE.match(config.name):
        raise ConfigError(f"run name {config.name!r} must be 1-80 printable characters")
    if config.name is not None and config.name.isdigit():
        raise ConfigError(f"run name {config.name!r} is all digits: `medtui show {config.name}` would mean run id {config.name}; add a letter")
    pretrained = config.pretrained
    if pretrained is not None and pretrained.strip().lower() in ("", "none", "random"):
        pretrained = None
    lr = config.lr
    if lr is None:
        from_scratch = pretrained is None and not config.model.startswith(("hf-hub:", "local-dir:"))
        lr = LR_FROM_SCRATCH if from_scratch else LR_LORA_PRETRAINED if config.tune == "lora" else LR_PRETRAINED
    resolved = replace(config, pretrained=pretrained, lr=lr, method_opts=method_opts)
    if resolved.name is None:
        resolved = replace(resolved, name=auto_name(resolved))
    return resolved


def _check_lora(config: RunConfig) -> None:
    """The LoRA fields: in range, well-formed, and left at their defaults unless ``tune = "lora"``."""
    if config.tune != "lora":
        default = RunConfig()
        changed = [k for k in ("lora_rank", "lora_alpha", "lora_targets") if getattr(config, k) != getattr(default, k)]
        if changed:
            raise ConfigError(f"{changed[0].replace('_', ' ')} applies only with tune = 'lora' (tune is {config.tune!r})")
        return
    if not 1 <= config.lora_rank <= LORA_RANK_MAX:
        raise ConfigError(f"lora rank must be in 1..{LORA_RANK_MAX}, got {config.lora_rank}")
    if not (math.isfinite(config.lora_alpha) and config.lora_alpha > 0):
        raise ConfigError(f"lora alpha must be a finite number > 0, got {config.lora_alpha}")
    for t in config.lora_targets:
        if not _TARGET_RE.match(t):
            raise ConfigError(f"lora target {t!r} is not a module name (letters, digits, _ and dots, e.g. c_fc or mlp.c_fc)")
    dup = sorted({t for t in config.lora_targets if config.lora_targets.count(t) > 1})
    if dup:
        raise ConfigError(f"lora target {dup[0]!r} appears twice")


def _check_bounds(config: RunConfig) -> None:
    """Every float finite (top-level fields and option tables alike), counts and lr below sane limits."""
    for f in fields(config):
        value = getattr(config, f.name)
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        for sub, v in items:
            if isinstance(v, float) and not math.isfinite(v):
                key = f.name.replace("_", " ") + (f" {sub}" if sub else "")
                raise ConfigError(f"{key} must be a finite number, got {v}")
    for key, top in LIMITS.items():
        v = getattr(config, key)
        if v is not None and v > top:
            raise ConfigError(f"{key.replace('_', ' ')} must be at most {top:,}, got {v:,}")
    if config.lr is not None and config.lr > MAX_LR:
        raise ConfigError(f"learning rate must be at most {MAX_LR:g}, got {config.lr:g}")
    if not 0 <= config.seed <= MAX_SEED:
        raise ConfigError(f"seed must be in 0..{MAX_SEED}, got {config.seed}")


def stage_labels(config: RunConfig) -> list[str]:
    """Row labels of the stages (rows 1..T): ``after TASK`` (continual), ``model TASK`` (specialized), ``joint``."""
    protocol = PROTOCOLS.get(config.paradigm, PROTOCOLS["continual"])
    return [s.label for s in protocol.stages(config.tasks)]
