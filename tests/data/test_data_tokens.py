"""Tokenisation into fixed-length rows, on the tiny WordLevel tokenizer ("w0".."w995", <s>, </s>, <pad>)."""

from __future__ import annotations

import logging
import random

import pytest
import torch
from transformers import AutoTokenizer

from sae_interp.data import TokenizeConfig, iter_token_rows, tokenize_rows
from sae_interp.models.templates import PLAIN_CHAT_TEMPLATE

CTX = 16


@pytest.fixture()
def tokenizer(tiny_llama_dir):
    """A fresh tokenizer per test: chat rendering may install a template on it."""
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


@pytest.fixture(scope="module")
def docs() -> list[str]:
    """40 documents of 1 to 40 known words; a fixed generator, independent of the global seed."""
    rng = random.Random(1234)
    return [" ".join(f"w{rng.randrange(4, 990)}" for _ in range(rng.randint(1, 40))) for _ in range(40)]


def _stream(docs: list[str], tokenizer) -> list[int]:
    """What packing must preserve: every document's ids, each followed by EOS."""
    out: list[int] = []
    for doc in docs:
        out += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return out


def test_packing_keeps_every_token_in_order_behind_one_bos(docs, tokenizer) -> None:
    rows = tokenize_rows(docs, tokenizer, TokenizeConfig(ctx_len=CTX))
    bos = tokenizer.bos_token_id
    assert rows.tokens.shape[1] == CTX and rows.tokens.dtype == torch.long
    assert (rows.tokens[:, 0] == bos).all()
    assert not (rows.tokens[:, 1:] == bos).any()
    assert (rows.lengths == CTX).all()
    stream = _stream(docs, tokenizer)
    kept = rows.tokens[:, 1:].flatten().tolist()
    assert kept == stream[: len(kept)]
    assert 0 <= len(stream) - len(kept) < CTX - 1  # only the final partial row is dropped
    assert rows.n_docs == len(docs) and rows.source == "<documents>"


def test_without_bos_rows_are_the_bare_stream(docs, tokenizer) -> None:
    rows = tokenize_rows(docs, tokenizer, TokenizeConfig(ctx_len=CTX, bos=False))
    assert rows.tokens.flatten().tolist() == _stream(docs, tokenizer)[: rows.tokens.numel()]


def test_a_bos_already_in_the_text_is_not_doubled(tokenizer) -> None:
    rows = tokenize_rows(["<s> w5 w6 w7", "<s><s> w8"], tokenizer, TokenizeConfig(ctx_len=4, mode="pad"))
    assert rows.tokens.tolist() == [[1, 9, 10, 11], [1, 12, 3, 3]]
    assert rows.lengths.tolist() == [4, 2]


def test_chat_rendering_with_a_bos_writing_template_gives_one_bos(tokenizer) -> None:
    tokenizer.chat_template = "{{ bos_token }}" + PLAIN_CHAT_TEMPLATE
    chats = [
        [{"role": "user", "content": f"w{i} w{i + 1}"}, {"role": "assistant", "content": "w9"}]
        for i in range(20)
    ]
    rows = tokenize_rows(chats, tokenizer, TokenizeConfig(ctx_len=8))
    assert ((rows.tokens == tokenizer.bos_token_id).sum(dim=1) == 1).all()
    assert (rows.tokens[:, 0] == tokenizer.bos_token_id).all()


def test_base_tokenizer_gets_the_plain_template(tokenizer) -> None:
    tokenizer.chat_template = None
    rows = tokenize_rows(
        [[{"role": "user", "content": "w5"}]], tokenizer, TokenizeConfig(ctx_len=8, mode="pad")
    )
    assert tokenizer.chat_template == PLAIN_CHAT_TEMPLATE
    # "User: w5\n": "User:" is unknown to the WordLevel vocabulary (id 0), then w5 (id 9).
    assert rows.tokens[0, : rows.lengths[0]].tolist() == [1, 0, 9]


def test_pad_mode_is_one_document_per_row(docs, tokenizer) -> None:
    rows = tokenize_rows(docs, tokenizer, TokenizeConfig(ctx_len=CTX, mode="pad"))
    assert rows.tokens.shape == (len(docs), CTX)
    for doc, row, length in zip(docs, rows.tokens, rows.lengths, strict=True):
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"][: CTX - 1]
        assert length == len(ids) + 1
        assert row[:length].tolist() == [tokenizer.bos_token_id, *ids]
        assert (row[length:] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("mode", ["pack", "pad"])
def test_streaming_yields_the_same_rows_as_all_at_once(docs, tokenizer, mode) -> None:
    cfg = TokenizeConfig(ctx_len=CTX, mode=mode, batch_rows=3)
    batches = list(iter_token_rows(docs, tokenizer, cfg))
    whole = tokenize_rows(docs, tokenizer, cfg)
    assert all(len(b.tokens) == 3 for b in batches[:-1]) and 1 <= len(batches[-1].tokens) <= 3
    assert torch.equal(torch.cat([b.tokens for b in batches]), whole.tokens)
    assert torch.equal(torch.cat([b.lengths for b in batches]), whole.lengths)
    assert [b.n_docs for b in batches] == sorted(b.n_docs for b in batches)
    assert batches[-1].n_docs == whole.n_docs
    assert torch.equal(tokenize_rows(docs, tokenizer, cfg).tokens, whole.tokens)  # deterministic


def test_budgets_take_a_prefix_and_read_only_what_they_need(docs, tokenizer, caplog) -> None:
    cfg = TokenizeConfig(ctx_len=CTX)
    whole = tokenize_rows(docs, tokenizer, cfg)
    first = tokenize_rows(docs, tokenizer, cfg, n_rows=5)
    assert torch.equal(first.tokens, whole.tokens[:5]) and first.n_docs < whole.n_docs
    assert len(tokenize_rows(docs, tokenizer, cfg, n_tokens=2 * CTX + 1).tokens) == 3
    with caplog.at_level(logging.WARNING):
        assert len(tokenize_rows(docs, tokenizer, cfg, n_rows=10_000).tokens) == len(whole.tokens)
    assert "ran out" in caplog.text
    with pytest.raises(ValueError, match="not both"):
        tokenize_rows(docs, tokenizer, cfg, n_rows=1, n_tokens=16)
    with pytest.raises(ValueError, match="no rows"):
        tokenize_rows(["w5"], tokenizer, cfg)


def test_named_sets_tokenise_from_the_registry(tokenizer) -> None:
    harmful = tokenize_rows("harmful", tokenizer, TokenizeConfig(ctx_len=32, mode="pad"), n_rows=4)
    assert harmful.tokens.shape == (4, 32) and harmful.source == "harmful" and harmful.n_docs == 4
    chat = tokenize_rows("chat", tokenizer, TokenizeConfig(ctx_len=64), n_rows=8)
    assert chat.tokens.shape == (8, 64) and (chat.tokens[:, 0] == tokenizer.bos_token_id).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ctx_len": 1}, "ctx_len must be >= 2"),
        ({"ctx_len": 8, "mode": "stack"}, "mode='stack'; expected one of"),
        ({"ctx_len": 8, "batch_rows": 0}, "batch_rows must be >= 1"),
    ],
)
def test_config_validation(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        TokenizeConfig(**kwargs)
