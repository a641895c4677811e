"""`python -m sae_interp.cache`: help, a small run on tiny_llama, and the Delphi export."""

from __future__ import annotations

import subprocess
import sys

from sae_interp.cache import open_cache
from sae_interp.cache.__main__ import main


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "sae_interp.cache", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "export" in out.stdout


def test_run_then_export(tmp_path, tiny_llama_dir, tiny_sae_dir, capsys):
    data = tmp_path / "docs.txt"
    data.write_text("\n".join(" ".join(f"w{(i * 7 + j) % 990}" for j in range(50)) for i in range(40)))
    argv = ["run", "--model", str(tiny_llama_dir), "--sae", str(tiny_sae_dir), "--data", str(data)]
    argv += ["--n-tokens", "512", "--ctx-len", "32", "--out", str(tmp_path / "c"), "--device", "cpu"]
    assert main([*argv, "--latents", "1,2,3,24"]) == 0
    assert "complete" in capsys.readouterr().out
    index = open_cache(tmp_path / "c")
    assert index.n_rows == 16 and index.manifest["latents"] == [1, 2, 3, 24]
    assert main(["export", "--delphi", str(tmp_path / "d"), str(tmp_path / "c")]) == 0
    assert (tmp_path / "d/latents/blocks.1.hook_resid_pre/0_255.safetensors").is_file()
