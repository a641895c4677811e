"""Explainers: turn a latent's examples into a one-sentence explanation (with an LLM, or without)."""

from sae_interp.explainers.explainer import (
    EXPLAINERS,
    ContrastiveExplainer,
    DefaultExplainer,
    Explained,
    Explainer,
    ExplainerConfig,
    TopTokensExplainer,
    build_explainer,
)
from sae_interp.explainers.highlight import highlight, marked_positions
from sae_interp.explainers.parse import ExplanationParseError, parse_explanation

__all__ = [
    "EXPLAINERS",
    "ContrastiveExplainer",
    "DefaultExplainer",
    "Explained",
    "Explainer",
    "ExplainerConfig",
    "ExplanationParseError",
    "TopTokensExplainer",
    "build_explainer",
    "highlight",
    "marked_positions",
    "parse_explanation",
]
