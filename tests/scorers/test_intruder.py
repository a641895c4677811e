"""Intruder: exact prompt and rounds, choice parsing, oracle accuracy vs a blind judge's chance."""

from __future__ import annotations

import pytest

from sae_interp.clients import OpenAICompatible
from sae_interp.explain import ExplainConfig, build_pipeline
from sae_interp.explainers import Explained
from sae_interp.results import (
    ExampleOut,
    ExplanationOut,
    LatentExamples,
    LatentStatistics,
    iter_latent_results,
)
from sae_interp.scorers import IntruderScorer, ScorerConfig, build_scorers
from sae_interp.scorers.answers import parse_choice
from tests.clients.loopback import LoopbackServer, Reply, Respond, chat_body
from tests.latents import KEYWORDS, make_latent
from tests.scorers.oracle import oracle


def _explained(latent: LatentExamples) -> Explained:
    # The explanation is never shown; a wrong one must change nothing.
    return Explained(
        latent, ExplanationOut(text="the word nothing", explainer="x", prompt_version="x", raw="")
    )


def _ex(tokens: list[str], acts: list[float], kind: str = "activating") -> ExampleOut:
    return ExampleOut(
        tokens=tokens,
        activations=acts,
        kind=kind,
        quantile=1 if kind == "activating" else None,
        row=0,
        start=0,
    )  # type: ignore[arg-type]


def _tiny_latent() -> LatentExamples:
    return LatentExamples(
        key="h/0",
        hookpoint="h",
        latent=0,
        statistics=LatentStatistics(
            count=3, frequency=0.1, max=4.0, mean=3.0, hist=[1], hist_edges=[0.0, 4.0]
        ),
        train=[],
        test=[
            _ex(["A", " cat", " sat"], [0.0, 4.0, 0.0]),
            _ex(["My", " cat", " ran"], [0.0, 3.0, 1.0]),  # 1.0 < 0.3 * 4: unmarked
            _ex(["The", " cat", "\n", "ok"], [0.0, 2.0, 0.0, 0.0]),
        ],
        non_activating=[_ex(["Dogs", " bark"], [0.0, 0.0], kind="random")],
    )


def test_prompt_and_rounds_are_formatted_exactly() -> None:
    scorer = IntruderScorer(OpenAICompatible("http://127.0.0.1:9/v1", "m"), ScorerConfig())
    (round_,) = scorer.rounds(_tiny_latent())  # 3 test examples + 1 intruder fill one round of 4
    intruder = round_.excerpts[round_.intruder - 1]
    assert intruder in {"<<Dogs>> bark", "Dogs<< bark>>"}
    assert round_.sources[round_.intruder - 1] == "non_activating[0]"
    others = [e for i, e in enumerate(round_.excerpts, 1) if i != round_.intruder]
    assert sorted(others) == ["A<< cat>> sat", "My<< cat>> ran", "The<< cat>>\\nok"]
    assert scorer.rounds(_tiny_latent()) == [round_]  # seeded by (seed, scorer, latent)
    messages = scorer.messages(["one <<a>>", "two <<b>>"])
    assert messages == [
        {
            "role": "system",
            "content": (
                "You see numbered text excerpts in which some tokens are marked <<like this>>. In all but "
                "one of them, the marked tokens share a common feature (a word, topic or pattern); in one, "
                "the odd one out, they do not. Reply with the number of the odd one out and nothing else."
            ),
        },
        {"role": "user", "content": "Excerpts:\n1. one <<a>>\n2. two <<b>>"},
    ]
    assert scorer.prompt.version == "intruder-v1"


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("3", 4, 3),
        ("Excerpt 2.", 4, 2),
        ("The odd one out is number 4", 4, 4),
        ("1 or 3", 4, None),
        ("5", 4, None),
        ("0", 4, None),
        ("none of them", 4, None),
        ("", 4, None),
    ],
)
def test_choice_parsing(text: str, n: int, expected: int | None) -> None:
    assert parse_choice(text, n) == expected


async def test_oracle_finds_every_intruder() -> None:
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=16)
        (scorer,) = build_scorers(client, ScorerConfig(names=("intruder",)))
        outs = [await scorer(_explained(make_latent(i))) for i in range(len(KEYWORDS))]
        await client.aclose()
    assert isinstance(scorer, IntruderScorer)
    for out in outs:
        assert out.score == 1.0 and out.n_unparsed == 0
        assert out.metrics["chance"] == 0.25 and out.metrics["n_rounds"] == 3  # 10 test // 3 per round
    assert len(server.requests) == 3 * len(KEYWORDS)
    slots = [s["intruder"] for out in outs for s in out.samples]
    assert set(slots) == {1, 2, 3, 4}  # the intruder moves, so "always 1" cannot score


async def test_a_blind_judge_scores_near_chance() -> None:
    async with LoopbackServer(default=Reply(body=chat_body("1"))) as server:
        client = OpenAICompatible(server.base_url, "blind", max_concurrency=16)
        scorer = IntruderScorer(client, ScorerConfig(intruder_size=3))
        outs = [await scorer(_explained(make_latent(i, n_test=20, n_non=20))) for i in range(len(KEYWORDS))]
        await client.aclose()
    correct = sum(o.metrics["n_correct"] or 0 for o in outs)
    rounds = sum(o.metrics["n_rounds"] or 0 for o in outs)
    assert rounds == 20 * 10 and outs[0].metrics["chance"] == pytest.approx(1 / 3)
    assert correct / rounds == pytest.approx(1 / 3, abs=0.1)


async def test_malformed_answers_are_recorded_not_fatal() -> None:
    garbage = [Reply(body=chat_body(text)) for text in ("2 or 3", "I cannot tell")]
    async with LoopbackServer(*garbage, default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=1)
        out = await IntruderScorer(client, ScorerConfig())(_explained(make_latent(0)))
        await client.aclose()
    assert out.n_unparsed == 2 and out.metrics["n_unparsed"] == 2 and out.metrics["n_rounds"] == 3
    assert out.score == 1.0 and out.metrics["n_correct"] == 1  # the one parsed round
    assert [s["prediction"] for s in out.samples].count(None) == 2


async def test_too_few_examples_for_a_round_fail_clearly() -> None:
    scorer = IntruderScorer(OpenAICompatible("http://127.0.0.1:9/v1", "m"), ScorerConfig(intruder_size=5))
    assert scorer.rounds(_tiny_latent()) == []
    with pytest.raises(ValueError, match="needs 4 test examples and one non-activating"):
        await scorer(_explained(_tiny_latent()))


async def test_new_scorers_run_in_the_pipeline(tmp_path) -> None:
    cfg = ExplainConfig(scorers=ScorerConfig(names=("simulation", "intruder")), max_in_flight=4)
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=16)
        pipeline, _ = build_pipeline([make_latent(i) for i in range(3)], None, client, cfg, tmp_path)
        result = await pipeline.run()
        await client.aclose()
    assert result.done == 3 and not result.failed
    for r in iter_latent_results(tmp_path):  # written and read back: samples serialise
        assert r.scores["intruder"].score == 1.0 and r.scores["intruder"].prompt_version == "intruder-v1"
        simulation = r.scores["simulation"]
        assert simulation.score is not None and simulation.score > 0.9
        assert simulation.prompt_version == "simulation-v1" and len(simulation.samples) == 20
