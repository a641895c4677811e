"""The main job end to end on gemma with --small: every promised file, and a second run recomputes nothing."""

from __future__ import annotations

import json

import pytest

from sae_interp.experiments.refusal_latents import main


@pytest.mark.slow
def test_small_run_writes_every_file_and_resumes(tmp_path, capsys):
    argv = ["--small", "--model", "gemma-3-270m", "--out-dir", str(tmp_path), "--run-name", "r"]
    assert main(argv) == 0
    run = tmp_path / "r"
    for name in ("config.json", "refusal/report.json", "refusal/generations.json", "refusal/directions.pt"):
        assert (run / name).is_file(), name
    report = json.loads((run / "refusal/report.json").read_text())
    assert report["schema_version"] == 1 and report["model"]["n_layers"] == 18
    assert report["chosen_layer"] in [c["layer"] for c in report["candidates"]]
    assert set(report["refusal_rates_test"]) == {"harmful", "harmless", "harmful_ablated", "harmless_actadd"}
    assert "base model" in report["base_model_note"]  # gemma has no chat template: said plainly
    assert "not built yet" in capsys.readouterr().out
    stamp = (run / "refusal/report.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (run / "refusal/report.json").stat().st_mtime_ns == stamp  # reused, not recomputed


def test_bad_config_is_one_clear_cli_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--set", "n_train=0", "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "refusal_latents.n_train must be > 0" in capsys.readouterr().err
