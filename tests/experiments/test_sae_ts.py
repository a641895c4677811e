"""`python -m sae_interp.experiments.sae_ts --small` end to end (tiny model): every promised file,
and a second run that reuses the cached SAE and effect shards instead of measuring again."""

from __future__ import annotations

import json

import pytest

from sae_interp.experiments import sae_ts

OUTPUTS = (
    "config.json",
    "summary.json",
    "adapter/adapter.safetensors",
    "adapter/adapter.json",
    "approximator.json",
    "approximator.md",
    "sweep.json",
    "sweep.md",
    "sweep.png",
)


def test_small_run_writes_everything_and_resumes(tiny_llama_dir, tmp_path, capsys) -> None:
    argv = ["--small", "--model", str(tiny_llama_dir), "--layer", "1"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert sae_ts.main(argv) == 0
    assert "approximator held-out cosine" in capsys.readouterr().out
    out = tmp_path / "out"
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["effects"]["vectors"] == 24 + 8
    assert set(summary["approximator"]) == {"adapter", "mean_effect", "sae_encoding"}
    sweep = json.loads((out / "sweep.json").read_text())
    assert {r["method"] for r in sweep["rows"]} == {"none", "sae_ts", "caa", "decoder_row"}
    shards = sorted((tmp_path / "cache" / "effects").rglob("shard-*.safetensors"))
    assert len(shards) == 4
    stamps = [p.stat().st_mtime_ns for p in shards]

    assert sae_ts.main(argv) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["effects"]["vectors"] == 0
    assert [p.stat().st_mtime_ns for p in shards] == stamps
    assert again["approximator"] == summary["approximator"]


def test_bad_config_is_a_clear_error(capsys) -> None:
    with pytest.raises(SystemExit):
        sae_ts.main(["--set", "behaviours=['nope']"])
    assert "unknown ['nope']" in capsys.readouterr().err
