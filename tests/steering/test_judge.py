"""The steering judge against a loopback server that rates from the text it is shown."""

from __future__ import annotations

import re

import pytest

from sae_interp.clients import OpenAICompatible
from sae_interp.steering import SweepRow, judge_sweep
from tests.clients.loopback import LoopbackServer, RecordedRequest, Reply, Respond, chat_body, error_reply


def rater(request: RecordedRequest) -> Reply:
    """Behaviour 10 when the text says "wedding" (else 1); coherence 1 for "qq" texts, else 7; a text
    saying "mute" gets an answer with no rating, one saying "broken" a server error."""
    question = request.json["messages"][-1]["content"]
    text = re.search(r"<text>\n(.*)\n</text>", question, re.S)[1]
    if "broken" in text:
        return error_reply(500)
    if "mute" in text:
        return Reply(body=chat_body("I cannot say."))
    if "how much is this text about weddings" in question:
        return Reply(body=chat_body("[10]" if "wedding" in text else "[1]"))
    return Reply(body=chat_body("[1]" if "qq" in text else "[7]"))


def row(method: str, texts: tuple[str, ...]) -> SweepRow:
    return SweepRow(
        behaviour="wedding", method=method, scale=1.0, word_rate=0.0, target_activation=0.0, nll=0.0,
        coherence=1.0, score=0.0, example=texts[0], texts=texts,
    )  # fmt: skip


async def test_ratings_are_averaged_per_cell_and_bad_answers_left_out() -> None:
    rows = [
        row("steered", ("a lovely wedding day", "the wedding cake", "qq qq wedding")),
        row("plain", ("a shop", "mute text", "broken text")),
    ]
    async with LoopbackServer(default=Respond(rater)) as server:
        client = OpenAICompatible(server.base_url, "judge", max_concurrency=8, max_retries=0)
        judged = await judge_sweep(client, rows)
        await client.aclose()
    steered, plain = judged
    assert steered.judge_behaviour == 1.0
    assert steered.judge_coherence == pytest.approx((6 / 9 + 6 / 9 + 0) / 3)
    assert steered.judge_score == pytest.approx(steered.judge_behaviour * steered.judge_coherence)
    assert steered.ranking == steered.judge_score
    # "mute" and "broken" give no ratings: only "a shop" counts (behaviour 1 -> 0, coherence 7)
    assert plain.judge_behaviour == 0.0 and plain.judge_coherence == pytest.approx(6 / 9)
    assert len(server.requests) == 12  # two questions per text, no retries
    assert all(r.json["temperature"] == 0.0 for r in server.requests)


async def test_an_unrated_cell_keeps_the_proxy_score() -> None:
    async with LoopbackServer(default=Respond(rater)) as server:
        client = OpenAICompatible(server.base_url, "judge", max_retries=0)
        (judged,) = await judge_sweep(client, [row("plain", ("mute", "broken"))])
        await client.aclose()
    assert judged.judge_score is None and judged.ranking == judged.score == 0.0
