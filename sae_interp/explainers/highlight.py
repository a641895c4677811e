"""Mark the tokens where a latent fires: `<<token>>`, with consecutive marked tokens merged.

Explainers show these marks to the LLM, and the fuzzing scorer marks tokens the same way (correctly
or at random positions), so both use this one function.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CLOSE", "OPEN", "activation_listing", "highlight", "marked_positions"]

OPEN, CLOSE = "<<", ">>"


def marked_positions(activations: Sequence[float], threshold: float) -> list[bool]:
    """Which tokens count as active: activation > threshold (and > 0, so zeros are never marked).

    An example whose activations are all at or below the threshold but not all zero gets its
    strongest token marked: a weak activating example still shows where it fires.
    """
    marks = [a > threshold and a > 0 for a in activations]
    if not any(marks) and activations and max(activations) > 0:
        marks[max(range(len(activations)), key=activations.__getitem__)] = True
    return marks


def highlight(tokens: Sequence[str], marked: Sequence[bool]) -> str:
    """Join `tokens`, wrapping each run of consecutive marked tokens in one `<<...>>`.

    Example:
        >>> highlight(["The", " big", " dog"], [False, True, True])
        'The<< big dog>>'
    """
    if len(tokens) != len(marked):
        raise ValueError(f"highlight: {len(tokens)} tokens but {len(marked)} marks")
    out: list[str] = []
    inside = False
    for token, mark in zip(tokens, marked, strict=True):
        if mark != inside:
            out.append(OPEN if mark else CLOSE)
            inside = mark
        out.append(token)
    if inside:
        out.append(CLOSE)
    return "".join(out)


def activation_listing(tokens: Sequence[str], activations: Sequence[float], scale_max: float) -> str:
    """The marked tokens with their activation on a 0-10 scale, e.g. `(" dog", 7), (" cat", 3)`.

    Args:
        scale_max: the activation that maps to 10 (the latent's max); values are rounded, and
            tokens that round to 0 are left out.
    """
    if scale_max <= 0:
        return ""
    pairs = []
    for token, act in zip(tokens, activations, strict=True):
        level = round(10 * min(act, scale_max) / scale_max)
        if level > 0:
            pairs.append(f"({token!r}, {level})")
    return ", ".join(pairs)
