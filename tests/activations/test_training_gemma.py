"""A short real training run: gemma-3-270m layer 6, streamed activations, TopK SAE, FVU falls markedly."""

from __future__ import annotations

import itertools

import pytest
import torch

from sae_interp.activations import ShuffleBuffer, iter_model_chunks
from sae_interp.data import TokenizeConfig, tokenize_rows
from sae_interp.sae import SAEConfig, build_sae, metrics
from sae_interp.sae.train import TrainConfig, train_sae


@pytest.mark.slow  # ~3.5k tokens of forward + 150 SAE steps: ~20 s idle, minutes on a loaded machine
def test_short_training_run_reduces_fvu(gemma) -> None:
    rows = tokenize_rows("chat", gemma.tokenizer, TokenizeConfig(ctx_len=64), n_rows=56)
    chunks = list(iter_model_chunks(gemma, rows.tokens[:48], 6, batch_size=8))
    held_out = torch.cat(list(iter_model_chunks(gemma, rows.tokens[48:], 6, batch_size=8)))
    assert sum(c.shape[0] for c in chunks) == 48 * 63  # position 0 left out
    sae = build_sae(SAEConfig(d_in=gemma.spec.d_model, d_sae=512, architecture="topk", k=16))
    buffer = ShuffleBuffer(batch_size=256, capacity=2048, seed=0, drop_last=True)
    batches = itertools.chain.from_iterable(buffer.batches(chunks) for _ in range(20))
    cfg = TrainConfig(total_steps=150, lr=2e-3, lr_warmup_steps=10, lr_decay="cosine", lr_end=2e-4)
    result = train_sae(sae, batches, cfg, progress=False)
    with torch.no_grad():
        out = sae(held_out)
    fvu_init, fvu_after = result.history[0].fvu, metrics.fvu(held_out, out.recon)
    assert result.steps == 150
    assert metrics.l0(out.acts) <= 16
    assert fvu_after < 0.5 * fvu_init, (fvu_init, fvu_after)
