"""Splice: replacing the residual entering one decoder layer, with hooks always removed."""

from __future__ import annotations

import pytest
import torch

from sae_interp.models import Splice, intervene, load_model


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")


def _logits(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.hf(input_ids=tokens).logits


def _n_hooks(model) -> int:
    layers = model.hf.get_submodule(model.spec.layers_path)
    return sum(len(layer._forward_pre_hooks) for layer in layers)


def test_identity_splice_keeps_logits_and_zeros_change_them(tiny) -> None:
    tokens = torch.randint(0, tiny.hf.get_input_embeddings().weight.shape[0], (2, 9))
    clean = _logits(tiny, tokens)
    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x

    with intervene(tiny, [Splice(1, record)]):
        same = _logits(tiny, tokens)
    assert torch.equal(same, clean)
    assert seen and seen[0].shape == (2, 9, tiny.spec.d_model)
    with intervene(tiny, [Splice(1, torch.zeros_like)]):
        zeroed = _logits(tiny, tokens)
    assert (zeroed - clean).abs().max() > 1e-3

    # only positions after the change differ: splicing position 5 onwards leaves 0..4 untouched
    def tail(x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, 5:] = 0
        return out

    with intervene(tiny, [Splice(0, tail)]):
        partial = _logits(tiny, tokens)
    torch.testing.assert_close(partial[:, :5], clean[:, :5])
    assert (partial[:, 5:] - clean[:, 5:]).abs().max() > 1e-3
    assert _n_hooks(tiny) == 0


def test_splice_errors_and_cleanup(tiny) -> None:
    tokens = torch.randint(0, 10, (1, 4))
    with pytest.raises(ValueError, match="out of range"), intervene(tiny, [Splice(5, lambda x: x)]):
        pass
    with (
        pytest.raises(ValueError, match="Splice fn returned shape"),
        intervene(tiny, [Splice(0, lambda x: x[:, :1])]),
    ):
        _logits(tiny, tokens)
    assert _n_hooks(tiny) == 0
