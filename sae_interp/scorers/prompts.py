"""Every scorer prompt, in one readable place. Change a prompt: bump its version.

Classifier prompts ask for a JSON list of 0/1, one per numbered excerpt, so that one short answer
judges a whole batch and its digit tokens carry the probabilities (from logprobs) in order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DETECTION", "FUZZING", "INTRUDER", "ClassifierPrompt"]


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
        "You see numbered text excerpts. All but one of them share a common feature (a word, topic "
        "or pattern); one is the odd one out. Reply with the number of the odd one out and nothing "
        "else."
    ),
)
