"""load_model and read_resid on small architectures built locally, and the errors users meet."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from sae_interp.models import ModelNotFoundError, collect_resid, load_model, read_resid
from sae_interp.models.loading import default_dtype, find_decoder_layers
from sae_interp.models.templates import PLAIN_CHAT_TEMPLATE


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A random GPT-2 (3 layers, d 32): a second architecture with other layer names (transformer.h)."""
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    config = GPT2Config(
        vocab_size=1000, n_positions=64, n_embd=32, n_layer=3, n_head=4, bos_token_id=1, eos_token_id=2
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama_dir / name, folder)
    return folder


@pytest.mark.parametrize(
    ("fixture", "layers_path", "n_layers", "d_model"),
    [("tiny_llama_dir", "model.layers", 2, 64), ("tiny_gpt2_dir", "transformer.h", 3, 32)],
)
def test_spec_is_found_generically(request, fixture, layers_path, n_layers, d_model):
    model = load_model(request.getfixturevalue(fixture), dtype=torch.float32, device="cpu")
    assert (model.spec.layers_path, model.spec.n_layers, model.spec.d_model) == (
        layers_path,
        n_layers,
        d_model,
    )
    assert model.spec.hook_name(1) == "blocks.1.hook_resid_pre"
    assert model.tokenizer.padding_side == "left" and model.tokenizer.pad_token is not None


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gpt2_dir"])
def test_layer_reads_match_hidden_states(request, fixture):
    model = load_model(request.getfixturevalue(fixture), dtype=torch.float32, device="cpu")
    tokens = torch.randint(0, 900, (5, 12))
    every_layer = list(range(model.spec.n_layers))
    got = collect_resid(model, every_layer[::-1], tokens, batch_size=2)  # order of request must not matter
    with torch.no_grad():
        expected = model.hf(tokens, output_hidden_states=True).hidden_states
    for layer in every_layer:
        torch.testing.assert_close(got[layer], expected[layer], atol=1e-5, rtol=1e-5)


def test_read_resid_streams_batches_in_order_and_honours_the_mask(tiny_llama_dir):
    model = load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")
    tokens = torch.randint(0, 900, (5, 10))
    mask = torch.ones_like(tokens)
    mask[1, :4] = 0  # left padding on one row
    batches = list(read_resid(model, 1, tokens, batch_size=2, attention_mask=mask))
    assert [b.start for b in batches] == [0, 2, 4]
    assert [b.acts[1].shape[0] for b in batches] == [2, 2, 1]
    with torch.no_grad():
        expected = model.hf(tokens, attention_mask=mask, output_hidden_states=True).hidden_states[1]
    got = torch.cat([b.acts[1] for b in batches])
    torch.testing.assert_close(got[:, 4:], expected[:, 4:], atol=1e-5, rtol=1e-5)


def test_stopping_early_gives_the_same_values_as_the_full_forward(tiny_llama_dir):
    model = load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")
    tokens = torch.randint(0, 900, (3, 8))
    stopped = next(read_resid(model, 0, tokens, batch_size=3, stop=True)).acts[0]
    full = next(read_resid(model, 0, tokens, batch_size=3, stop=False)).acts[0]
    torch.testing.assert_close(stopped, full)


def test_model_without_chat_template_gets_the_plain_one(tiny_llama_dir):
    model = load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")
    assert model.spec.has_chat_template is False
    assert model.tokenizer.chat_template == PLAIN_CHAT_TEMPLATE
    text = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": "w5 w6"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "User: w5 w6\nAssistant:"


def test_bad_layer_and_bad_tokens_give_clear_errors(tiny_llama_dir):
    model = load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")
    with pytest.raises(ValueError, match=r"layer=2 is out of range .*\(0\.\.1\)"):
        next(read_resid(model, 2, torch.zeros(1, 4, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"tokens must be \[n_rows, seq\]"):
        next(read_resid(model, 0, torch.zeros(4, dtype=torch.long)))


def test_missing_paths_and_unreachable_hub_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="no such file or folder"):
        load_model(tmp_path / "nope.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"has no config\.json"):
        load_model(tmp_path / "empty")
    with pytest.raises(ModelNotFoundError, match=r"not an embedded model .*local path"):
        load_model("some-org/some-model-that-is-not-cached")


def test_find_decoder_layers_rejects_a_model_without_them():
    with pytest.raises(ValueError, match="cannot find the decoder layers"):
        find_decoder_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_default_dtype_is_float32_on_cpus_without_native_bf16(monkeypatch):
    from sae_interp.models import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    assert default_dtype("cpu") == torch.float32
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    assert default_dtype("cpu") == torch.bfloat16
    assert default_dtype("cuda") == torch.bfloat16
