"""The train_sae CLI end to end on gemma-3-270m with a tiny config: SAE + eval JSON that load back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sae_interp.config import ConfigError, apply_overrides
from sae_interp.experiments.train_sae import TrainSAERunConfig, main
from sae_interp.sae.io import load_sae


@pytest.mark.slow  # loads gemma, stores ~1k tokens, trains, runs 3 full forwards: ~30 s idle
def test_cli_trains_saves_and_evaluates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        'data = "web"\nctx_len = 32\nn_eval_rows = 2\nbatch_size = 128\nepochs = 2\n'
        f'store_dir = "{tmp_path / "store"}"\neval_batch_size = 2\n'
    )
    argv = ["--config", str(config), "--model", "gemma-3-270m", "--layer", "6", "--d-sae", "256"]
    argv += ["--k", "8", "--n-tokens", "1000", "--out", str(tmp_path / "run"), "--set", "lr=2e-3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "L0 " in printed and "CE loss score" in printed
    run = tmp_path / "run"
    sae = load_sae(run / "sae")
    meta = sae.cfg.metadata
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 8 and sae.cfg.d_sae == 256
    assert (meta.layer, meta.hook_name, meta.module_path) == (6, "blocks.6.hook_resid_pre", "model.layers.6")
    assert meta.context_size == 32 and meta.dataset == "web" and meta.model_name == "gemma-3-270m"
    assert "transformers_version" in meta.provenance and len(meta.provenance) > 1
    record = json.loads((run / "core_eval_results.json").read_text())
    assert record["eval_type_id"] == "core" and record["sae_cfg_dict"]["metadata"]["layer"] == 6
    score = record["eval_result_metrics"]["model_performance_preservation"]["ce_loss_score"]
    assert 0.0 < score <= 1.0
    assert json.loads((run / "config.json").read_text())["lr"] == 2e-3
    store_manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert store_manifest["complete"] and store_manifest["layers"] == [6]
    x = torch.randn(3, 640)
    torch.testing.assert_close(sae(x).recon, load_sae(run / "sae")(x).recon)


def test_config_validation() -> None:
    cfg = TrainSAERunConfig()
    assert (cfg.model.name, cfg.layer, cfg.d_sae, cfg.k, cfg.arch) == (
        "qwen2.5-coder-0.5b-instruct",
        13,
        4096,
        32,
        "topk",
    )
    assert cfg.n_tokens == 50_000 and cfg.n_train_rows == 391  # ceil(50k / 128-token rows)
    with pytest.raises(ConfigError, match="arch"):
        apply_overrides(cfg, ['arch="gated"'])
    with pytest.raises(ConfigError, match="k=64"):
        apply_overrides(cfg, ["k=64", "d_sae=32"])
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(cfg, ["dsae=3"])
