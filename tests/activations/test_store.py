"""Activation store: round trip against read_resid, reuse, mismatch errors, kill-and-resume, epochs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from sae_interp.activations import (
    MANIFEST_FILENAME,
    ActivationStore,
    StoreConfig,
    StoreMismatchError,
    build_store,
    iter_model_chunks,
)
from sae_interp.models import collect_resid, load_model


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")


def _tokens(model, n_rows: int, ctx: int, seed: int = 0) -> torch.Tensor:
    vocab = model.hf.get_input_embeddings().weight.shape[0]
    tokens = torch.randint(1, vocab, (n_rows, ctx), generator=torch.Generator().manual_seed(seed))
    tokens[:, 0] = model.tokenizer.bos_token_id or 0
    return tokens


def test_round_trip_matches_read_resid_and_excludes_bos(tiny, tmp_path: Path) -> None:
    tokens = _tokens(tiny, 10, 12)
    cfg = StoreConfig(layers=(0, 1), rows_per_part=3, batch_size=2)
    store = build_store(tiny, tokens, tmp_path / "store", cfg, source="random")
    assert store.complete and store.first_position == 1 and store.layers == [0, 1]
    assert [(p.row_start, p.row_end) for p in store.parts] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert torch.equal(store.tokens(), tokens)
    manifest = json.loads((tmp_path / "store" / MANIFEST_FILENAME).read_text())
    assert manifest["hook_names"] == {"0": "blocks.0.hook_resid_pre", "1": "blocks.1.hook_resid_pre"}
    assert manifest["transformers_version"] and manifest["model"] == tiny.spec.name
    fresh = collect_resid(tiny, [0, 1], tokens[[2, 4, 9]], batch_size=3)
    for layer in (0, 1):
        stored = torch.cat([store.load_rows(layer, r, r + 1) for r in (2, 4, 9)])
        assert stored.shape == (3, 11, tiny.spec.d_model)  # position 0 left out
        torch.testing.assert_close(stored, fresh[layer][:, 1:], rtol=1e-5, atol=1e-5)
    rows = [acts for _, acts in store.iter_parts(1)]
    torch.testing.assert_close(torch.cat(rows), store.load_rows(1, 0, 10))


def test_keep_bos_and_half_precision(tiny, tmp_path: Path) -> None:
    tokens = _tokens(tiny, 4, 8)
    store = build_store(
        tiny, tokens, tmp_path / "s", StoreConfig(layers=(1,), keep_bos=True, dtype="float16")
    )
    acts = store.load_rows(1, 0, 4)
    assert acts.dtype == torch.float16 and acts.shape[1] == 8 and store.first_position == 0
    fresh = collect_resid(tiny, 1, tokens)[1]
    torch.testing.assert_close(acts.float(), fresh, rtol=2e-3, atol=2e-3)


def test_finished_store_is_reused_and_mismatch_is_an_error(tiny, tmp_path: Path) -> None:
    tokens = _tokens(tiny, 6, 8)
    folder = tmp_path / "store"
    build_store(tiny, tokens, folder, StoreConfig(layers=(1,), rows_per_part=2))
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*.safetensors")}
    again = build_store(tiny, tokens, folder, StoreConfig(layers=(1,), rows_per_part=4))
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.safetensors")} == stamps
    assert len(again.parts) == 3
    for cfg, toks, what in [
        (StoreConfig(layers=(0,)), tokens, "layers"),
        (StoreConfig(layers=(1,), dtype="bfloat16"), tokens, "dtype"),
        (StoreConfig(layers=(1,), keep_bos=True), tokens, "first_position"),
        (StoreConfig(layers=(1,)), _tokens(tiny, 6, 8, seed=1), "tokens_sha256"),
    ]:
        with pytest.raises(StoreMismatchError, match=what):
            build_store(tiny, toks, folder, cfg)


def test_epochs_cover_every_stored_token_once(tiny, tmp_path: Path) -> None:
    tokens = _tokens(tiny, 9, 8)
    lengths = torch.tensor([8, 8, 5, 8, 8, 3, 8, 8, 8])  # two padded rows
    store = build_store(
        tiny, tokens, tmp_path / "s", StoreConfig(layers=(1,), rows_per_part=2), lengths=lengths
    )
    assert store.n_tokens() == int((lengths - 1).sum())
    expected = torch.cat(list(iter_model_chunks(tiny, tokens, 1, lengths=lengths, batch_size=4)))
    key = torch.randn(tiny.spec.d_model, generator=torch.Generator().manual_seed(0))
    for seed in (0, 1):
        got = torch.cat(list(store.batches(1, batch_size=5, epochs=1, seed=seed, drop_last=False)))
        assert got.shape == expected.shape  # the same multiset of rows, in another order
        torch.testing.assert_close(
            got[(got @ key).argsort()], expected[(expected @ key).argsort()], rtol=1e-5, atol=1e-5
        )
    two = list(store.batches(1, batch_size=5, epochs=2))
    assert len(two) >= 2 * (store.n_tokens() // 5 - 1) and all(b.shape == (5, tiny.spec.d_model) for b in two)


_WRITER = textwrap.dedent(
    """
    import sys, torch
    from sae_interp.activations import StoreConfig, build_store
    from sae_interp.models import load_model
    model = load_model(sys.argv[1], dtype=torch.float32, device="cpu")
    vocab = model.hf.get_input_embeddings().weight.shape[0]
    tokens = torch.randint(1, vocab, (60, 16), generator=torch.Generator().manual_seed(7))
    cfg = StoreConfig(layers=(0, 1), rows_per_part=2, batch_size=2)
    build_store(model, tokens, sys.argv[2], cfg, progress=False)
    """
)


@pytest.mark.slow  # a subprocess that imports torch and transformers: ~20-60 s on a loaded 2-core machine
def test_killed_writer_resumes_to_identical_parts(tiny, tiny_llama_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tiny_llama_dir), str(folder)])
    manifest = folder / MANIFEST_FILENAME
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.is_file() and len(ActivationStore(folder).parts) >= 3:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it could be killed"
    killed = ActivationStore(folder)
    assert not killed.complete and 3 <= len(killed.parts) < 30
    tokens = torch.randint(
        1,
        tiny.hf.get_input_embeddings().weight.shape[0],
        (60, 16),
        generator=torch.Generator().manual_seed(7),
    )
    cfg = StoreConfig(layers=(0, 1), rows_per_part=2, batch_size=2)
    resumed = build_store(tiny, tokens, folder, cfg, progress=False)
    reference = build_store(tiny, tokens, tmp_path / "reference", cfg, progress=False)
    assert resumed.complete and resumed.manifest["parts"] == reference.manifest["parts"]
    assert not list((folder / "parts").glob(".tmp-*"))
    for layer in (0, 1):
        for (part_a, a), (_, b) in zip(resumed.iter_parts(layer), reference.iter_parts(layer), strict=True):
            assert torch.equal(a, b), (layer, part_a)


def test_gemma_round_trip(gemma, tmp_path: Path) -> None:
    tokens = _tokens(gemma, 3, 10)
    store = build_store(
        gemma, tokens, tmp_path / "g", StoreConfig(layers=(3,), rows_per_part=2, batch_size=2)
    )
    fresh = collect_resid(gemma, 3, tokens, batch_size=3)[3][:, 1:]
    torch.testing.assert_close(store.load_rows(3, 0, 3), fresh, rtol=1e-4, atol=1e-3)
    assert store.manifest["provenance"] == gemma.spec.provenance
