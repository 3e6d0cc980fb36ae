"""One run from start to end: load tasks and model, evaluate zero-shot, then train and evaluate each stage.

The protocol gives the stages, the method (:mod:`medtui.methods`) trains them through its
hooks, the rehearsal buffer (when ``buffer_size > 0``) adds replay samples; the engine
knows no method by name. It reports everything through ``emit`` (see
:mod:`medtui.events`) and never touches the store. Each stage is seeded from (seed,
stage), and the stage checkpoint holds the model, the method's state and the buffer, so
a run resumed from it gives the same matrix as one that never stopped (on CPU).
Checkpoints hold tensors and plain values only and load with ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from medtui.config import RunConfig
from medtui.data.registry import TaskRegistry
from medtui.engine.evaluate import evaluate_row
from medtui.engine.frozen import FrozenModels
from medtui.engine.tensors import TaskTensors, device_data_budget, to_task_tensors
from medtui.engine.train import amp_dtype, cpu_has_native_bf16, recalibrate_norm_stats, train_stage
from medtui.eta import make_plan
from medtui.format import fmt_duration
from medtui.errors import ConfigError, MedtuiError, RunCancelled
from medtui.events import Event, LogLine, RunFinished, RunStarted, StageFinished
from medtui.methods import get_method
from medtui.methods.base import HookContext, Method
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip
from medtui.paradigms.rehearsal import Rehearsal
from medtui.protocols import PROTOCOLS


@dataclass(frozen=True)
class ResumePoint:
    """Continue after row ``stage`` (its checkpoint holds the model, method state and buffer)."""

    stage: int
    checkpoint: Path


def pick_device(spec: str, deterministic: bool = False) -> torch.device:
    """``auto`` → the first CUDA device if there is one, else the CPU; other values as given (checked).

    On CUDA, TF32 matmuls are allowed (CLIP fine-tuning does not need full FP32 matmul precision).
    cuDNN autotunes its kernels once per input shape (a run has a handful: full, last and replay
    batches, evaluation batches); ``deterministic`` turns that off and asks for deterministic
    kernels instead, so that a resumed GPU run repeats the one that never stopped.
    ``$MEDTUI_THREADS`` caps the CPU threads (the queue sets it when several CPU runs share a machine).
    """
    threads = os.environ.get("MEDTUI_THREADS")
    if threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if spec == "auto" else torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} asked for but CUDA is not available here (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
    return dev


def note_precision(amp: str, device: torch.device, emit: Callable[[Event], None]) -> None:
    """Refuse fp16 off CUDA; say in the log when the CPU trains under bf16 autocast (and when that is emulated)."""
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"amp fp16 needs a CUDA device, this run is on {device.type} (use amp bf16 or off)")
    if amp_dtype(device, amp) == torch.bfloat16 and device.type == "cpu":
        native = cpu_has_native_bf16()
        emit(LogLine("info" if native else "warning", "bf16 autocast on the CPU" + (
            "" if native else ": this processor has no bf16 instructions, so it is emulated and slower than amp off")))


def eval_columns(tensors: list[TaskTensors], trained: tuple[str, ...], row: int, n_rows: int, every: int) -> list[TaskTensors]:
    """The columns evaluated after stage ``row`` of ``n_rows``: all of them every ``every`` stages and
    after the last; otherwise only the stage's own tasks (their cells feed ``la``/``bwt``)."""
    if every <= 1 or row % every == 0 or row == n_rows:
        return tensors
    return [t for t in tensors if t.spec.name in trained]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_tasks(config: RunConfig, emit: Callable[[Event], None]) -> list[Any]:
    """Decode every column task (trained then held-out) into memory."""
    registry = TaskRegistry(config.data_dir, config.user_tasks)
    out = []
    for name in config.columns:
        t0 = time.perf_counter()
        data = registry.load(name, max_train=config.max_train, max_test=config.max_test, seed=config.seed, shots=config.shots)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
        emit(LogLine("info", f"loaded {name}: {sizes} ({fmt_duration(time.perf_counter() - t0)})"))
        out.append(data)
    return out


def save_checkpoint(path: Path, model: ClipClassifier, state: dict[str, Any], keep: int) -> Path:
    """Write a stage checkpoint atomically and prune all but the newest ``keep`` in its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.checkpoint_state(), **state}, tmp)
    os.replace(tmp, path)
    older = sorted(path.parent.glob("stage-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    for p in older[:-keep] if keep else older:
        if p != path:
            p.unlink(missing_ok=True)
    return path


def build_method(config: RunConfig) -> Method:
    """The method object of a resolved config, with its options."""
    cls = get_method(config.method)
    return cls(cls.Options(**dict(config.method_opts)))


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """A stage checkpoint, loaded with ``weights_only=True`` (tensors and plain values only)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise ConfigError(f"cannot load checkpoint {path.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def export_clip_weights(checkpoint: Path, out: Path) -> Path:
    """Save the open_clip weights of a stage checkpoint as a file ``--pretrained`` accepts.

    A checkpoint of a ``lora`` run holds only adapters, not a whole model: a one-line ConfigError.
    """
    from medtui.models.lora import is_adapter_key

    state = load_checkpoint(checkpoint, torch.device("cpu"))["model"]
    weights = {k.removeprefix("clip."): v for k, v in state.items() if k.startswith("clip.")}
    if not weights or any(is_adapter_key(k) for k in weights):
        raise ConfigError(f"{checkpoint.name} holds no whole open_clip model (a LoRA run's checkpoint holds adapters only)")
    torch.save(weights, out)
    return out


def run_experiment(
    config: RunConfig,
    emit: Callable[[Event], None],
    *,
    checkpoint_dir: Path | None = None,
    resume: ResumePoint | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run a resolved ``config`` to the end, reporting through ``emit``.

    Emits :class:`RunFinished` with ``finished``, ``cancelled`` (``should_stop`` became
    true) or ``failed``; the exception of a failed or cancelled run is re-raised.
    """
    try:
        _run(config, emit, checkpoint_dir, resume, should_stop)
    except RunCancelled as e:
        emit(RunFinished("cancelled", str(e)))
        raise
    except MedtuiError as e:  # bad input found once the run started: its message is already for people
        emit(RunFinished("failed", str(e)))
        raise
    except BaseException as e:
        emit(RunFinished("failed", f"{type(e).__name__}: {e}".strip()))
        raise
    emit(RunFinished("finished"))


def _run(
    config: RunConfig,
    emit: Callable[[Event], None],
    checkpoint_dir: Path | None,
    resume: ResumePoint | None,
    should_stop: Callable[[], bool],
) -> None:
    device = pick_device(config.device, config.deterministic)
    note_precision(config.amp, device, emit)
    seed_everything(config.seed)
    datas = load_tasks(config, emit)

    seed_everything(config.seed)  # model initialisation does not depend on how data loading used the RNG
    loaded = load_clip(config.model, config.pretrained, device)
    model = ClipClassifier.from_config(loaded, [d.spec for d in datas], config).to(device)
    # data goes to the device only after the model, within a share of what the model left free
    data_budget = [device_data_budget(device)]
    tensors = [to_task_tensors(d, device, data_budget) for d in datas]
    by_name: dict[str, TaskTensors] = {t.spec.name: t for t in tensors}
    stages = PROTOCOLS[config.paradigm].stages(config.tasks)
    method = build_method(config)
    replay = Rehearsal(config.buffer_size, config.seed) if config.buffer_size > 0 else None
    keep_initial = method.needs_initial or any(s.reset for s in stages)
    # the initial weights are those of the freshly built model, so a resumed run rebuilds them too
    frozen = FrozenModels(FrozenModels.capture(model) if keep_initial else None)

    start = 0
    if resume is not None:
        state = load_checkpoint(resume.checkpoint, device)
        model.load_checkpoint_state(state["model"])
        method.load_state_dict(state.get("method") or {})
        if replay is not None:
            replay.load_state_dict(state.get("buffer") or {})
        start = int(state["stage"])
        emit(LogLine("info", f"resuming after stage {start} from {resume.checkpoint.name}"))

    if model.lora_targets:
        emit(LogLine("info", f"LoRA rank {config.lora_rank}, alpha {config.lora_alpha:g} on {model.lora_summary}"))
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.trainable_parameters())
    emit(
        RunStarted(
            rows=["zero-shot"] + [s.label for s in stages],
            columns=list(config.columns),
            heldout=list(config.heldout),
            device=str(device),
            weights=loaded.weights,
            fingerprints={t.spec.name: t.fingerprint for t in tensors},
            n_params=int(n_params),
            n_trainable=int(n_train),
            start_row=start,
            plan=make_plan(
                [s.tasks for s in stages],
                {t.spec.name: len(t.train) for t in tensors},
                {t.spec.name: len(t.test) for t in tensors},
                config.epochs,
                config.batch_size,
                config.buffer_size if config.paradigm == "continual" else 0,
            ),
        )
    )
    if start == 0:
        t0 = time.perf_counter()
        for ev in evaluate_row(model, tensors, 0, "zero-shot", device, config.eval_batch_size, config.amp):
            emit(ev)
        emit(StageFinished(0, None, time.perf_counter() - t0))

    train_labels = {t.spec.name: t.train.labels_np for t in tensors}
    n_classes = {t.spec.name: t.spec.n_classes for t in tensors}
    registry = TaskRegistry(config.data_dir, config.user_tasks)

    def load_task(name: str) -> TaskTensors:
        """A task by name: a loaded one, else decoded now (e.g. a method's reference task)."""
        if name not in by_name:
            data = registry.load(name, max_train=config.max_train, max_test=config.max_test, seed=config.seed)
            by_name[name] = to_task_tensors(data, device, data_budget)
        return by_name[name]

    for stage in stages[start:]:
        if should_stop():
            raise RunCancelled(f"cancelled before stage {stage.index}")
        t0 = time.perf_counter()
        if stage.reset:
            model.load_checkpoint_state(frozen.initial_state)
        torch.manual_seed(config.seed * 1_000_003 + stage.index)
        ctx = HookContext(
            stage=stage, stages=stages, model=model, tasks=by_name, device=device, amp=config.amp, config=config,
            rng=np.random.default_rng([config.seed, stage.index, 2]), emit=emit, frozen=frozen, load_task=load_task,
        )
        rng = np.random.default_rng([config.seed, stage.index])
        train_stage(model, method, replay, ctx, config, device, should_stop, rng)
        method.after_stage(ctx)
        if config.recalibrate_bn:  # after the method's weight surgery: the statistics must fit the evaluated weights
            recalibrate_norm_stats(model, replay, stage.tasks, stage.index, by_name, config, device)
        if replay is not None:
            replay.admit(stage.index, stage.tasks, train_labels, n_classes, emit)
        for ev in evaluate_row(model, eval_columns(tensors, stage.tasks, stage.index, len(stages), config.eval_every),
                               stage.index, stage.label, device, config.eval_batch_size, config.amp):
            emit(ev)
        ckpt = None
        if checkpoint_dir is not None and config.keep_checkpoints > 0:
            state = {
                "stage": stage.index,
                "method": method.state_dict(),
                "buffer": replay.state_dict() if replay is not None else {},
                "config": config.to_dict(),
            }
            ckpt = str(save_checkpoint(checkpoint_dir / f"stage-{stage.index}.pt", model, state, config.keep_checkpoints))
        emit(StageFinished(stage.index, ckpt, time.perf_counter() - t0))
