"""Every explainer prompt, in one readable place. Change a prompt: bump its version.

The version goes into each explanation's record (`ExplanationOut.prompt_version`), so explanations
written with different prompts are never compared unknowingly.

Two styles:
- chat: a system message with the task and a user message with the examples; the answer ends with
  `[EXPLANATION]: ...`. For chat-tuned models and any server.
- completion: one plain text that ends with the start of the answer ("[EXPLANATION]: The marked
  tokens are"), so that a base model (the embedded gemma-3-270m) simply completes the sentence.
"""

from __future__ import annotations

__all__ = ["CONTRASTIVE", "DEFAULT", "ExplainerPrompt"]

from dataclasses import dataclass


@dataclass(frozen=True)
class ExplainerPrompt:
    version: str
    system: str
    """The chat system message."""
    completion_intro: str
    """The opening paragraph of the completion-style prompt."""
    completion_lead: str = "[EXPLANATION]: The marked tokens are"
    """How the completion-style prompt ends: the start of the answer, which the model continues
    (a bare "[EXPLANATION]:" lets a small base model wander off into more examples)."""
    contrast_heading: str = ""
    """Heading of the non-activating examples (contrastive prompts only)."""
    chat_closing: str = (
        "That was the last example. What do the marked tokens have in common? End your answer with "
        "the line [EXPLANATION]: <one sentence>"
    )
    """The last paragraph of the chat user message. Without it a small model (Qwen2.5-0.5B) may read
    the examples as a list to go on with and answer "Example 11: ..." (1 latent in 8 of a run)."""


_TASK = (
    "You are analysing one latent (a learned feature) of a language model. Below are text excerpts "
    "in which the latent is active. The tokens where it is active are marked <<like this>>. "
)
_ANSWER = (
    "Say in one short sentence what the marked tokens have in common, and in what context the "
    "latent fires. Be specific: name the words, topics or patterns. Reason briefly if you need to, "
    "then end with one line of the form\n[EXPLANATION]: <your one-sentence explanation>"
)

DEFAULT = ExplainerPrompt(
    version="default-v3",
    system=_TASK + _ANSWER,
    completion_intro=(
        "The excerpts below come from text where one feature of a language model is active; the "
        "tokens where it fires are marked <<like this>>. A one-sentence explanation of the feature "
        "follows the excerpts."
    ),
)

CONTRASTIVE = ExplainerPrompt(
    version="contrastive-v3",
    system=(
        _TASK + "After them come excerpts in which the latent is NOT active at all. Look for what the "
        "active excerpts have and the inactive ones lack. " + _ANSWER
    ),
    completion_intro=(
        "The first excerpts below come from text where one feature of a language model is active "
        "(the tokens where it fires are marked <<like this>>); the later ones come from text where "
        "it is not active at all. A one-sentence explanation of what distinguishes them follows."
    ),
    contrast_heading="Excerpts where the latent is not active:",
)
