"""Delphi interop: read the real Delphi 0.1.3 cache fixture, and export ours in Delphi's layout."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open

from sae_interp.cache import FeatureDataset, LoaderConfig, export_delphi, open_cache

DELPHI_HP = "model.layers.1"


def test_delphi_fixture_counts_match_its_firing_counts(interop_dir):
    index = open_cache(interop_dir / "delphi_cache")
    assert index.kind == "delphi" and index.model == "tiny_llama"
    assert (index.n_rows, index.ctx_len, index.keep_bos) == (512, 64, True)
    assert index.hookpoints[DELPHI_HP].splits == [(0, 64), (64, 128), (128, 192), (192, 256)]
    expected = torch.load(interop_dir / "delphi_cache/log/hookpoint_firing_counts.pt")[DELPHI_HP]
    assert torch.equal(index.statistics(DELPHI_HP).count, expected)


def test_delphi_fixture_records(interop_dir):
    counts = torch.load(interop_dir / "delphi_cache/log/hookpoint_firing_counts.pt")[DELPHI_HP]
    latent = int(counts.argmax())
    ds = FeatureDataset(interop_dir / "delphi_cache", LoaderConfig(n_train=20, n_test=20), [latent, 1])
    (rec,) = list(ds)
    assert rec.latent == latent and rec.statistics.count == int(counts[latent])
    assert [s.latent for s in ds.skipped] == [1]  # latent 1 never fires in the fixture
    with safe_open(str(interop_dir / "delphi_cache/latents/model.layers.1/0_63.safetensors"), "pt") as f:
        tokens = f.get_tensor("tokens")
    for ex in rec.train + rec.test:
        assert torch.equal(ex.tokens, tokens[ex.row, ex.start : ex.start + 32])
        assert ex.activations.max() > 0


def test_export_has_delphi_names_dtypes_and_round_trips(tmp_path, tiny_cache):
    files = export_delphi(tiny_cache, tmp_path / "delphi")
    folder = tmp_path / "delphi/latents/blocks.1.hook_resid_pre"
    assert sorted(p.name for p in files) == ["0_127.safetensors", "128_255.safetensors"]  # inclusive end
    ours = open_cache(tiny_cache)
    for path in files:
        with safe_open(str(path), "pt") as f:
            assert set(f.keys()) == {"locations", "activations", "tokens"}
            assert f.get_tensor("locations").dtype == torch.uint16
            assert f.get_tensor("activations").dtype == torch.float16
            assert torch.equal(f.get_tensor("tokens"), ours.tokens())
    config = json.loads((folder / "config.json").read_text())
    assert config["cache_ctx_len"] == 64 and config["n_splits"] == 2 and config["n_tokens"] == 128 * 64
    theirs = open_cache(tmp_path / "delphi")
    assert torch.equal(
        theirs.statistics("blocks.1.hook_resid_pre").count, ours.statistics("blocks.1.hook_resid_pre").count
    )
    cfg = LoaderConfig(min_examples=20, n_train=10, n_test=10)
    a = next(iter(FeatureDataset(tiny_cache, cfg, [24])))
    b = next(iter(FeatureDataset(tmp_path / "delphi", cfg, [24])))
    assert [(e.row, e.start, e.activations.tolist()) for e in a.train] == [
        (e.row, e.start, e.activations.tolist()) for e in b.train
    ]
