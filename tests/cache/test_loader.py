"""FeatureDataset / FeatureLoader on the tiny_llama cache: samplers, non-activating examples, errors."""

from __future__ import annotations

import asyncio
import logging
import shutil

import pytest
import torch

from sae_interp.cache import CacheError, FeatureDataset, FeatureLoader, LoaderConfig, latents_from_scores
from sae_interp.models import collect_resid

HOOKPOINT = "blocks.1.hook_resid_pre"
CFG = LoaderConfig(min_examples=20, n_train=10, n_test=10, n_quantiles=5, n_non_activating=12)


@pytest.fixture(scope="module")
def dense(tiny_model, tiny_sae, script) -> torch.Tensor:
    """[128, 64, 256] latents computed directly, float16-rounded as stored; BOS zeroed (not cached)."""
    with torch.no_grad():
        acts = tiny_sae.encode(collect_resid(tiny_model, 1, script.tokens(), batch_size=32)[1]).half().float()
    acts[:, 0] = 0
    return acts


@pytest.fixture(scope="module")
def records(tiny_cache):
    return list(FeatureDataset(tiny_cache, CFG, list(range(0, 256, 8))))


def test_examples_carry_the_cached_activations(records, dense, script):
    tokens = script.tokens()
    assert records
    for rec in records:
        for ex in rec.train + rec.test:
            window = slice(ex.start, ex.start + len(ex.tokens))
            assert torch.equal(ex.tokens, tokens[ex.row, window])
            assert torch.equal(ex.activations, dense[ex.row, window, rec.latent])
            assert ex.max_activation > 0 and len(ex.tokens) == 32


def test_windows_that_do_not_divide_the_row_end_short(tiny_cache, dense, script):
    """64-token rows in 24-token windows: [0, 24), [24, 48) and a short [48, 64)."""
    cfg = LoaderConfig(**{**CFG.__dict__, "example_ctx_len": 24, "n_non_activating": 40})
    tokens = script.tokens()
    lengths = set()
    for rec in FeatureDataset(tiny_cache, cfg, list(range(0, 256, 16))):
        for ex in rec.train + rec.test + rec.non_activating:
            assert ex.start in (0, 24, 48) and len(ex.tokens) == len(ex.activations) == min(24, 64 - ex.start)
            window = slice(ex.start, ex.start + len(ex.tokens))
            assert torch.equal(ex.tokens, tokens[ex.row, window])
            assert torch.equal(ex.activations, dense[ex.row, window, rec.latent])
            lengths.add(len(ex.tokens))
    assert lengths == {16, 24}


def test_train_and_test_are_disjoint_with_quantiles(records):
    for rec in records:
        train = {(e.row, e.start) for e in rec.train}
        test = {(e.row, e.start) for e in rec.test}
        assert len(train) == len(rec.train) == 10 and len(test) == len(rec.test) == 10
        assert not train & test
        assert sorted(e.quantile for e in rec.train) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        assert [e.quantile for e in rec.train] == sorted(e.quantile for e in rec.train)  # strongest first
        examples = rec.train + rec.test
        for a in examples:  # quantiles by rank: a stronger quantile never holds a weaker example
            for b in examples:
                if a.quantile < b.quantile:
                    assert a.max_activation >= b.max_activation


def test_non_activating_examples_are_zero_and_distinct(records, dense):
    for rec in records:
        windows = [(e.row, e.start) for e in rec.non_activating]
        free = 128 * 2 - rec.n_examples  # windows where the latent never fires
        assert len(windows) == min(12, free) == len(set(windows))
        for ex in rec.non_activating:
            assert ex.kind == "random" and ex.quantile is None
            assert not dense[ex.row, ex.start : ex.start + 32, rec.latent].any()


def test_statistics_and_decode(records, dense, tiny_model):
    rec = records[0]
    column = dense[..., rec.latent]
    assert rec.statistics.count == int((column > 0).sum())
    assert rec.statistics.max == pytest.approx(float(column.max()))
    assert rec.statistics.frequency == pytest.approx(rec.statistics.count / (128 * 63))
    texts = rec.decode(tiny_model.tokenizer)
    assert len(texts["train"]) == 10 and all(len(t) == 32 for t in texts["train"])
    assert texts["train"][0][1] == tiny_model.tokenizer.decode([int(rec.train[0].tokens[1])])


@pytest.mark.parametrize("sampler", ["top", "random", "mix"])
def test_other_train_samplers(tiny_cache, sampler):
    cfg = LoaderConfig(**{**CFG.__dict__, "train_sampler": sampler})
    rec = next(iter(FeatureDataset(tiny_cache, cfg, [24])))
    assert not {(e.row, e.start) for e in rec.train} & {(e.row, e.start) for e in rec.test}
    if sampler == "top":
        strongest = sorted((e.max_activation for e in rec.train + rec.test), reverse=True)
        assert [e.max_activation for e in rec.train] == strongest[:10]


def test_same_seed_same_records_other_seed_differs(tiny_cache, records):
    again = list(FeatureDataset(tiny_cache, CFG, list(range(0, 256, 8))))
    assert [[(e.row, e.start) for e in r.train + r.non_activating] for r in again] == [
        [(e.row, e.start) for e in r.train + r.non_activating] for r in records
    ]
    other = list(FeatureDataset(tiny_cache, LoaderConfig(**{**CFG.__dict__, "seed": 5}), [records[0].latent]))
    assert [(e.row, e.start) for e in other[0].train] != [(e.row, e.start) for e in records[0].train]


def test_too_few_examples_are_reported(tiny_cache, caplog):
    ds = FeatureDataset(tiny_cache, LoaderConfig(min_examples=10_000), [1, 2, 3])
    with caplog.at_level(logging.WARNING):
        assert list(ds) == []
    assert [(s.latent, s.reason) for s in ds.skipped] == [(i, "fewer than 10000 examples") for i in (1, 2, 3)]
    assert all(s.n_examples > 0 for s in ds.skipped)
    assert "3 latents skipped" in caplog.text


def test_neighbours_follow_decoder_similarity(tiny_cache, tiny_sae, dense, records):
    target, near, nearer = (r.latent for r in records[:3])
    sae = type(tiny_sae)(tiny_sae.cfg)
    sae.load_state_dict(tiny_sae.state_dict())
    with torch.no_grad():  # constructed: `nearer` has the closest decoder row to `target`, then `near`
        sae.W_dec[nearer] = sae.W_dec[target] + 0.01 * torch.randn(64)
        sae.W_dec[near] = sae.W_dec[target] + 0.05 * torch.randn(64)
    cfg = LoaderConfig(**{**CFG.__dict__, "non_activating_source": "neighbours", "n_neighbours": 2})
    rec = next(iter(FeatureDataset(tiny_cache, cfg, [target], saes={HOOKPOINT: sae})))
    assert rec.neighbours == [nearer, near]
    from_neighbours = [e for e in rec.non_activating if e.kind == "neighbour"]
    assert from_neighbours and len(rec.non_activating) == 12
    for ex in from_neighbours:
        window = slice(ex.start, ex.start + 32)
        assert dense[ex.row, window, ex.neighbour].any()
        assert not dense[ex.row, window, target].any()


def test_async_loader_matches_sync(tiny_cache, records):
    async def collect():
        return [r async for r in FeatureLoader(FeatureDataset(tiny_cache, CFG, list(range(0, 256, 8))))]

    got = asyncio.run(collect())
    assert [(r.latent, [(e.row, e.start) for e in r.train]) for r in got] == [
        (r.latent, [(e.row, e.start) for e in r.train]) for r in records
    ]


def test_corrupt_missing_and_foreign_parts_name_the_file(tmp_path, tiny_cache):
    copy = tmp_path / "c"
    shutil.copytree(tiny_cache, copy)
    part = next((copy / "latents").rglob("0_128/part-00003.safetensors"))
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(CacheError, match=r"part-00003.safetensors: not a readable"):
        list(FeatureDataset(copy, CFG, [0]))
    part.unlink()
    with pytest.raises(CacheError, match=r"part-00003.safetensors: part file is missing"):
        list(FeatureDataset(copy, CFG, [0]))
    with pytest.raises(CacheError, match=r"expected 'gpt2'"):
        FeatureDataset(tiny_cache, CFG, [0], model="gpt2")
    with pytest.raises(ValueError, match=r"outside 0..255"):
        FeatureDataset(tiny_cache, CFG, [256])


def test_latents_from_score_table(tmp_path):
    table = tmp_path / "latents.csv"
    table.write_text("latent,cosine,rank\n7,0.1,3\n2,0.9,1\n5,0.5,2\n")
    assert latents_from_scores(table, 2) == [2, 5]
    assert latents_from_scores(table, 3, column="cosine") == [2, 5, 7]
    with pytest.raises(ValueError, match="no column 'score'"):
        latents_from_scores(table, 2, column="score")
