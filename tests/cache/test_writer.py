"""FeatureCache on tiny_llama: exact contents, statistics, resume after SIGKILL, no-op re-run, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from sae_interp.cache import CacheConfig, CacheError, FeatureCache, open_cache
from sae_interp.models import collect_resid

HOOKPOINT = "blocks.1.hook_resid_pre"


def _all_entries(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, pos, absolute latent) [n, 3] and values [n] of every part, sorted."""
    index = open_cache(path)
    locs, vals = [], []
    for split in index.hookpoints[HOOKPOINT].splits:
        loc, val = index.read_split(HOOKPOINT, split)
        locs.append(loc + torch.tensor([0, 0, split[0]]))
        vals.append(val)
    loc, val = torch.cat(locs), torch.cat(vals)
    key = (loc[:, 0] * 10_000 + loc[:, 1]) * 10_000 + loc[:, 2]
    order = torch.argsort(key)
    return loc[order], val[order]


def _part_contents(path: Path) -> dict[str, tuple[dict, dict]]:
    """Every part's metadata and tensors (not raw bytes: safetensors writes metadata in hash order)."""
    out = {}
    for part in sorted((path / "latents").rglob("part-*.safetensors")):
        with safe_open(str(part), "pt") as f:
            out[str(part.relative_to(path))] = (f.metadata(), {k: f.get_tensor(k).tolist() for k in f.keys()})  # noqa: SIM118 (safe_open is not a dict)
    return out


def test_entries_equal_direct_encode(tiny_cache, tiny_model, tiny_sae, script):
    tokens = script.tokens()
    dense = tiny_sae.encode(collect_resid(tiny_model, 1, tokens, batch_size=16)[1])
    dense[:, 0] = 0  # BOS is excluded by default
    loc, val = _all_entries(tiny_cache)
    expected = dense.nonzero()
    assert torch.equal(loc, expected)
    torch.testing.assert_close(val, dense[loc[:, 0], loc[:, 1], loc[:, 2]].half().float())
    with safe_open(str(next((tiny_cache / "latents").rglob("part-00000.safetensors"))), "pt") as f:
        assert f.get_tensor("locations").dtype == torch.int32
        assert f.get_tensor("activations").dtype == torch.float16
        assert f.metadata()["model"].endswith("tiny_llama")


def test_statistics_match_entries(tiny_cache):
    index = open_cache(tiny_cache)
    stats = index.statistics(HOOKPOINT)
    loc, val = _all_entries(tiny_cache)
    assert torch.equal(stats.count, torch.bincount(loc[:, 2], minlength=256))
    assert stats.n_tokens == 128 * 63
    fired = stats.count > 0
    top = torch.zeros(256).scatter_reduce(0, loc[:, 2], val, "amax", include_self=False)
    torch.testing.assert_close(stats.max[fired], top[fired])
    assert torch.equal(stats.hist.sum(1), stats.count)
    assert stats.frequency.sum().item() == pytest.approx(len(val) / (128 * 63))


def test_manifest_and_tokens(tiny_cache, script):
    index = open_cache(tiny_cache)
    assert index.kind == "native" and index.n_rows == 128 and index.ctx_len == 64
    assert [p["rows"] for p in index.manifest["parts"]] == [[i, i + 16] for i in range(0, 128, 16)]
    assert index.manifest["hookpoints"][HOOKPOINT]["splits"] == [[0, 128], [128, 256]]
    assert torch.equal(index.tokens(), script.tokens())
    assert not list(tiny_cache.rglob(".tmp-*"))


def test_rerun_is_a_noop(tiny_cache, tiny_model, tiny_sae, script):
    before = {p: p.stat().st_mtime_ns for p in tiny_cache.rglob("*") if p.is_file()}
    result = FeatureCache(tiny_model, {HOOKPOINT: tiny_sae}, script.CFG).run(
        script.tokens(), tiny_cache, data_source="tokens.safetensors"
    )
    assert result.parts_written == 0 and result.complete
    assert {p: p.stat().st_mtime_ns for p in tiny_cache.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(
    tmp_path, tiny_cache, tiny_model, tiny_sae, tiny_sae_dir, script
):
    out = tmp_path / "killed"
    cmd = [sys.executable, script.__file__, "--sae", str(tiny_sae_dir), "--out", str(out), "--sleep", "0.4"]
    proc = subprocess.Popen([*cmd, "--threads", str(torch.get_num_threads())])
    try:
        deadline = time.monotonic() + 120
        while not _n_parts(out) >= 2:
            assert proc.poll() is None, "the cache run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    n_before = _n_parts(out)
    assert 2 <= n_before < 8, "kill the run mid-way"
    cache = FeatureCache(tiny_model, {HOOKPOINT: tiny_sae}, script.CFG)
    result = cache.run(script.tokens(), out, data_source="tokens.safetensors")
    assert result.parts_written == 8 - n_before
    assert _part_contents(out) == _part_contents(tiny_cache)
    assert open_cache(out).manifest["parts"] == open_cache(tiny_cache).manifest["parts"]


def _n_parts(path: Path) -> int:
    manifest = path / "manifest.json"
    return len(open_cache(path).manifest["parts"]) if manifest.is_file() else 0


def test_other_settings_in_same_folder_is_an_error(tiny_cache, tiny_model, tiny_sae, script):
    cfg = CacheConfig(rows_per_part=16, n_splits=4, batch_size=8)
    with pytest.raises(CacheError, match=r"other settings.*hookpoints"):
        FeatureCache(tiny_model, {HOOKPOINT: tiny_sae}, cfg).run(
            script.tokens(), tiny_cache, data_source="tokens.safetensors"
        )


def test_latent_subset_keep_bos_and_float32(tmp_path, tiny_model, tiny_sae, script):
    tokens = script.tokens()[:8]
    cfg = CacheConfig(rows_per_part=4, latents=(3, 200), keep_bos=True, activation_dtype="float32")
    FeatureCache(tiny_model, {HOOKPOINT: tiny_sae}, cfg).run(tokens, tmp_path / "c")
    dense = tiny_sae.encode(collect_resid(tiny_model, 1, tokens)[1])
    loc, val = _all_entries(tmp_path / "c")
    assert set(loc[:, 2].tolist()) <= {3, 200}
    expected = dense[..., [3, 200]].nonzero()
    expected[:, 2] = torch.tensor([3, 200])[expected[:, 2]]
    assert torch.equal(
        loc, expected[torch.argsort(expected[:, 0] * 10**8 + expected[:, 1] * 10**4 + expected[:, 2])]
    )
    assert torch.equal(val, dense[loc[:, 0], loc[:, 1], loc[:, 2]])  # float32: stored exactly


def test_float16_overflow_names_the_latent(tmp_path, tiny_model, tiny_sae, script):
    big = type(tiny_sae)(tiny_sae.cfg)
    big.load_state_dict(tiny_sae.state_dict())
    with torch.no_grad():
        big.W_enc[:, 7] *= 1e6
        big.b_enc[7] = 1e6
    with pytest.raises(ValueError, match=r'latent 7 has activation .*activation_dtype="float32"'):
        FeatureCache(tiny_model, {HOOKPOINT: big}, CacheConfig()).run(script.tokens()[:4], tmp_path / "c")
