"""Every scorer prompt, in one readable place. Change a prompt: bump its version.

Judge prompts ask for a JSON list, one item per numbered excerpt (classifiers: 0/1) or token
(simulation: 0-10), so that one short answer covers the batch and its digit tokens carry the
probabilities (from logprobs) in order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DETECTION",
    "FUZZING",
    "INTRUDER",
    "SIMULATION",
    "SURPRISAL",
    "ClassifierPrompt",
    "SurprisalPrompt",
]


@dataclass(frozen=True)
class ClassifierPrompt:
    version: str
    system: str


_ANSWER = (
    "Answer with a JSON list of 0s and 1s, one per excerpt, in the order given, and nothing else. "
    "For example, for four excerpts: [1, 0, 0, 1]"
)

DETECTION = ClassifierPrompt(
    version="detection-v1",
    system=(
        "You are checking an explanation of one latent (a learned feature) of a language model. "
        "You get the explanation and numbered text excerpts. For each excerpt, decide whether the "
        "latent, as the explanation describes it, would be active on at least one of its tokens: "
        "1 if yes, 0 if no. " + _ANSWER
    ),
)

FUZZING = ClassifierPrompt(
    version="fuzzing-v1",
    system=(
        "You are checking an explanation of one latent (a learned feature) of a language model. "
        "You get the explanation and numbered text excerpts in which some tokens are marked "
        "<<like this>>. For each excerpt, decide whether the marked tokens are ones on which the "
        "latent, as the explanation describes it, would be active: 1 if they all are, 0 if not. " + _ANSWER
    ),
)

INTRUDER = ClassifierPrompt(
    version="intruder-v1",
    system=(
        "You see numbered text excerpts in which some tokens are marked <<like this>>. In all but one "
        "of them, the marked tokens share a common feature (a word, topic or pattern); in one, the "
        "odd one out, they do not. Reply with the number of the odd one out and nothing else."
    ),
)

SIMULATION = ClassifierPrompt(
    version="simulation-v1",
    system=(
        "You are simulating one latent (a learned feature) of a language model from its explanation. "
        "You get the explanation, a text excerpt, and the excerpt's tokens, numbered, each as a JSON "
        "string. For each token, predict how strongly the latent fires on it, as the explanation "
        "describes it: an integer from 0 (not at all) to 10 (as strongly as it ever fires). Most "
        "tokens are usually 0. Answer with a JSON list of integers, one per token, in the order given, "
        "and nothing else. For example, for five tokens: [0, 0, 8, 0, 1]"
    ),
)


@dataclass(frozen=True)
class SurprisalPrompt:
    """Prefixes put before an example's text, with and without the explanation."""

    version: str
    explained: str
    """Holds `{explanation}`."""
    neutral: str
    """The same frame without the explanation: the baseline."""


# The frames differ only by the explanation, so the loss difference measures what it tells the model.
# Both end in a newline: the example's text then starts a new line (see `SurprisalScorer`).
SURPRISAL = SurprisalPrompt(
    version="surprisal-v1",
    explained="The following text excerpt is about {explanation}.\nExcerpt:\n",
    neutral="The following text excerpt is about something.\nExcerpt:\n",
)
