"""Metrics on constructed cases: perfect, inverted, random, one class, unparsed."""

from __future__ import annotations

import numpy as np
import pytest

from sae_interp.scorers.metrics import Judgement, binary_metrics, metrics_by_group, roc_auc


def _judged(truth: list[bool], pred: list[bool | None], prob: list[float] | None = None) -> list[Judgement]:
    probs = prob or [None] * len(truth)  # type: ignore[list-item]
    return [
        Judgement(t, p, q, "1" if t else "non_activating") for t, p, q in zip(truth, pred, probs, strict=True)
    ]


def test_perfect() -> None:
    m = binary_metrics(_judged([True, True, False, False], [True, True, False, False], [0.9, 0.8, 0.2, 0.1]))
    assert m == {"accuracy": 1.0, "balanced_accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
                 "auc": 1.0, "n": 4.0, "n_unparsed": 0.0}  # fmt: skip


def test_inverted() -> None:
    m = binary_metrics(_judged([True, True, False, False], [False, False, True, True], [0.1, 0.2, 0.8, 0.9]))
    assert (m["accuracy"], m["balanced_accuracy"], m["precision"], m["recall"], m["f1"], m["auc"]) == (
        0,
        0,
        0,
        0,
        0,
        0,
    )


def test_random_is_near_chance() -> None:
    rng = np.random.default_rng(0)
    truth = (rng.random(4000) < 0.3).tolist()
    m = binary_metrics(_judged(truth, (rng.random(4000) < 0.5).tolist(), rng.random(4000).tolist()))
    assert m["balanced_accuracy"] == pytest.approx(0.5, abs=0.03)
    assert m["auc"] == pytest.approx(0.5, abs=0.03)


def test_all_one_class_leaves_undefined_values_undefined() -> None:
    m = binary_metrics(_judged([True, True, True], [True, False, True], [0.9, 0.1, 0.8]))
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)  # only the class present counts
    assert m["auc"] is None
    negatives = binary_metrics(_judged([False, False], [False, False]))
    assert negatives["precision"] is None and negatives["recall"] is None and negatives["f1"] is None
    assert negatives["balanced_accuracy"] == 1.0 and negatives["accuracy"] == 1.0


def test_unparsed_count_in_no_metric_and_drop_auc() -> None:
    m = binary_metrics(_judged([True, False, True], [True, None, True], [0.9, None, 0.8]))  # type: ignore[list-item]
    assert m["n_unparsed"] == 1.0 and m["accuracy"] == 1.0 and m["auc"] is None


def test_auc_handles_ties() -> None:
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5
    assert roc_auc([True, True], [0.1, 0.2]) is None


def test_groups_sorted_numeric_first() -> None:
    judged = [Judgement(True, True, group="10"), Judgement(True, True, group="2"),
              Judgement(False, False, group="non_activating")]  # fmt: skip
    assert list(metrics_by_group(judged)) == ["2", "10", "non_activating"]
