"""An "oracle" judge for the loopback server: answers explainer and scorer prompts from ground truth.

The constructed latents of `tests.latents` fire on one keyword each. The oracle explains a latent as
"the word <first marked token>", and judges an excerpt as the explanation says: detection says 1
when the explanation's word is in the excerpt, fuzzing says 1 when every marked span contains it.
So a correct explanation scores ~1 and another latent's explanation ~0.5: what a working scorer
must show (CONVENTIONS section 10).

Simulation: the oracle predicts 10 on tokens equal to the explanation's word and 0 elsewhere (with
logprobs: 0.9 on that level, 0.1 on the other). Intruder: the word marked in most excerpts is the
latent's keyword; the oracle names the excerpt whose marks do not hold it.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

from sae_interp.scorers.prompts import FUZZING, INTRUDER, SIMULATION
from tests.clients.loopback import RecordedRequest, Reply, chat_body

_EXPLANATION = re.compile(r"^Explanation: the word (\S+)", re.MULTILINE)
_EXCERPT = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)
_MARKED = re.compile(r"<<(.*?)>>")
_TINY_WORD = re.compile(r"w\d+")
"""tiny_llama's WordLevel tokens (w0..w999), which decode without spaces between them."""
UNUSABLE = "UNUSABLE"
"""A first marked token equal to this makes the oracle explainer answer with nothing usable."""


def _verdict_tokens(verdicts: list[bool]) -> list[tuple[str, float, list[tuple[str, float]]]]:
    tokens: list[tuple[str, float, list[tuple[str, float]]]] = [("[", 0.0, [])]
    for i, v in enumerate(verdicts):
        yes = 0.9 if v else 0.1
        tokens.append(
            ("1" if v else "0", math.log(max(yes, 1 - yes)), [("1", math.log(yes)), ("0", math.log(1 - yes))])
        )
        tokens.append((", " if i < len(verdicts) - 1 else "]", 0.0, []))
    return tokens


def _level_tokens(levels: list[int]) -> list[tuple[str, float, list[tuple[str, float]]]]:
    tokens: list[tuple[str, float, list[tuple[str, float]]]] = [("[", 0.0, [])]
    for i, level in enumerate(levels):
        other = "0" if level else "10"
        tokens.append((str(level), math.log(0.9), [(str(level), math.log(0.9)), (other, math.log(0.1))]))
        tokens.append((", " if i < len(levels) - 1 else "]", 0.0, []))
    return tokens


def _simulate(request: RecordedRequest, user: str) -> Reply:
    explained = _EXPLANATION.search(user)
    word = explained[1] if explained else "\x00"
    tokens = [json.loads(m[2]) for m in _EXCERPT.finditer(user.split("Tokens:", 1)[1])]
    levels = [10 if t.strip() == word else 0 for t in tokens]
    logprobs = _level_tokens(levels) if request.json.get("logprobs") else None
    return Reply(body=chat_body("[" + ", ".join(map(str, levels)) + "]", logprobs=logprobs))


def _intruder(user: str) -> Reply:
    excerpts = [m[2] for m in _EXCERPT.finditer(user.split("Excerpts:", 1)[1])]
    marked = [{s.strip() for s in _MARKED.findall(e)} for e in excerpts]
    keyword = Counter(w for words in marked for w in words).most_common(1)[0][0]
    odd = next(i for i, words in enumerate(marked, 1) if keyword not in words)
    return Reply(body=chat_body(str(odd)))


def oracle(request: RecordedRequest) -> Reply:
    messages = request.json["messages"]
    system, user = messages[0]["content"], messages[-1]["content"]
    if system == SIMULATION.system:
        return _simulate(request, user)
    if system == INTRUDER.system:
        return _intruder(user)
    if "[EXPLANATION]" in system:
        word = _MARKED.search(user)
        text = (
            "[EXPLANATION]:"
            if word is None or word[1].strip() == UNUSABLE
            else f"[EXPLANATION]: the word {word[1].strip()}"
        )
        return Reply(body=chat_body(text))
    explained = _EXPLANATION.search(user)
    word = explained[1] if explained else "\x00"
    excerpts = [m[2] for m in _EXCERPT.finditer(user.split("Excerpts:", 1)[1])]
    if system == FUZZING.system:
        verdicts = [bool(spans := _MARKED.findall(e)) and all(word in s for s in spans) for e in excerpts]
    else:
        verdicts = [word in e.split() or word in _TINY_WORD.findall(e) for e in excerpts]
    text = "[" + ", ".join("1" if v else "0" for v in verdicts) + "]"
    logprobs = _verdict_tokens(verdicts) if request.json.get("logprobs") else None
    return Reply(body=chat_body(text, logprobs=logprobs))
