"""Classification metrics of a scorer's judgements, pooled and per activation quantile.

Undefined values are None, never a made-up 0 or 1: precision with no positive predictions, recall
with no positive examples, AUC with one class or without probabilities. Balanced accuracy averages
the recall of the classes that are present, so that an all-positive quantile still gets a number
(its recall).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "Judgement",
    "auc_by_quantile",
    "binary_metrics",
    "group_order",
    "metrics_by_group",
    "pearson",
    "roc_auc",
]


@dataclass(frozen=True)
class Judgement:
    """One example's verdict."""

    truth: bool
    prediction: bool | None
    """None: the answer for this example could not be parsed (it counts in no metric)."""
    probability: float | None = None
    """P(positive) from logprobs, when the client gave them."""
    group: str = ""
    """The example's quantile ("1" = strongest) or "non_activating", for the breakdown."""


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic; ties count half); None with one class."""
    y = np.asarray(truth, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_by_quantile(
    quantiles: Sequence[int | None], positive: Sequence[float], negative: Sequence[float]
) -> dict[str, dict[str, float | None]]:
    """Per quantile of the positives: the AUC of its scores against all negative scores, and its n.

    Args:
        quantiles: each positive's quantile (None: left out of the breakdown).
        positive: each positive's score, in the same order.
        negative: every negative's score.
    """
    out: dict[str, dict[str, float | None]] = {}
    for q in sorted({q for q in quantiles if q is not None}):
        pos = [s for qq, s in zip(quantiles, positive, strict=True) if qq == q]
        auc = roc_auc([True] * len(pos) + [False] * len(negative), [*pos, *negative])
        out[str(q)] = {"auc": auc, "n": float(len(pos))}
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation of x and y; None when undefined (fewer than 2 points, or a constant side).

    A simulator that predicts the same value everywhere says nothing about where the latent fires:
    its correlation is undefined, not 0.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"pearson: {len(a)} values against {len(b)}")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def binary_metrics(judgements: Sequence[Judgement]) -> dict[str, float | None]:
    """accuracy, balanced_accuracy, precision, recall, f1, auc, n, n_unparsed of `judgements`."""
    parsed = [j for j in judgements if j.prediction is not None]
    tp = sum(j.truth and bool(j.prediction) for j in parsed)
    tn = sum(not j.truth and not j.prediction for j in parsed)
    fp = sum(not j.truth and bool(j.prediction) for j in parsed)
    fn = sum(j.truth and not j.prediction for j in parsed)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    present = [r for r in (recall, specificity) if r is not None]
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    with_prob = [j for j in judgements if j.probability is not None]
    auc = None
    if with_prob and len(with_prob) == len(judgements):
        auc = roc_auc([j.truth for j in with_prob], [j.probability or 0.0 for j in with_prob])
    return {
        "accuracy": _ratio(tp + tn, len(parsed)),
        "balanced_accuracy": sum(present) / len(present) if present else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": auc,
        "n": float(len(judgements)),
        "n_unparsed": float(len(judgements) - len(parsed)),
    }


def metrics_by_group(judgements: Sequence[Judgement]) -> dict[str, dict[str, float | None]]:
    """`binary_metrics` per `Judgement.group`, groups in sorted order (numeric quantiles first)."""
    groups: dict[str, list[Judgement]] = defaultdict(list)
    for j in judgements:
        groups[j.group].append(j)
    order = sorted(groups, key=group_order)
    return {g: binary_metrics(groups[g]) for g in order}


def group_order(group: str) -> tuple[bool, int, str]:
    """Sort key of breakdown groups: numeric quantiles first, in numeric order, then by name."""
    return (not group.isdigit(), int(group) if group.isdigit() else 0, group)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None
