"""The training loop of one stage: batches over the stage's tasks, the paradigm's hooks, AdamW.

Batches may mix tasks (joint learning, replay): the image tower runs once over the
whole batch, then each task group is scored against its own classes. Loss values
stay on the device between log lines so that the loop does not wait on the GPU.
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
from medtui.models.classifier import ClipClassifier
from medtui.paradigms.base import Batch, Paradigm, StageContext

#: Emit a progress event at most this often (seconds) and at the end of each epoch.
LOG_INTERVAL_S = 1.0


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bf16 by default); full precision elsewhere or when ``amp='off'``."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device_type="cuda", dtype=dtype)


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


def forward_groups(
    model: ClipClassifier, tasks: dict[str, TaskTensors], batch: Batch, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, labels) per task in ``batch``, with one image-tower pass over the whole batch."""
    x, groups = gather_batch(model, tasks, batch, device)
    feats = model.encode_images(x)
    out, start = [], 0
    for name, y in groups:
        out.append((model.logits(feats[start : start + len(y)], name), y))
        start += len(y)
    return out


def train_stage(
    model: ClipClassifier,
    paradigm: Paradigm,
    ctx: StageContext,
    tasks: dict[str, TaskTensors],
    config: RunConfig,
    device: torch.device,
    should_stop: Callable[[], bool],
) -> None:
    """Train ``model`` for one stage (``config.epochs`` epochs over the stage's tasks)."""
    stage = ctx.stage
    names = list(stage.tasks)
    task_ids, sample_ids = stage_samples(names, tasks)
    steps_per_epoch = len(epoch_batches(len(task_ids), config.batch_size, np.random.default_rng(0)))
    total = steps_per_epoch * config.epochs
    ctx.emit(StageStarted(stage.index, stage.label, names, total, int(len(task_ids))))

    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=device.type == "cuda")
    warmup = int(config.warmup * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, total, warmup))
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and config.amp == "fp16" else None

    model.train()
    model.refresh_text_cache()
    paradigm.before_stage(ctx)
    step = 0
    loss_sum = torch.zeros((), device=device)
    since_log, seen, t_log = 0, 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        batches = epoch_batches(len(task_ids), config.batch_size, ctx.rng)
        for b_i, pos in enumerate(batches):
            batch = paradigm.batch(ctx, Batch(names, task_ids[pos], sample_ids[pos]))
            with autocast(device, config.amp):
                loss = paradigm.loss(ctx, forward_groups(model, tasks, batch, device))
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
            loss_sum += loss.detach()
            since_log += 1
            seen += len(batch.indices)
            last_of_epoch = b_i == len(batches) - 1
            now = time.perf_counter()
            if last_of_epoch or now - t_log >= LOG_INTERVAL_S:
                ctx.emit(
                    StepLogged(
                        stage=stage.index,
                        step=step,
                        n_steps=total,
                        epoch=epoch,
                        loss=float(loss_sum.item()) / since_log,
                        lr=float(sched.get_last_lr()[0]),
                        throughput=seen / max(now - t_log, 1e-9),
                    )
                )
                loss_sum.zero_()
                since_log, seen, t_log = 0, 0, now
            if should_stop():
                raise RunCancelled(f"cancelled during stage {stage.index}, step {step}/{total}")


@torch.no_grad()
def recalibrate_norm_stats(
    model: ClipClassifier,
    paradigm: Paradigm,
    ctx: StageContext,
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
    names = list(ctx.stage.tasks)
    task_ids, sample_ids = stage_samples(names, tasks)
    was_training = model.training
    model.train()
    # a separate stream: the pass must not shift the training stream of a resumed run
    rng = np.random.default_rng([config.seed, ctx.stage.index, 1])
    replay_ctx = StageContext(ctx.stage, ctx.train_labels, ctx.n_classes, rng, ctx.emit, ctx.batch_size)
    try:
        with autocast(device, config.amp):
            for pos in epoch_batches(len(task_ids), config.batch_size, rng):
                batch = paradigm.batch(replay_ctx, Batch(names, task_ids[pos], sample_ids[pos]))
                model.encode_images(gather_batch(model, tasks, batch, device)[0])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)
