"""Settings shared by the scorers."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sae_interp.config import ConfigError, check_choice, check_positive

__all__ = ["LogprobsMode", "ScorerConfig", "scorer_rng"]

LogprobsMode = Literal["auto", "on", "off"]


@dataclass(frozen=True, kw_only=True)
class ScorerConfig:
    """Which scorers run, and how they sample and ask."""

    names: tuple[str, ...] = ("detection", "fuzzing", "embedding")
    """Scorers to run (see `scorers.SCORERS`): detection, fuzzing, embedding, surprisal,
    simulation, intruder."""
    batch_size: int = 5
    """Excerpts judged per prompt by classifier scorers (the last batch may be shorter)."""
    n_test: int | None = None
    """Score at most this many activating test examples (None: all the loader gave)."""
    n_non_activating: int | None = None
    """Score at most this many non-activating examples (None: all)."""
    logprobs: LogprobsMode = "auto"
    """auto: ask for logprobs (probabilities and AUC) when the client has them; on: require them."""
    threshold: float = 0.3
    """Fuzzing marks tokens above this fraction of the latent's max activation (as the explainer)."""
    intruder_size: int = 4
    """Excerpts per intruder round: this many minus one activating, plus one intruder (chance 1/n)."""
    embedding_model: str | None = None
    """Sentence-transformers model folder for the embedding scorer; None: the packaged MiniLM."""
    seed: int = 22

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("scorers.names is empty; name at least one scorer")
        check_positive("scorers", "batch_size", self.batch_size)
        for name in ("n_test", "n_non_activating"):
            value = getattr(self, name)
            if value is not None:
                check_positive("scorers", name, value, allow_zero=True)
        check_choice("scorers", "logprobs", self.logprobs, LogprobsMode)
        if self.intruder_size < 2:
            raise ConfigError(
                f"scorers.intruder_size must be >= 2 (one intruder among others), got {self.intruder_size!r}"
            )
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"scorers.threshold must be in [0, 1), got {self.threshold!r}")


def scorer_rng(seed: int, scorer: str, key: str) -> np.random.Generator:
    """A generator that depends only on (seed, scorer, latent): results do not depend on run order."""
    return np.random.default_rng(zlib.crc32(f"{seed}/{scorer}/{key}".encode()))
