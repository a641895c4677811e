"""Ablate and AddVector hooks: exact effect on the residual stream, no-op at scale 0, always removed."""

from __future__ import annotations

import pytest
import torch

from sae_interp.models import Ablate, AddVector, encode_chat, generate, generate_ids, intervene, load_model


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")


def _layer_inputs(model, tokens):
    """Inputs of every decoder layer as the layer receives them (probe hooks run after ours)."""
    layers = model.hf.get_submodule(model.spec.layers_path)
    seen: dict[int, torch.Tensor] = {}
    handles = [
        layer.register_forward_pre_hook(lambda _m, args, i=i: seen.__setitem__(i, args[0].clone()))
        for i, layer in enumerate(layers)
    ]
    try:
        with torch.no_grad():
            model.hf(tokens)
    finally:
        for h in handles:
            h.remove()
    return seen


def _hook_count(model) -> int:
    """Hooks that interventions made (load_model's permanent LM-head hook is not one of them)."""
    head = model.hf.get_output_embeddings()
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.hf.modules() if m is not head)


def test_ablation_removes_the_direction_at_every_layer(tiny):
    tokens = torch.randint(0, 900, (3, 9))
    r = torch.randn(tiny.spec.d_model)
    plain = _layer_inputs(tiny, tokens)
    assert all((x @ r).abs().max() > 1e-3 for x in plain.values())
    with intervene(tiny, [Ablate(r)]):
        ablated = _layer_inputs(tiny, tokens)
    unit = r / r.norm()
    for x in ablated.values():
        assert (x @ unit).abs().max() < 1e-4


def test_add_vector_shifts_only_its_layer_input_by_the_vector(tiny):
    tokens = torch.randint(0, 900, (2, 7))
    v = torch.randn(tiny.spec.d_model)
    plain = _layer_inputs(tiny, tokens)
    with intervene(tiny, [AddVector(1, v)]):
        added = _layer_inputs(tiny, tokens)
    torch.testing.assert_close(added[0], plain[0])
    torch.testing.assert_close(added[1] - plain[1], v.expand_as(plain[1]), atol=1e-5, rtol=1e-5)


def test_hooks_are_removed_even_after_an_exception(tiny):
    before = _hook_count(tiny)
    with (
        pytest.raises(RuntimeError, match="boom"),
        intervene(tiny, [Ablate(torch.ones(64)), AddVector(0, torch.ones(64))]),
    ):
        assert _hook_count(tiny) > before
        raise RuntimeError("boom")
    assert _hook_count(tiny) == before


def test_bad_intervention_and_layer_give_clear_errors(tiny):
    with (
        pytest.raises(ValueError, match=r"layer=5 is out of range"),
        intervene(tiny, [AddVector(5, torch.ones(64))]),
    ):
        pass
    with pytest.raises(TypeError, match="unknown intervention"), intervene(tiny, ["nope"]):  # type: ignore[list-item]
        pass
    assert _hook_count(tiny) == 0


def test_generation_with_a_zero_vector_is_unchanged_and_hooks_are_gone(tiny):
    prompts = encode_chat(tiny, ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9"])
    plain = generate(tiny, prompts, max_new_tokens=6, batch_size=2)
    zero = generate(
        tiny, prompts, max_new_tokens=6, batch_size=2, interventions=[AddVector(1, torch.zeros(64))]
    )
    pushed = generate(
        tiny, prompts, max_new_tokens=6, batch_size=2, interventions=[AddVector(0, 50 * torch.randn(64))]
    )
    assert zero == plain and pushed != plain
    assert _hook_count(tiny) == 0


def test_batched_generation_equals_one_at_a_time(tiny):
    prompts = encode_chat(tiny, ["w1 w2 w3 w4 w5 w6", "w7", "w8 w9 w10"])
    batched = generate(tiny, prompts, max_new_tokens=5, batch_size=3)
    single = [
        generate(tiny, encode_chat(tiny, [t]), max_new_tokens=5)[0]
        for t in ["w1 w2 w3 w4 w5 w6", "w7", "w8 w9 w10"]
    ]
    assert batched == single


def test_per_row_vectors_follow_their_rows_across_batches(tiny):
    prompts = encode_chat(tiny, ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9"])
    vectors = torch.stack([torch.zeros(64), 50 * torch.randn(64), 50 * torch.randn(64)])
    batched = generate_ids(
        tiny, prompts, max_new_tokens=5, batch_size=2, interventions=[AddVector(1, vectors)]
    )
    for i in range(3):
        one = generate_ids(
            tiny, prompts.rows(i, i + 1), max_new_tokens=5, interventions=[AddVector(1, vectors[i])]
        )
        assert torch.equal(batched[i], one[0])
    assert generate(tiny, prompts.rows(0, 1), max_new_tokens=5) == tiny.tokenizer.batch_decode(
        batched[:1], skip_special_tokens=True
    )
    with (
        pytest.raises(ValueError, match="per-row vectors for a batch"),
        intervene(tiny, [AddVector(1, vectors)]),
    ):
        tiny.hf(input_ids=prompts.input_ids[:2])
    assert _hook_count(tiny) == 0


def test_a_batch_of_short_prompts_drops_the_padding_none_of_them_needs(tiny):
    prompts = encode_chat(tiny, ["w1", "w2", "w3 w4 w5 w6 w7 w8 w9 w10"])
    short, whole = prompts.rows(0, 2), prompts.rows(0, 3)
    assert whole.input_ids.shape == prompts.input_ids.shape
    assert short.input_ids.shape[1] == int(prompts.attention_mask[:2].sum(1).max())
    assert short.attention_mask.all()  # equal-length prompts: no padding left
    assert torch.equal(short.input_ids, prompts.input_ids[:2, -short.input_ids.shape[1] :])
