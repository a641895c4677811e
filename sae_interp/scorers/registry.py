"""Scorers by name, and `build_scorers` to make the stages a config asks for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sae_interp.clients.base import LLMClient
from sae_interp.config import ConfigError
from sae_interp.scorers.config import ScorerConfig
from sae_interp.scorers.detection import DetectionScorer
from sae_interp.scorers.embedding import EmbeddingScorer
from sae_interp.scorers.fuzzing import FuzzingScorer
from sae_interp.scorers.intruder import IntruderScorer
from sae_interp.scorers.simulation import SimulationScorer
from sae_interp.scorers.surprisal import SurprisalScorer

__all__ = ["SCORERS", "build_scorers", "register_scorer"]

ScorerFactory = Callable[[LLMClient, ScorerConfig], Any]
"""(judge client, config) -> a stage `async (Explained) -> ScoreOut` with a `name`."""

SCORERS: dict[str, ScorerFactory] = {}


def register_scorer(name: str, factory: ScorerFactory) -> None:
    """Make `name` usable in `ScorerConfig.names`.

    Raises:
        ValueError: the name is taken.
    """
    if name in SCORERS:
        raise ValueError(f"scorer {name!r} is already registered")
    SCORERS[name] = factory


def build_scorers(client: LLMClient, cfg: ScorerConfig) -> list[Any]:
    """One stage per name in `cfg.names`, in that order.

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    unknown = [n for n in cfg.names if n not in SCORERS]
    if unknown:
        raise ConfigError(f"scorers.names: unknown {unknown}; known scorers: {sorted(SCORERS)}")
    return [SCORERS[name](client, cfg) for name in cfg.names]


register_scorer("detection", DetectionScorer)
register_scorer("fuzzing", FuzzingScorer)
register_scorer("embedding", lambda _client, cfg: EmbeddingScorer(cfg))
register_scorer("surprisal", SurprisalScorer)
register_scorer("simulation", SimulationScorer)
register_scorer("intruder", IntruderScorer)
