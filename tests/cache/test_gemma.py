"""FeatureCache on the real gemma-3-270m with a small random TopK SAE: every stored value is exact."""

from __future__ import annotations

import torch

from sae_interp.cache import CacheConfig, FeatureCache, FeatureDataset, LoaderConfig, open_cache
from sae_interp.data import TokenizeConfig, tokenize_rows
from sae_interp.models import collect_resid
from sae_interp.sae import SAEConfig, SAEMetadata, build_sae

LAYER = 6


def test_gemma_cache_matches_direct_encode(tmp_path, gemma):
    torch.manual_seed(0)
    sae = build_sae(
        SAEConfig(d_in=gemma.spec.d_model, d_sae=512, k=16, metadata=SAEMetadata.for_layer(LAYER))
    )
    rows = tokenize_rows("web", gemma.tokenizer, TokenizeConfig(ctx_len=64), n_rows=8)
    hp = gemma.spec.hook_name(LAYER)
    cfg = CacheConfig(rows_per_part=3, n_splits=3, batch_size=4, activation_dtype="float32")
    FeatureCache(gemma, {hp: sae}, cfg).run(rows.tokens, tmp_path / "c", data_source=rows.source)

    with torch.no_grad():
        dense = sae.encode(collect_resid(gemma, LAYER, rows.tokens, batch_size=8)[LAYER])
    dense[:, 0] = 0
    index = open_cache(tmp_path / "c")
    assert index.manifest["provenance"] == gemma.spec.provenance and index.manifest["data_source"] == "web"
    locs, vals = [], []
    for split in index.hookpoints[hp].splits:
        loc, val = index.read_split(hp, split)
        locs.append(loc + torch.tensor([0, 0, split[0]]))
        vals.append(val)
    loc, val = torch.cat(locs), torch.cat(vals)
    assert len(loc) == int((dense != 0).sum())  # counts match the dense encode's nonzeros
    assert torch.equal(torch.bincount(loc[:, 2], minlength=512), (dense != 0).sum((0, 1)))
    sample = torch.randperm(len(loc))[:200]
    r, p, lat = loc[sample].T
    torch.testing.assert_close(val[sample], dense[r, p, lat], rtol=1e-4, atol=1e-5)
    # batches of 4 vs 8 rows give float noise only, never a different set of active latents
    assert torch.equal(index.statistics(hp).count, (dense != 0).sum((0, 1)))

    latent = int(index.statistics(hp).count.argmax())
    rec = next(
        iter(FeatureDataset(tmp_path / "c", LoaderConfig(min_examples=2, n_train=2, n_test=2), [latent]))
    )
    assert rec.train[0].text(gemma.tokenizer)
