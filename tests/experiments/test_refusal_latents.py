"""The main job end to end on gemma with --small: every promised file, and a second run recomputes nothing."""

from __future__ import annotations

import json

import pytest

from sae_interp.experiments.refusal_latents import main
from sae_interp.results import iter_latent_results


@pytest.mark.slow
def test_small_run_writes_every_file_and_resumes(tmp_path, capsys):
    argv = ["--small", "--model", "gemma-3-270m", "--out-dir", str(tmp_path), "--run-name", "r"]
    assert main(argv) == 0
    run = tmp_path / "r"
    for name in ("config.json", "summary.json", "index.html", "run.html", "refusal/report.json",
                 "refusal/generations.json", "refusal/directions.pt", "refusal/latents.csv"):  # fmt: skip
        assert (run / name).is_file(), name
    report = json.loads((run / "refusal/report.json").read_text())
    assert report["schema_version"] == 1 and report["model"]["n_layers"] == 18
    assert report["chosen_layer"] in [c["layer"] for c in report["candidates"]]
    assert set(report["refusal_rates_test"]) == {"harmful", "harmless", "harmful_ablated", "harmless_actadd"}
    assert "base model" in report["base_model_note"]  # gemma has no chat template: said plainly
    assert report["sae"]["layer"] == report["chosen_layer"] and report["sae"]["d_sae"] == 256
    ranked = [a["latent"] for a in report["aligned_latents"]]
    table = (run / "refusal/latents.csv").read_text().splitlines()
    assert table[0] == "latent,cosine,mean_diff,attribution,rank" and len(table) == 257
    assert all(a["attribution"] is not None for a in report["aligned_latents"])
    assert [int(line.split(",")[0]) for line in table[1:3]] == ranked
    explained = report["explanations"]
    results = iter_latent_results(run)
    assert explained["done"] + explained["failed"] + len(explained["too_few_examples"]) == 2
    for result in results:
        assert result.latent in ranked and result.refusal is not None
        assert set(result.scores) == {"detection", "embedding"} and result.explanation.text
        assert (run / "latents" / result.hookpoint / f"{result.latent}.html").is_file()
    assert "explanations:" in capsys.readouterr().out
    stamps = {p: p.stat().st_mtime_ns for p in (run / "latents").rglob("*.json")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (run / "latents").rglob("*.json")} == stamps  # reused
    again = json.loads((run / "refusal/report.json").read_text())
    assert again["explanations"]["reused"] == len(results) and again["explanations"]["done"] == 0
    # another explainer config must not silently reuse these explanations
    assert main([*argv, "--set", "latents.explain.explainer.threshold=0.5"]) == 2
    assert "another config" in capsys.readouterr().err


def test_bad_config_is_one_clear_cli_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--set", "n_train=0", "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "refusal_latents.n_train must be > 0" in capsys.readouterr().err
