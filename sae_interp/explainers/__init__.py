"""Explainers: turn a latent's examples into a one-sentence explanation with an LLM client."""

from sae_interp.explainers.explainer import (
    EXPLAINERS,
    ContrastiveExplainer,
    DefaultExplainer,
    Explained,
    ExplainerConfig,
    build_explainer,
)
from sae_interp.explainers.highlight import highlight, marked_positions
from sae_interp.explainers.parse import ExplanationParseError, parse_explanation

__all__ = [
    "EXPLAINERS",
    "ContrastiveExplainer",
    "DefaultExplainer",
    "Explained",
    "ExplainerConfig",
    "ExplanationParseError",
    "build_explainer",
    "highlight",
    "marked_positions",
    "parse_explanation",
]
