"""Explainers: a `Pipe` stage that turns one latent's examples into a one-sentence explanation.

    explainer = build_explainer(client, ExplainerConfig(kind="contrastive"))
    explained = await explainer(latent_examples)      # -> Explained(latent, explanation)

`DefaultExplainer` shows the train examples with the active tokens marked; `ContrastiveExplainer`
adds examples in which the latent is silent (neighbour-latent windows first, when the loader
supplied them: they are the hard negatives). An unusable answer raises `ExplanationParseError`,
which the pipeline records as that latent's failure. `TopTokensExplainer` asks no model: it names
the tokens marked most often, a floor for the LLM explainers and a way to check scorers on real
latents with no LLM in the loop.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sae_interp.clients.base import LLMClient, Message, SamplingParams
from sae_interp.config import ConfigError, check_choice, check_positive
from sae_interp.explainers.highlight import activation_listing, highlight, marked_positions
from sae_interp.explainers.parse import ExplanationParseError, parse_explanation
from sae_interp.explainers.prompts import CONTRASTIVE, DEFAULT, ExplainerPrompt
from sae_interp.results import ExampleOut, ExplanationOut, LatentExamples

__all__ = [
    "EXPLAINERS",
    "ContrastiveExplainer",
    "DefaultExplainer",
    "Explained",
    "Explainer",
    "ExplainerConfig",
    "ExplainerKind",
    "PromptStyle",
    "TopTokensExplainer",
    "build_explainer",
    "show_text",
]

ExplainerKind = Literal["default", "contrastive", "top_tokens"]
PromptStyle = Literal["auto", "chat", "completion"]


@dataclass(frozen=True, kw_only=True)
class ExplainerConfig:
    """How explanations are asked for."""

    kind: ExplainerKind = "default"
    """default: activating examples only; contrastive: plus examples where the latent is silent;
    top_tokens: no LLM, the `n_top_tokens` tokens marked most often."""
    style: PromptStyle = "auto"
    """chat: system + user messages (chat models, servers); completion: one text ending in
    "[EXPLANATION]:" for base models such as the embedded gemma-3-270m; auto: completion when the
    client says its model is not chat-tuned, else chat."""
    threshold: float = 0.3
    """Tokens with activation above this fraction of the latent's max activation are marked."""
    show_activations: bool = False
    """Also list each marked token with its activation on a 0-10 scale."""
    max_examples: int | None = None
    """Show at most this many train examples (the strongest first); None shows all."""
    n_contrast: int = 10
    """Non-activating examples shown by the contrastive explainer."""
    max_tokens: int = 200
    """Generation budget of the answer (chat style; completion style stops after one sentence)."""
    n_top_tokens: int = 3
    """Tokens named by the top_tokens explainer."""

    def __post_init__(self) -> None:
        check_choice("explainer", "kind", self.kind, ExplainerKind)
        check_choice("explainer", "style", self.style, PromptStyle)
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"explainer.threshold must be in [0, 1), got {self.threshold!r}")
        check_positive("explainer", "max_tokens", self.max_tokens)
        check_positive("explainer", "n_contrast", self.n_contrast, allow_zero=True)
        check_positive("explainer", "n_top_tokens", self.n_top_tokens)
        if self.max_examples is not None:
            check_positive("explainer", "max_examples", self.max_examples)


@dataclass(frozen=True)
class Explained:
    """An explainer's output: the latent it explained and the explanation."""

    latent: LatentExamples
    explanation: ExplanationOut


Explainer = Callable[[LatentExamples], Awaitable[Explained]]
"""A pipeline stage named "explain"."""


def _shown_examples(latent: LatentExamples, cfg: ExplainerConfig) -> tuple[list[ExampleOut], float]:
    """The train examples shown (strongest first) and the activation scale: the latent's max.

    Tokens above `cfg.threshold` x scale are marked.
    """
    if not latent.train:
        raise ValueError(f"latent {latent.key} has no train examples to explain")
    examples = latent.train[: cfg.max_examples]
    return examples, latent.statistics.max or max((e.max_activation for e in examples), default=0.0)


def show_text(text: str) -> str:
    """Text as shown inside a prompt line: newlines become a visible "\\n" so excerpts stay on one line."""
    return text.replace("\r", "").replace("\n", "\\n")


class DefaultExplainer:
    """Marked activating examples in, one sentence out."""

    name = "explain"
    prompt: ExplainerPrompt = DEFAULT

    def __init__(self, client: LLMClient, cfg: ExplainerConfig | None = None) -> None:
        self.client = client
        self.cfg = cfg or ExplainerConfig()
        self.style: PromptStyle = self.cfg.style
        if self.style == "auto":
            self.style = "chat" if client.capabilities.chat_tuned else "completion"

    async def __call__(self, latent: LatentExamples) -> Explained:
        if not latent.train:
            raise ValueError(f"latent {latent.key} has no train examples to explain")
        if self.style == "chat":
            messages = self.messages(latent)
            params = SamplingParams(max_tokens=self.cfg.max_tokens, temperature=0.0)
            raw = (await self.client.chat(messages, params)).text
        else:
            params = SamplingParams(max_tokens=48, temperature=0.0, stop=("\n", ". "))
            lead = self.prompt.completion_lead
            raw = lead + (await self.client.complete(self.completion_prompt(latent), params)).text
        explanation = ExplanationOut(
            text=parse_explanation(raw),
            explainer=self.cfg.kind,
            prompt_version=f"{self.prompt.version}/{self.style}",
            raw=raw,
        )
        return Explained(latent, explanation)

    def messages(self, latent: LatentExamples) -> list[Message]:
        """The chat messages for `latent` (system: the task; user: the examples)."""
        return [
            {"role": "system", "content": self.prompt.system},
            {"role": "user", "content": "\n\n".join([*self.sections(latent), self.prompt.chat_closing])},
        ]

    def completion_prompt(self, latent: LatentExamples) -> str:
        """The completion-style prompt: intro, examples, and the start of the answer to continue."""
        blocks = [self.prompt.completion_intro, *self.sections(latent), self.prompt.completion_lead]
        return "\n\n".join(blocks)

    def sections(self, latent: LatentExamples) -> list[str]:
        """The blocks of examples shown to the model (the contrastive explainer adds one)."""
        return [self._activating_block(latent)]

    def _activating_block(self, latent: LatentExamples) -> str:
        examples, scale = _shown_examples(latent, self.cfg)
        threshold = self.cfg.threshold * scale
        lines = []
        for i, ex in enumerate(examples, 1):
            marks = marked_positions(ex.activations, threshold)
            lines.append(f"Example {i}: {show_text(highlight(ex.tokens, marks))}")
            if self.cfg.show_activations:
                listing = activation_listing(ex.tokens, ex.activations, scale)
                lines.append(f"Activations: {show_text(listing)}")
        return "\n".join(lines)


class ContrastiveExplainer(DefaultExplainer):
    """The default explainer plus examples in which the latent does not fire at all."""

    prompt = CONTRASTIVE

    def sections(self, latent: LatentExamples) -> list[str]:
        contrast = _contrast_examples(latent.non_activating, self.cfg.n_contrast)
        if not contrast:
            return super().sections(latent)
        lines = [f"Example {i}: {show_text(ex.text)}" for i, ex in enumerate(contrast, 1)]
        return [*super().sections(latent), self.prompt.contrast_heading + "\n" + "\n".join(lines)]


def _contrast_examples(examples: Sequence[ExampleOut], n: int) -> list[ExampleOut]:
    """Neighbour windows (hard negatives) first, then random ones."""
    ordered = sorted(examples, key=lambda ex: ex.kind != "neighbour")
    return ordered[:n]


class TopTokensExplainer:
    """No LLM: the explanation names the tokens marked most often in the train examples.

    "the tokens "Delaware", "LLC"" is what a latent that fires on fixed words deserves, and a floor
    that LLM explanations should beat. Scored against shuffled explanations it checks a scorer on
    real latents with no LLM in the loop (`experiments.explanation_quality`).
    """

    name = "explain"
    version = "top-tokens-v1"

    def __init__(self, client: LLMClient | None, cfg: ExplainerConfig | None = None) -> None:
        self.cfg = cfg or ExplainerConfig(kind="top_tokens")

    async def __call__(self, latent: LatentExamples) -> Explained:
        examples, scale = _shown_examples(latent, self.cfg)
        counts: Counter[str] = Counter()
        for ex in examples:
            marks = marked_positions(ex.activations, self.cfg.threshold * scale)
            counts.update(
                t.strip() for t, marked in zip(ex.tokens, marks, strict=True) if marked and t.strip()
            )
        if not counts:
            raise ExplanationParseError("no marked token with visible text", raw="")
        top = [
            json.dumps(token, ensure_ascii=False) for token, _ in counts.most_common(self.cfg.n_top_tokens)
        ]
        text = f"the token{'s' if len(top) > 1 else ''} {', '.join(top)}"
        explanation = ExplanationOut(text=text, explainer="top_tokens", prompt_version=self.version, raw=text)
        return Explained(latent, explanation)


EXPLAINERS: dict[str, Callable[[LLMClient, ExplainerConfig], Explainer]] = {
    "default": DefaultExplainer,
    "contrastive": ContrastiveExplainer,
    "top_tokens": TopTokensExplainer,
}


def build_explainer(client: LLMClient, cfg: ExplainerConfig) -> Explainer:
    """The explainer `cfg.kind` names, using `client`."""
    return EXPLAINERS[cfg.kind](client, cfg)
