"""Scorers: judge an explanation against a latent's held-out examples."""

from sae_interp.scorers.classifier import ClassifierScorer, Sample
from sae_interp.scorers.config import ScorerConfig
from sae_interp.scorers.detection import DetectionScorer
from sae_interp.scorers.embedding import EmbeddingScorer
from sae_interp.scorers.fuzzing import FuzzingScorer
from sae_interp.scorers.intruder import IntruderScorer
from sae_interp.scorers.metrics import Judgement, binary_metrics, metrics_by_group, pearson, roc_auc
from sae_interp.scorers.registry import SCORERS, build_scorers, register_scorer
from sae_interp.scorers.simulation import SimulationScorer
from sae_interp.scorers.surprisal import SurprisalScorer

__all__ = [
    "SCORERS",
    "ClassifierScorer",
    "DetectionScorer",
    "EmbeddingScorer",
    "FuzzingScorer",
    "IntruderScorer",
    "Judgement",
    "Sample",
    "ScorerConfig",
    "SimulationScorer",
    "SurprisalScorer",
    "binary_metrics",
    "build_scorers",
    "metrics_by_group",
    "pearson",
    "register_scorer",
    "roc_auc",
]
