"""An "oracle" judge for the loopback server: answers explainer and scorer prompts from ground truth.

The constructed latents of `tests.latents` fire on one keyword each. The oracle explains a latent as
"the word <first marked token>", and judges an excerpt as the explanation says: detection says 1
when the explanation's word is in the excerpt, fuzzing says 1 when every marked span contains it.
So a correct explanation scores ~1 and another latent's explanation ~0.5: what a working scorer
must show (CONVENTIONS section 10).
"""

from __future__ import annotations

import math
import re

from sae_interp.scorers.prompts import FUZZING
from tests.clients.loopback import RecordedRequest, Reply, chat_body

_EXPLANATION = re.compile(r"^Explanation: the word (\S+)", re.MULTILINE)
_EXCERPT = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)
_MARKED = re.compile(r"<<(.*?)>>")
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


def oracle(request: RecordedRequest) -> Reply:
    messages = request.json["messages"]
    system, user = messages[0]["content"], messages[-1]["content"]
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
        verdicts = [word in e.split() for e in excerpts]
    text = "[" + ", ".join("1" if v else "0" for v in verdicts) + "]"
    logprobs = _verdict_tokens(verdicts) if request.json.get("logprobs") else None
    return Reply(body=chat_body(text, logprobs=logprobs))
