"""Scorers: judge an explanation against a latent's held-out examples."""

from sae_interp.scorers.classifier import ClassifierScorer, Sample
from sae_interp.scorers.config import ScorerConfig
from sae_interp.scorers.detection import DetectionScorer
from sae_interp.scorers.embedding import EmbeddingScorer
from sae_interp.scorers.fuzzing import FuzzingScorer
from sae_interp.scorers.metrics import Judgement, binary_metrics, metrics_by_group, roc_auc
from sae_interp.scorers.registry import SCORERS, build_scorers, register_scorer

__all__ = [
    "SCORERS",
    "ClassifierScorer",
    "DetectionScorer",
    "EmbeddingScorer",
    "FuzzingScorer",
    "Judgement",
    "Sample",
    "ScorerConfig",
    "binary_metrics",
    "build_scorers",
    "metrics_by_group",
    "register_scorer",
    "roc_auc",
]
