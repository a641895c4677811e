"""Shared-prefix batches give the plain batch's results, and the LM head always gets a contiguous input."""

from __future__ import annotations

import pytest
import torch

from sae_interp.models import Ablate, PromptBatch, intervene, load_model
from sae_interp.models.prefix import split_shared_prefix

PAD = 0


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")


def _left_padded(rows: list[list[int]]) -> PromptBatch:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return PromptBatch(ids, mask)


def _rows(vocab: int, prefix_len: int, suffix_lens: list[int], seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    prefix = torch.randint(1, vocab, (prefix_len,), generator=g).tolist()
    return [prefix + torch.randint(1, vocab, (n,), generator=g).tolist() for n in suffix_lens]


def test_split_finds_the_prefix_and_lays_out_prefix_padding_suffix() -> None:
    rows = _rows(50, 5, [3, 1, 2])
    shared = split_shared_prefix(_left_padded(rows), PAD, min_prefix=3)
    assert shared is not None and shared.n_prefix == 5
    assert shared.input_ids.shape == (3, 8)
    for i, row in enumerate(rows):
        real = shared.input_ids[i][shared.attention_mask[i].bool()].tolist()
        assert real == row  # prefix, then the row's own tokens, padding masked between
    assert shared.attention_mask[1].tolist() == [1] * 5 + [0, 0, 1]


def test_split_declines_short_prefixes_and_keeps_a_token_per_row() -> None:
    rows = _rows(50, 4, [2, 2])
    assert split_shared_prefix(_left_padded(rows), PAD, min_prefix=5) is None
    # a row that is all prefix: the shared part stops one token short of it
    whole = _rows(50, 6, [0, 3])
    shared = split_shared_prefix(_left_padded(whole), PAD, min_prefix=2)
    assert shared is not None and shared.n_prefix == 5
    assert (
        split_shared_prefix(_left_padded(whole[:1]), PAD, min_prefix=2) is None
    )  # one row: nothing to share


def test_shared_forward_and_generation_equal_the_plain_batch(tiny) -> None:
    vocab = tiny.hf.get_input_embeddings().weight.shape[0]
    batch = _left_padded(_rows(vocab, 9, [4, 1, 6, 2], seed=1))
    shared = split_shared_prefix(batch, PAD, min_prefix=4)
    assert shared is not None
    direction = torch.randn(tiny.spec.d_model, generator=torch.Generator().manual_seed(2))
    for interventions in ([], [Ablate(direction)]):
        with torch.inference_mode(), intervene(tiny, interventions):
            positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
            plain = tiny.hf(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions
            ).logits[:, -1]
            fast = shared.suffix_forward(tiny.hf).logits[:, -1]
            torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
            kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": PAD}
            plain_ids = tiny.hf.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs
            )[:, batch.input_ids.shape[1] :]
            fast_ids = tiny.hf.generate(
                input_ids=shared.input_ids,
                attention_mask=shared.attention_mask,
                past_key_values=shared.prefill(tiny.hf),
                **kwargs,
            )[:, shared.input_ids.shape[1] :]
            assert torch.equal(fast_ids, plain_ids)


def test_lm_head_input_is_made_contiguous(tiny_llama_dir) -> None:
    model = load_model(tiny_llama_dir, dtype=torch.bfloat16, device="cpu")
    seen: list[bool] = []
    head = model.hf.get_output_embeddings()
    assert isinstance(head, torch.nn.Module)
    handle = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous()))
    try:
        with torch.inference_mode():
            model.hf(input_ids=torch.randint(1, 20, (3, 7)), logits_to_keep=1)
    finally:
        handle.remove()
    assert seen == [True]


def test_only_row_independent_interventions_share_a_prefix(tiny) -> None:
    from sae_interp.models import AddVector, Splice
    from sae_interp.models.interventions import prefix_shareable

    d = tiny.spec.d_model
    assert prefix_shareable([]) and prefix_shareable([Ablate(torch.ones(d)), AddVector(0, torch.ones(d))])
    assert not prefix_shareable([AddVector(0, torch.ones(3, d))])  # one vector per row
    assert not prefix_shareable([Splice(0, lambda x: x)])  # an opaque fn may count rows
