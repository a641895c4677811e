"""dataset_transfer end to end on the tiny local Llama with --small: every promised file, then reuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sae_interp.experiments.dataset_transfer import main


def _argv(model_dirs: list[Path], tmp_path: Path) -> list[str]:
    argv = [
        "--small",
        "--models",
        *map(str, model_dirs),
        "--layer",
        "1",
        "--out-dir",
        str(tmp_path / "report"),
    ]
    return [*argv, "--set", f'sae_root="{tmp_path / "saes"}"', "--set", f'store_root="{tmp_path / "stores"}"']


@pytest.mark.slow  # trains two tiny SAEs and runs the three refusal evals: ~20 s idle
def test_small_study_writes_every_file_and_reuses_everything(tiny_llama_dir, tmp_path, capsys):
    argv = _argv([tiny_llama_dir], tmp_path)
    assert main(argv) == 0
    assert "chat-data SAE captures r" in capsys.readouterr().out
    report = tmp_path / "report"
    for name in ("README.md", "results.json", "config.json", "fidelity.png", "sparsity_curves.png"):
        assert (report / name).is_file(), name
    evals = sorted(report.glob("cells/*/*.json"))
    assert [f"{p.parent.name}/{p.name}" for p in evals] == [
        f"tiny_llama-{data}/{name}.json"
        for data in ("chat", "web")
        for name in ("latent_steering", "refusal_fidelity", "refusal_sparsity")
    ]
    for path in evals:
        record = json.loads(path.read_text())
        assert record["eval_type_id"] == path.stem and record["eval_config"]["layer"] == 1
    results = json.loads((report / "results.json").read_text())
    assert [(c["data"], c["train"]["tokens"]) for c in results["cells"]] == [("chat", 1984), ("web", 1984)]
    for cell in results["cells"]:
        assert -1 <= cell["recon_cosine"] <= 1 and -1 <= cell["max_latent_cosine"] <= 1
        assert cell["sparsity"]["ks"] == [1, 2, 4, 8, 16, 32, 64]
        assert Path(cell["core_eval_file"]).is_file() and "ablate_r" in cell["steering"]["refusal_score"]
    readme = (report / "README.md").read_text()
    assert "## Verdict" in readme and "0.849" in readme  # the seed's number stands beside ours
    stamps = {p: p.stat().st_mtime_ns for p in [*evals, *tmp_path.glob("saes/*/summary.json")]}
    assert main(argv) == 0  # everything cached: no SAE trained, no eval recomputed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_models_of_another_width_are_refused(tiny_llama_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    narrow = tmp_path / "narrow_llama"
    config = AutoConfig.from_pretrained(tiny_llama_dir)
    config.hidden_size, config.head_dim = 32, 8
    AutoModelForCausalLM.from_config(config).save_pretrained(narrow)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama_dir / name, narrow / name)
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="d_model 32 but the reference"):
        main(_argv([tiny_llama_dir, narrow], tmp_path))


def test_bad_config_is_one_clear_cli_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--datasets", "chat", "chat", "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "dataset_transfer.datasets" in capsys.readouterr().err
