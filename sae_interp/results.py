"""The files of an explanation run, as typed models: what the pipeline writes and the dashboard reads.

Layout of `explanations/<run>/` (CONVENTIONS section 8):

    config.json                          the resolved config, secrets removed
    summary.json                         counts, timings, metric means (see `pipeline.Pipeline`)
    failures.jsonl                       one line per latent that failed: key, stage, error
    latents/<hookpoint>/<latent>.json    one `LatentResult` per finished latent
    refusal/report.json                  the refusal-direction report (main experiment only)
    refusal/latents.csv                  latent, decoder cosine with r, mean activation diff, rank
    index.html                           the browser (dashboard)

Every JSON object carries `schema_version`. Token text is stored decoded, token by token, so that a
reader needs no tokenizer; it is untrusted text (anything rendered from it must be escaped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sae_interp._runfolder import SCHEMA_VERSION

__all__ = [
    "LATENTS_DIR",
    "SCHEMA_VERSION",
    "ExampleOut",
    "ExplanationOut",
    "LatentExamples",
    "LatentResult",
    "LatentStatistics",
    "RefusalAlignment",
    "ScoreOut",
    "iter_latent_results",
    "latent_item_path",
    "latent_key",
]

LATENTS_DIR = "latents"


class _Model(BaseModel):
    """Frozen, and tolerant of fields added by newer writers (they are ignored, not lost on disk)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ExampleOut(_Model):
    """One example window, token by token."""

    tokens: list[str]
    """Each token decoded on its own."""
    activations: list[float]
    """The latent's activation at each token (zeros for a non-activating example)."""
    kind: Literal["activating", "random", "neighbour"] = "activating"
    quantile: int | None = None
    """1 = the strongest activation quantile; None for non-activating examples."""
    row: int
    start: int
    """Position of the first token in its cache row."""

    @property
    def text(self) -> str:
        """The window as one string (the token pieces joined)."""
        return "".join(self.tokens)

    @property
    def max_activation(self) -> float:
        return max(self.activations, default=0.0)


class LatentStatistics(_Model):
    count: int
    frequency: float
    """count / cached tokens."""
    max: float
    mean: float
    """Mean of the nonzero activations."""
    hist: list[int]
    """Counts of |activation| per bin; bin i spans hist_edges[i]..hist_edges[i + 1]."""
    hist_edges: list[float]
    """len(hist) + 1 edges, from 0 up."""

    @model_validator(mode="after")
    def _edges_bound_every_bin(self) -> LatentStatistics:
        if len(self.hist_edges) != len(self.hist) + 1:
            raise ValueError(
                f"hist has {len(self.hist)} bins, so hist_edges needs {len(self.hist) + 1} edges, "
                f"got {len(self.hist_edges)}"
            )
        return self


class ExplanationOut(_Model):
    text: str
    explainer: str
    """Which explainer wrote it ("default", "contrastive", ...)."""
    prompt_version: str
    """The prompt's version tag, so that runs with different prompts are never mixed up."""
    raw: str
    """The model's full answer, from which `text` was parsed."""


class ScoreOut(_Model):
    """One scorer's verdict on one explanation."""

    scorer: str
    prompt_version: str | None = None
    score: float | None
    """The scorer's headline number (e.g. balanced accuracy, AUC, correlation); None when undefined."""
    metrics: dict[str, float | None]
    """Pooled metrics: accuracy, balanced_accuracy, precision, recall, f1, auc, ... (None: undefined)."""
    by_quantile: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    """Metrics per activation quantile ("1" = strongest) and for "non_activating"."""
    n_unparsed: int = 0
    """Answers (or items within answers) that could not be parsed; they count as neither class."""
    samples: list[dict[str, object]] = Field(default_factory=list)
    """Per-example raw results: the example's index and kind, truth, prediction, probability."""


class RefusalAlignment(_Model):
    """How the latent relates to the refusal direction r (main experiment only)."""

    cosine: float
    """Cosine of the latent's decoder row with r."""
    mean_diff: float
    """Mean activation on harmful minus harmless instructions."""
    rank: int
    attribution: float | None = None
    """Gradient x activation of the refusal score on harmful instructions, when computed."""


class LatentExamples(_Model):
    """One latent's examples, decoded: what explainers and scorers read (no tensors, no tokenizer)."""

    key: str
    """"<hookpoint>/<latent>", see `latent_key`."""
    hookpoint: str
    latent: int
    statistics: LatentStatistics
    train: list[ExampleOut]
    """Shown to the explainer, strongest quantile first."""
    test: list[ExampleOut]
    """Held-out activating examples for scorers (never in `train`)."""
    non_activating: list[ExampleOut]


class LatentResult(LatentExamples):
    """Everything a run knows about one latent; the file `latents/<hookpoint>/<latent>.json`."""

    schema_version: int = SCHEMA_VERSION
    explanation: ExplanationOut
    scores: dict[str, ScoreOut] = Field(default_factory=dict)
    refusal: RefusalAlignment | None = None


def latent_key(hookpoint: str, latent: int) -> str:
    """The pipeline key of one latent: "<hookpoint>/<latent>"."""
    return f"{hookpoint}/{latent}"


def latent_item_path(key: str) -> str:
    """Where the pipeline writes a latent's file: `latents/<hookpoint>/<latent>.json`."""
    return f"{LATENTS_DIR}/{key}.json"


def iter_latent_results(run_dir: str | Path) -> list[LatentResult]:
    """Every latent file of a run, sorted by (hookpoint, latent).

    Raises:
        ValueError: a file is not a valid `LatentResult` of this schema version (names the file).
    """
    results = []
    for file in sorted((Path(run_dir) / LATENTS_DIR).rglob("*.json")):
        if file.name.startswith("."):
            continue
        raw = orjson.loads(file.read_bytes())
        if raw.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{file}: schema_version {raw.get('schema_version')!r}, this sae_interp reads "
                f"{SCHEMA_VERSION}; re-run the explanation step with this version"
            )
        try:
            results.append(LatentResult.model_validate(raw))
        except ValueError as err:
            raise ValueError(f"{file} is not a valid latent result: {err}") from err
    return sorted(results, key=lambda r: (r.hookpoint, r.latent))
