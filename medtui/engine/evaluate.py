"""Evaluation of the current model on one task's test split: accuracy, macro AUC, per-class accuracy."""

from __future__ import annotations

import numpy as np
import torch

from medtui.engine.tensors import TaskTensors
from medtui.engine.train import autocast
from medtui.events import TaskEvaluated
from medtui.metrics.classification import macro_auc, per_class_accuracy
from medtui.models.classifier import ClipClassifier


@torch.no_grad()
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
    was_training = model.training
    model.eval()
    name = task.spec.name
    probs = []
    with autocast(device, amp):
        for start in range(0, len(task.test), batch_size):
            idx = np.arange(start, min(start + batch_size, len(task.test)))
            x, _ = task.test.gather(idx, device)
            logits = model.logits(model.encode_images(model.prepare(x)), name)
            probs.append(torch.softmax(logits.float(), dim=-1).cpu())
    model.train(was_training)
    p = torch.cat(probs).numpy().astype(np.float64)
    labels = task.test.labels_np
    preds = p.argmax(axis=1)
    return TaskEvaluated(
        row=row,
        row_label=row_label,
        task=name,
        accuracy=float((preds == labels).mean()),
        auc=macro_auc(p, labels),
        per_class=per_class_accuracy(preds, labels, task.spec.n_classes),
        n=int(len(labels)),
    )


def evaluate_row(
    model: ClipClassifier,
    tasks: list[TaskTensors],
    row: int,
    row_label: str,
    device: torch.device,
    batch_size: int,
    amp: str = "auto",
) -> list[TaskEvaluated]:
    """Evaluate every column task at one evaluation point."""
    model.clear_eval_cache()
    try:
        return [evaluate_task(model, t, row, row_label, device, batch_size, amp) for t in tasks]
    finally:
        model.clear_eval_cache()
