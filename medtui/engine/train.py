"""The training loop of one stage: batches over the stage's tasks, the method's hooks, AdamW.

Batches may mix tasks (joint learning, replay): the image tower runs once over the
whole batch, then each task group is scored against its own classes. The loop knows no
method: it hands the method a :class:`~medtui.methods.base.Forward` and back-propagates
the :class:`~medtui.methods.base.Loss` it returns. Loss values (the total and each named
component) stay on the device between log lines so that the loop does not wait on the GPU.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable

import numpy as np
import torch

from medtui.config import RunConfig
from medtui.engine.tensors import TaskTensors
from medtui.errors import RunCancelled
from medtui.events import StageStarted, StepLogged
from medtui.methods.base import Forward, Group, HookContext, Method
from medtui.models.classifier import ClipClassifier
from medtui.paradigms.rehearsal import Batch, Rehearsal

#: Emit a progress event at most this often (seconds) and at the end of each epoch.
LOG_INTERVAL_S = 1.0


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)
        if fn is not None and fn():
            return True
    return False


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device``, or None for full precision.

    CUDA: ``auto`` and ``bf16`` → bf16, ``fp16`` → fp16. CPU: ``bf16`` only (asked for by name;
    ``auto`` stays full precision there, so CPU runs are exact unless told otherwise).
    """
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.float16 if amp == "fp16" else torch.bfloat16
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16
    return None


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision where :func:`amp_dtype` gives a dtype (bf16 on CUDA by default); full precision elsewhere."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled epoch of positions ``0..n-1`` in batches; a last batch of one is merged into the one before.

    (A batch of one breaks batch-norm layers in train mode.)
    """
    perm = rng.permutation(n)
    batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        tail = batches.pop()
        batches[-1] = np.concatenate([batches[-1], tail])
    return batches


def balanced_positions(task_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An epoch of positions in which every task has the same share (joint ``balanced`` sampling).

    The epoch keeps its length (the number of samples of all tasks together); each task
    fills ``1/n`` of it by cycling through fresh permutations of its own samples, so a small
    task repeats and a large one is subsampled without replacement.
    """
    tasks = np.unique(task_ids)
    shares = [len(task_ids) // len(tasks) + (1 if i < len(task_ids) % len(tasks) else 0) for i in range(len(tasks))]
    out = []
    for t, share in zip(tasks, shares):
        own = np.flatnonzero(task_ids == t)
        reps = -(-share // len(own))
        out.append(np.concatenate([rng.permutation(own) for _ in range(reps)])[:share])
    return np.concatenate(out)


def make_optimizer(params: list[torch.nn.Parameter] | list[dict], config: RunConfig, device: torch.device) -> torch.optim.AdamW:
    """A stage's AdamW over parameters or parameter groups (:meth:`ClipClassifier.optimizer_groups`):
    the fused kernel on CUDA and on the CPU (one pass over all parameters instead of a dozen
    element-wise ops per tensor; on the CPU 4x faster than the default for-loop step on
    ``medtui-tiny``, ``benchmarks/bench_cpu_levers.py``), else the default."""
    flat = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else params
    fused = device.type in ("cuda", "cpu") and all(p.dtype.is_floating_point for p in flat)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def stage_samples(names: list[str], tasks: dict[str, TaskTensors]) -> tuple[np.ndarray, np.ndarray]:
    """Every training sample of a stage's tasks as (task id, index in that task's train split)."""
    sizes = [len(tasks[t].train) for t in names]
    task_ids = np.concatenate([np.full(n, i, dtype=np.int64) for i, n in enumerate(sizes)])
    sample_ids = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes])
    return task_ids, sample_ids


def gather_batch(
    model: ClipClassifier, tasks: dict[str, TaskTensors], batch: Batch, device: torch.device
) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """A batch's prepared images (grouped by task) and the (task, labels) of each group, in that order."""
    xs, groups = [], []
    for t in np.unique(batch.task_ids):
        name = batch.task_names[int(t)]
        x, y = tasks[name].train.gather(batch.indices[batch.task_ids == t], device)
        xs.append(model.prepare(x))
        groups.append((name, y))
    return (torch.cat(xs) if len(xs) > 1 else xs[0]), groups


def forward(model: ClipClassifier, tasks: dict[str, TaskTensors], batch: Batch, device: torch.device,
            current: tuple[str, ...]) -> Forward:
    """The batch through the model: one image-tower pass, then each task group's logits over its classes.

    Groups of tasks outside ``current`` (the stage's tasks) are marked as replay.
    """
    x, named = gather_batch(model, tasks, batch, device)
    feats = model.encode_images(x)
    # one text-tower pass over the prompts of every task in the batch, not one per group
    embs = model.class_embeddings_for([name for name, _ in named])
    groups, start = [], 0
    for name, y in named:
        f = feats[start : start + len(y)]
        logits = model.logits(f, name, embs.get(name))
        groups.append(Group(name, x[start : start + len(y)], y, f, logits, replay=name not in current))
        start += len(y)
    return Forward(x, feats, groups)


def train_stage(
    model: ClipClassifier,
    method: Method,
    replay: Rehearsal | None,
    ctx: HookContext,
    config: RunConfig,
    device: torch.device,
    should_stop: Callable[[], bool],
    rng: np.random.Generator,
) -> None:
    """Train ``model`` for one stage (``config.epochs`` epochs over the stage's tasks).

    ``rng`` is the stage's training stream (batch order, replay draws); the method has its own.
    """
    stage, tasks = ctx.stage, ctx.tasks
    names = list(stage.tasks)
    task_ids, sample_ids = stage_samples(names, tasks)
    balanced = config.paradigm == "joint" and config.joint_sampling == "balanced" and len(names) > 1
    steps_per_epoch = len(epoch_batches(len(task_ids), config.batch_size, np.random.default_rng(0)))
    total = steps_per_epoch * config.epochs
    ctx.emit(StageStarted(stage.index, stage.label, names, total, int(len(task_ids))))

    opt = make_optimizer(model.optimizer_groups(config.lr, config.text_lr_scale), config, device)
    warmup = int(config.warmup * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, total, warmup))
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and config.amp == "fp16" else None

    model.train()
    model.refresh_text_cache()
    method.before_stage(ctx)
    step = 0
    loss_sum = torch.zeros((), device=device)
    parts_sum: dict[str, torch.Tensor] = {}
    since_log, seen, t_log = 0, 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        if balanced:
            order = balanced_positions(task_ids, rng)
            batches = [order[b] for b in epoch_batches(len(order), config.batch_size, rng)]
        else:
            batches = epoch_batches(len(task_ids), config.batch_size, rng)
        for b_i, pos in enumerate(batches):
            batch = Batch(names, task_ids[pos], sample_ids[pos])
            if replay is not None:
                batch = replay.batch(batch, config.batch_size, rng)
            with autocast(device, config.amp):
                out = method.loss(ctx, forward(model, tasks, batch, device, stage.tasks))
            loss = out.total
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step()
            step += 1
            ctx.step = step
            method.after_step(ctx)
            loss_sum += loss.detach()
            for k, v in out.components.items():
                parts_sum[k] = parts_sum.get(k, torch.zeros((), device=device)) + v.detach().float()
            since_log += 1
            seen += len(batch.indices)
            last_of_epoch = b_i == len(batches) - 1
            now = time.perf_counter()
            log_now = last_of_epoch or now - t_log >= LOG_INTERVAL_S
            if step == 1 and not log_now:
                # a stage's first step carries one-off costs (first kernel calls, allocations, a
                # new optimizer); left in the first window it made the first ETA of a run twice
                # too long: the training rate is measured from the second step on
                seen, t_log = 0, now
            if log_now:
                ctx.emit(
                    StepLogged(
                        stage=stage.index,
                        step=step,
                        n_steps=total,
                        epoch=epoch,
                        loss=float(loss_sum.item()) / since_log,
                        lr=float(sched.get_last_lr()[0]),
                        throughput=seen / max(now - t_log, 1e-9),
                        components={k: float(v.item()) / since_log for k, v in parts_sum.items()},
                    )
                )
                loss_sum.zero_()
                parts_sum.clear()
                since_log, seen, t_log = 0, 0, now
            if should_stop():
                raise RunCancelled(f"cancelled during stage {stage.index}, step {step}/{total}")


@torch.no_grad()
def recalibrate_norm_stats(
    model: ClipClassifier,
    replay: Rehearsal | None,
    stage_tasks: tuple[str, ...],
    stage_index: int,
    tasks: dict[str, TaskTensors],
    config: RunConfig,
    device: torch.device,
) -> int:
    """Re-estimate batch-norm running statistics over one pass of the stage's data (with its replay samples).

    After a few dozen optimizer steps the running averages (momentum 0.1) lag the weights
    they normalise, and evaluation in eval mode suffers; a forward pass in train mode with
    cumulative averaging (``momentum=None``, as in SWA's ``update_bn``) fixes that. Layers
    of a frozen tower are left alone (``head`` and ``lora``: the statistics belong to the frozen weights). Returns the number of layers updated.
    """
    if model.frozen_base:
        return 0
    norms = [m for m in model.clip.visual.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    names = list(stage_tasks)
    task_ids, sample_ids = stage_samples(names, tasks)
    was_training = model.training
    model.train()
    # a separate stream: the pass must not shift the training stream of a resumed run
    rng = np.random.default_rng([config.seed, stage_index, 1])
    try:
        with autocast(device, config.amp):
            for pos in epoch_batches(len(task_ids), config.batch_size, rng):
                batch = Batch(names, task_ids[pos], sample_ids[pos])
                if replay is not None:
                    batch = replay.batch(batch, config.batch_size, rng)
                model.encode_images(gather_batch(model, tasks, batch, device)[0])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)
