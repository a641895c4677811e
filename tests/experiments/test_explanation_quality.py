"""The real-vs-shuffled control on a real cache of the tiny model, judged by the loopback oracle.

The SAE is built so that latent i fires exactly on one frequent token (at layer 0 the residual is
the token embedding): the oracle explains it as "the word <token>" and judges by that word, so real
explanations must score ~1 and shuffled ones ~0.5.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import torch
from safetensors.torch import load_file

from sae_interp.cache import CacheConfig, FeatureCache
from sae_interp.cache.config import LoaderConfig
from sae_interp.clients.factory import ClientConfig
from sae_interp.experiments.explanation_quality import (
    ExplanationQualityConfig,
    choose_latents,
    main,
    run_async,
    shuffled,
)
from sae_interp.results import ExplanationOut, LatentResult, iter_latent_results
from sae_interp.sae import SAEConfig, SAEMetadata, build_sae
from tests.clients.loopback import LoopbackServer, Respond
from tests.conftest import INTEROP
from tests.latents import make_latent
from tests.scorers.oracle import oracle

KEYWORD_TOKENS = (498, 726, 424, 373, 500, 117)
"""The most frequent tokens of the fixture rows (~50 occurrences each in 512 x 64 tokens)."""


@pytest.fixture(scope="module")
def keyword_cache(tmp_path_factory, tiny_model) -> Path:
    embeddings = tiny_model.hf.get_input_embeddings().weight.detach()[list(KEYWORD_TOKENS)]  # [n, d]
    sae = build_sae(
        SAEConfig(
            d_in=tiny_model.spec.d_model,
            d_sae=len(KEYWORD_TOKENS),
            architecture="standard",
            metadata=SAEMetadata.for_layer(0),
        )
    )
    with torch.no_grad():
        # (x . e_i) / |e_i|^2 is 1 on token i and near 0 on others (random 64-d embeddings)
        sae.W_enc.copy_((embeddings / embeddings.pow(2).sum(1, keepdim=True)).T)
        sae.b_enc.fill_(-0.5)
        sae.W_dec.copy_(embeddings / embeddings.norm(dim=1, keepdim=True))
        sae.b_dec.zero_()
    path = tmp_path_factory.mktemp("cache") / "keywords"
    rows = load_file(INTEROP / "tokens.safetensors")["tokens"]
    FeatureCache(tiny_model, {"blocks.0.hook_resid_pre": sae}, CacheConfig(batch_size=64)).run(
        rows, path, data_source="tokens"
    )
    return path


async def test_real_and_shuffled_runs_cover_the_same_latents(tmp_path, keyword_cache, tiny_model) -> None:
    async with LoopbackServer(default=Respond(oracle)) as server:
        cfg = ExplanationQualityConfig(
            cache=keyword_cache,
            n_latents=len(KEYWORD_TOKENS),
            loader=LoaderConfig(min_examples=10, n_train=5, n_test=5, n_non_activating=5, n_quantiles=2),
            client=ClientConfig(kind="openai", base_url=server.base_url, model="oracle", max_concurrency=8),
            out_dir=tmp_path / "quality",
        )
        report = await run_async(cfg)
        n_requests = len(server.requests)
        again = await run_async(cfg)  # resumes: both runs are complete, no request goes out
        assert len(server.requests) == n_requests
    _, chosen = choose_latents(keyword_cache, cfg)
    assert report["latents"] == again["latents"] and set(report["latents"]) <= set(chosen)
    real = iter_latent_results(tmp_path / "quality" / "real")
    control = iter_latent_results(tmp_path / "quality" / "shuffled")
    assert [r.key for r in real] == [r.key for r in control] and len(real) >= 2
    given = shuffled(real)
    for r, c in zip(real, control, strict=True):
        assert c.explanation == given[r.key]
        assert set(c.scores) == set(r.scores) == {"detection", "fuzzing", "embedding"}
    for name, row in report["scorers"].items():
        assert row["n"] == len(real), name
    # the oracle judges by the explained word: each latent's own word is right, another's is not
    words = [tiny_model.tokenizer.decode([t]).strip() for t in KEYWORD_TOKENS]
    assert [r.explanation.text for r in real] == [f"the word {w}" for w in words]
    for name in ("detection", "fuzzing"):
        row = report["scorers"][name]
        assert row["real_mean"] > 0.95 and row["shuffled_mean"] < 0.7 and row["real_wins"] == 1.0, name
    saved = orjson.loads((tmp_path / "quality" / "results.json").read_bytes())
    assert saved["scorers"] == report["scorers"]
    assert "| detection |" in (tmp_path / "quality" / "README.md").read_text()


def test_cli_errors_are_clear(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main([])
    assert "--cache is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cache", str(tmp_path / "nowhere")])
    assert "nowhere" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cache", str(tmp_path), "--n-latents", "1"])
    assert "n_latents must be >= 2" in capsys.readouterr().err


def test_shuffled_never_keeps_an_explanation() -> None:
    results = [
        LatentResult(
            **make_latent(i).model_dump(),
            explanation=ExplanationOut(text=f"e{i}", explainer="default", prompt_version="v", raw=""),
        )
        for i in range(4)
    ]
    given = shuffled(results)
    assert [given[r.key].text for r in results] == ["e1", "e2", "e3", "e0"]
