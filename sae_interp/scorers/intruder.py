"""Intruder: is the latent itself interpretable, whatever the explanation says?

As Delphi's intruder scorer: each round shows `intruder_size` excerpts, all but one activating
examples of the latent (held-out test examples, strongest tokens marked <<like this>>) and one
intruder (a non-activating example with one random token marked, so marks alone give nothing away),
in a random slot. The judge names the odd one out; the score is the fraction of parsed rounds
answered right (chance: 1 / intruder_size). The explanation is not shown: this scores the latent,
and so bounds what any explanation of it can reach. An answer naming no single excerpt is unparsed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sae_interp.clients.base import LLMClient, Message, SamplingParams
from sae_interp.explainers.explainer import Explained
from sae_interp.explainers.highlight import marked_positions
from sae_interp.results import LatentExamples, ScoreOut
from sae_interp.scorers.answers import parse_choice
from sae_interp.scorers.classifier import ask_judge
from sae_interp.scorers.config import ScorerConfig, scorer_rng
from sae_interp.scorers.fuzzing import marked_text
from sae_interp.scorers.prompts import INTRUDER, ClassifierPrompt

__all__ = ["IntruderScorer", "Round"]


@dataclass(frozen=True)
class Round:
    """One question: numbered excerpts, one of them the intruder."""

    excerpts: list[str]
    """As shown (one line each, marks included)."""
    intruder: int
    """The intruder's number, 1-based."""
    sources: list[str]
    """Where each excerpt came from, e.g. "test[3]", "non_activating[0]"."""


class IntruderScorer:
    """Fraction of rounds in which the judge spots the non-activating excerpt."""

    name = "intruder"
    prompt: ClassifierPrompt = INTRUDER

    def __init__(self, client: LLMClient, cfg: ScorerConfig | None = None) -> None:
        self.client = client
        self.cfg = cfg or ScorerConfig()
        # The answer is one number; a chat model may wrap it in a few words.
        self.params = SamplingParams(max_tokens=8, temperature=0.0)

    def rounds(self, latent: LatentExamples) -> list[Round]:
        """As many rounds as the test and non-activating examples fill (each example used once)."""
        rng = scorer_rng(self.cfg.seed, self.name, latent.key)
        size = self.cfg.intruder_size
        threshold = self.cfg.threshold * latent.statistics.max
        test = latent.test[: self.cfg.n_test]
        non = latent.non_activating[: self.cfg.n_non_activating]
        positives = [int(i) for i in rng.permutation(len(test))]
        negatives = [int(i) for i in rng.permutation(len(non))]
        rounds = []
        for r in range(min(len(positives) // (size - 1), len(negatives))):
            members = positives[r * (size - 1) : (r + 1) * (size - 1)]
            excerpts = [
                marked_text(test[i], marked_positions(test[i].activations, threshold)) for i in members
            ]
            sources = [f"test[{i}]" for i in members]
            intruder = non[negatives[r]]
            marked = int(rng.integers(len(intruder.tokens)))
            marks = [i == marked for i in range(len(intruder.tokens))]
            slot = int(rng.integers(size))
            excerpts.insert(slot, marked_text(intruder, marks))
            sources.insert(slot, f"non_activating[{negatives[r]}]")
            rounds.append(Round(excerpts, slot + 1, sources))
        return rounds

    def messages(self, excerpts: list[str]) -> list[Message]:
        """The chat messages of one round."""
        listing = "\n".join(f"{i}. {text}" for i, text in enumerate(excerpts, 1))
        return [
            {"role": "system", "content": self.prompt.system},
            {"role": "user", "content": f"Excerpts:\n{listing}"},
        ]

    async def _ask(self, round_: Round) -> tuple[int | None, str]:
        text, _ = await ask_judge(
            self.client, self.messages(round_.excerpts), self.params, opening="", closing="\n"
        )
        return parse_choice(text, len(round_.excerpts)), text

    async def __call__(self, explained: Explained) -> ScoreOut:
        latent = explained.latent
        rounds = self.rounds(latent)
        if not rounds:
            raise ValueError(
                f"intruder: latent {latent.key} needs {self.cfg.intruder_size - 1} test examples "
                "and one non-activating example for a round"
            )
        answers = await asyncio.gather(*(self._ask(r) for r in rounds))
        parsed = [(r, choice) for r, (choice, _) in zip(rounds, answers, strict=True) if choice is not None]
        correct = sum(choice == r.intruder for r, choice in parsed)
        accuracy = correct / len(parsed) if parsed else None
        samples: list[dict[str, object]] = [
            {"sources": r.sources, "intruder": r.intruder, "prediction": choice, "answer": text}
            for r, (choice, text) in zip(rounds, answers, strict=True)
        ]
        return ScoreOut(
            scorer=self.name,
            prompt_version=self.prompt.version,
            score=accuracy,
            metrics={
                "accuracy": accuracy,
                "chance": 1 / self.cfg.intruder_size,
                "n_rounds": float(len(rounds)),
                "n_correct": float(correct),
                "n_unparsed": float(len(rounds) - len(parsed)),
            },
            n_unparsed=len(rounds) - len(parsed),
            samples=samples,
        )
