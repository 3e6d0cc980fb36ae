"""Evaluation of the current model on each column task's test split: accuracy, macro AUC, per-class accuracy.

Evaluation runs after every stage on every task, so its cost grows as (stages x
tasks x test set); it is kept to the model's own work: class embeddings for every
task of an evaluation point come from one text-tower pass, each task's test split
is one pass of large contiguous batches under ``torch.inference_mode()``, the
probabilities stay on the device until the task is done and cross to the host in
one copy, and the scores are computed with numpy over whole arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from medtui.engine.tensors import TaskTensors
from medtui.engine.train import autocast
from medtui.events import TaskEvaluated
from medtui.metrics.classification import macro_auc, per_class_accuracy
from medtui.models.classifier import ClipClassifier


def predict_probs(
    model: ClipClassifier,
    task: TaskTensors,
    device: torch.device,
    batch_size: int,
    amp: str = "auto",
    class_emb: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class probabilities ``N x K`` (float32, on ``device``) of ``task``'s test split, in order.

    Call in eval mode under ``torch.inference_mode()`` (as :func:`evaluate_row` does).
    """
    split = task.test
    n, name = len(split), task.spec.name
    out = torch.empty((n, task.spec.n_classes), dtype=torch.float32, device=device)
    with autocast(device, amp):
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            x = split.images[start:stop]  # contiguous slice: a view, no gather
            if x.device != device:
                x = x.to(device, non_blocking=True)
            logits = model.logits(model.encode_images(model.prepare(x)), name, class_emb)
            out[start:stop] = torch.softmax(logits.float(), dim=-1)
    return out


def score(probs: np.ndarray, task: TaskTensors, row: int, row_label: str) -> TaskEvaluated:
    """The evaluation event of one cell from the task's test probabilities (host array)."""
    labels = task.test.labels_np
    preds = probs.argmax(axis=1)
    return TaskEvaluated(
        row=row,
        row_label=row_label,
        task=task.spec.name,
        accuracy=float((preds == labels).mean()) if len(labels) else float("nan"),
        auc=macro_auc(probs, labels),
        per_class=per_class_accuracy(preds, labels, task.spec.n_classes),
        n=int(len(labels)),
    )


def evaluate_task(
    model: ClipClassifier,
    task: TaskTensors,
    row: int,
    row_label: str,
    device: torch.device,
    batch_size: int,
    amp: str = "auto",
) -> TaskEvaluated:
    """Score ``model`` on ``task``'s test split; the result is the event for cell (row, task)."""
    return evaluate_row(model, [task], row, row_label, device, batch_size, amp)[0]


def evaluate_row(
    model: ClipClassifier,
    tasks: Sequence[TaskTensors],
    row: int,
    row_label: str,
    device: torch.device,
    batch_size: int,
    amp: str = "auto",
) -> list[TaskEvaluated]:
    """Evaluate every task of ``tasks`` at one evaluation point (one pass over each test split).

    Class embeddings computed here are not cached, so inference-mode tensors never reach
    a training step (and a text tower that trains is re-encoded at the next point).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            embs = model.class_embeddings_for([t.spec.name for t in tasks], cache=False)
            probs = [predict_probs(model, t, device, batch_size, amp, embs.get(t.spec.name)) for t in tasks]
            # one device-to-host copy for the whole evaluation point
            flat = torch.cat([p.reshape(-1) for p in probs]).cpu().numpy().astype(np.float64) if probs else None
    finally:
        model.clear_eval_cache()
        model.train(was_training)
    out, start = [], 0
    for t, p in zip(tasks, probs):
        n = p.numel()
        out.append(score(flat[start : start + n].reshape(p.shape), t, row, row_label))
        start += n
    return out
