"""Per-task classification scores from predicted probabilities: accuracy, per-class accuracy, macro AUC."""

from __future__ import annotations

import numpy as np


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC of ``scores`` for the boolean ``positive`` labels (Mann–Whitney U, ties counted half).

    None when only one class is present (AUC is undefined).
    """
    pos = int(positive.sum())
    neg = int(positive.shape[0] - pos)
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[positive].sum() - pos * (pos + 1) / 2.0
    return float(u / (pos * neg))


def macro_auc(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Macro one-vs-rest ROC AUC over classes; for two classes, the AUC of class 1's probability.

    Classes absent from ``labels`` are skipped; None if no class has a defined AUC.
    """
    n_classes = probs.shape[1]
    if n_classes == 2:
        return binary_auc(probs[:, 1], labels == 1)
    aucs = [a for c in range(n_classes) if (a := binary_auc(probs[:, c], labels == c)) is not None]
    return float(np.mean(aucs)) if aucs else None


def per_class_accuracy(preds: np.ndarray, labels: np.ndarray, n_classes: int) -> list[float | None]:
    """Recall of each class (None for a class with no test samples)."""
    out: list[float | None] = []
    for c in range(n_classes):
        mask = labels == c
        out.append(float((preds[mask] == c).mean()) if mask.any() else None)
    return out
