"""Classification metrics on score tensors: top-k, mean class accuracy, mAP, confusion matrix.

Inputs are ``scores float [N, C]`` (logits or probabilities; only their order matters) and
``targets`` as class indices ``int [N]`` (single-label) or multi-hot ``[N, C]`` (multi-label).
"""
from __future__ import annotations

import torch


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, k: int = 1) -> float:
    """Fraction of rows whose target is among the ``k`` highest scores (k capped at C)."""
    if scores.shape[0] == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return (top == targets.view(-1, 1)).any(dim=1).double().mean().item()


def confusion_matrix(scores_or_preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``int64 [C, C]``: row = true class, column = predicted class."""
    preds = scores_or_preds.argmax(dim=1) if scores_or_preds.ndim == 2 else scores_or_preds
    flat = targets.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def mean_class_accuracy(scores: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None) -> float:
    """Average over classes (present in ``targets``) of that class's top-1 recall.

    Unlike top-1 it is not dominated by the largest classes.
    """
    num_classes = num_classes or scores.shape[1]
    cm = confusion_matrix(scores, targets, num_classes).double()
    support = cm.sum(dim=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return (cm.diag()[present] / support[present]).mean().item()


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Area under the precision-recall curve of one class (mean precision at each positive)."""
    positives = positives.bool()
    n_pos = int(positives.sum())
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    hits = positives[order].double()
    precision_at = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=torch.float64)
    return float((precision_at * hits).sum() / n_pos)


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """mAP over classes with at least one positive; ``targets`` multi-hot ``[N, C]`` or ``int [N]``."""
    if targets.ndim == 1:
        targets = torch.nn.functional.one_hot(targets.long(), scores.shape[1])
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])]
    aps = [a for a in aps if a == a]
    return sum(aps) / len(aps) if aps else float("nan")


def classification_metrics(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """The standard set: ``top1``, ``top5``, ``mean_class_acc`` and ``mAP`` (or only ``mAP`` for
    multi-hot targets, where top-k is not defined)."""
    scores = scores.float()
    if targets.ndim == 2:
        return {"mAP": mean_average_precision(scores, targets)}
    return {
        "top1": topk_accuracy(scores, targets, 1),
        "top5": topk_accuracy(scores, targets, 5),
        "mean_class_acc": mean_class_accuracy(scores, targets),
        "mAP": mean_average_precision(scores, targets),
    }
