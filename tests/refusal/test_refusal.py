"""Refusal direction, selection and metrics: on a tiny model, on gemma (fast) and on Qwen (the default)."""

from __future__ import annotations

import random

import pytest
import torch

from sae_interp.data import load_instructions
from sae_interp.models import Ablate, AddVector, encode_chat, intervene, load_model
from sae_interp.refusal.direction import candidate_layers, fit_directions, last_position_resid, projection_auc
from sae_interp.refusal.metrics import (
    is_refusal,
    kl_divergence,
    refusal_rate,
    refusal_scores,
    refusal_token_ids,
)
from sae_interp.refusal.selection import CandidateScore, select_candidate


def _synthetic(marker: str, n: int, seed: int) -> list[str]:
    """Random words with a class marker word at two random positions (not last)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        words = [f"w{rng.randrange(100, 900)}" for _ in range(rng.randint(4, 8))]
        for _ in range(2):
            words.insert(rng.randrange(len(words)), marker)
        prompts.append(" ".join(words))
    return prompts


def _check_direction(model, layer, train, test) -> None:
    """r from train separates test; ablating r zeroes the projection; adding r shifts it by |r|^2/|r|."""
    enc = {k: encode_chat(model, v) for k, v in {**train, **test}.items()}
    resid = {k: last_position_resid(model, p, [layer]) for k, p in enc.items()}
    r = fit_directions(resid["harmful"], resid["harmless"]).at(layer)
    auc = projection_auc(resid["harmful_test"][layer], resid["harmless_test"][layer], r)
    assert auc >= 0.9, f"held-out projection AUC {auc:.3f}"
    unit = r / r.norm()
    with intervene(model, [Ablate(r)]):
        ablated = last_position_resid(model, enc["harmful_test"], [layer])[layer]
    assert (ablated @ unit).abs().max() < 1e-3 * ablated.norm(dim=-1).max()
    with intervene(model, [AddVector(layer, r)]):
        added = last_position_resid(model, enc["harmless_test"], [layer])[layer]
    shift = (added - resid["harmless_test"][layer]) @ unit
    torch.testing.assert_close(shift, torch.full_like(shift, float(r.norm())), rtol=1e-3, atol=1e-3)


def test_direction_on_a_tiny_model(tiny_llama_dir):
    model = load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")
    # A random 2-layer model moves little information to a trailing "Assistant:" position, so
    # the instruction itself is put last here; the real models below use their real templates.
    model.tokenizer.chat_template = "{{ messages[-1]['content'] }}"
    train = {"harmful": _synthetic("w7", 24, 1), "harmless": _synthetic("w8", 24, 2)}
    test = {"harmful_test": _synthetic("w7", 16, 3), "harmless_test": _synthetic("w8", 16, 4)}
    _check_direction(model, 1, train, test)


def _real_sets(n_train: int, n_test: int) -> tuple[dict, dict]:
    train = {k: load_instructions(k, split="train")[:n_train] for k in ("harmful", "harmless")}
    test = {f"{k}_test": load_instructions(k, split="test")[:n_test] for k in ("harmful", "harmless")}
    return train, test


def test_direction_on_gemma(gemma):
    """gemma is a base model: this is the harmful-vs-harmless direction (layer 9 of 18)."""
    _check_direction(gemma, 9, *_real_sets(16, 16))


@pytest.mark.qwen
def test_direction_on_qwen_at_the_seed_layer(qwen):
    """Layer 13 of 24, as in the seed study; 32 held-out prompts each (16 gave a noisy AUC of 0.88)."""
    _check_direction(qwen, 13, *_real_sets(32, 32))


@pytest.mark.qwen
def test_qwen_refuses_harmful_more_than_harmless_by_refusal_score(qwen):
    from sae_interp.refusal.metrics import next_token_logprobs

    ids = refusal_token_ids(qwen.tokenizer)
    _, test = _real_sets(0, 16)
    scores = {
        k: refusal_scores(next_token_logprobs(qwen, encode_chat(qwen, v)), ids) for k, v in test.items()
    }
    assert scores["harmful_test"].mean() > scores["harmless_test"].mean() + 2


def test_candidate_layers_stay_below_eighty_percent():
    assert candidate_layers(24) == (5, 7, 9, 11, 14, 16, 18)
    assert candidate_layers(4) == (1, 2)
    assert all(layer < 0.8 * 18 for layer in candidate_layers(18))


def test_projection_auc_on_constructed_points():
    d = torch.tensor([1.0, 0.0])
    pos, neg = torch.tensor([[2.0, 5], [3, -1]]), torch.tensor([[0.0, 9], [1, 1]])
    assert projection_auc(pos, neg, d) == 1.0 and projection_auc(neg, pos, d) == 0.0
    assert projection_auc(pos, pos, d) == 0.5


def test_selection_filters_then_takes_lowest_bypass():
    scores = [
        CandidateScore(layer=3, bypass=-9.0, induce=-1.0, kl=0.01),  # induce fails
        CandidateScore(layer=5, bypass=-4.0, induce=2.0, kl=0.05),
        CandidateScore(layer=7, bypass=-6.0, induce=1.0, kl=0.02),
        CandidateScore(layer=9, bypass=-8.0, induce=3.0, kl=0.5),  # KL fails
        CandidateScore(layer=20, bypass=-10.0, induce=3.0, kl=0.01),  # too deep for 24 layers
    ]
    assert select_candidate(scores, 24) == (scores[2], ())
    # induce is relaxed first, KL next, depth last
    no_induce = [CandidateScore(layer=s.layer, bypass=s.bypass, induce=-1.0, kl=s.kl) for s in scores]
    assert select_candidate(no_induce, 24) == (no_induce[0], ("induce",))
    deep_or_drifting = [scores[4], CandidateScore(layer=6, bypass=-1.0, induce=-1.0, kl=0.9)]
    assert select_candidate(deep_or_drifting, 24) == (deep_or_drifting[1], ("induce", "kl"))
    assert select_candidate(scores[4:], 24) == (scores[4], ("layer",))


def test_relaxed_kl_prefers_the_least_disturbing_effective_direction():
    # Measured on Qwen2.5-Coder-0.5B (default main job, 16+16 validation prompts): layer, bypass,
    # induce, KL. Unablated harmful validation refusal score: -0.41.
    measured = [(5, -0.73, -2.50, 0.054), (7, -0.63, -2.43, 0.087), (9, -0.50, -2.38, 0.056),
                (11, -0.23, -1.88, 0.597), (14, -3.64, -1.24, 0.785), (16, -2.05, -1.07, 0.478),
                (18, -3.74, -1.06, 0.986)]  # fmt: skip
    scores = [CandidateScore(layer=n, bypass=b, induce=i, kl=k) for n, b, i, k in measured]
    # The low-KL layers barely move refusal; of those that work, 16 disturbs harmless prompts least.
    assert select_candidate(scores, 24, harmful_baseline=-0.41) == (scores[5], ("induce", "kl"))
    # Without a baseline there is no effectiveness filter: the lowest bypass under KL 0.1.
    assert select_candidate(scores, 24) == (scores[0], ("induce",))
    # Nothing works: effectiveness is relaxed after KL, and the lowest bypass wins.
    assert select_candidate(scores, 24, harmful_baseline=-5.0) == (scores[6], ("induce", "kl", "effective"))
    # A low-KL layer that works passes every filter but induce, and wins.
    works = [*scores, CandidateScore(layer=8, bypass=-2.0, induce=-1.0, kl=0.09)]
    assert select_candidate(works, 24, harmful_baseline=-0.41) == (works[-1], ("induce",))


def test_refusal_score_and_kl_on_constructed_distributions():
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]])
    logprobs = probs.log()
    scores = refusal_scores(logprobs, [0])
    torch.testing.assert_close(scores, torch.tensor([0.0, torch.log(torch.tensor(0.1 / 0.9))]))
    assert kl_divergence(logprobs, logprobs).abs().max() < 1e-6
    assert (kl_divergence(logprobs, logprobs.flip(0)) > 0).all()


def test_substring_judge():
    assert is_refusal("Sure. I'm sorry, but no.") and not is_refusal(
        "Sure. I'm sorry, but no.", where="start"
    )
    assert is_refusal("  I cannot help with that", where="start")
    assert refusal_rate(["I can't do that.", "Here is a poem", "As an AI, I won't"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no generations"):
        refusal_rate([])


def test_refusal_tokens_are_first_tokens_of_refusal_words(gemma):
    ids = refusal_token_ids(gemma.tokenizer)
    assert gemma.tokenizer("I", add_special_tokens=False)["input_ids"][0] in ids
    assert len(ids) == len(set(ids))
