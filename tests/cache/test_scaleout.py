"""Two processes under torchrun (gloo, CPU) write the same cache as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from sae_interp.cache import open_cache


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, tiny_cache, tiny_sae_dir, script):
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [script.__file__, "--sae", str(tiny_sae_dir), "--out", str(out)]
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.glob("manifest*.json")) == [
        "manifest.json",
        "manifest.rank-0.json",
        "manifest.rank-1.json",
    ]
    two, one = open_cache(out), open_cache(tiny_cache)
    assert [p["rows"] for p in two.manifest["parts"]] == [p["rows"] for p in one.manifest["parts"]]
    for split, files in one.hookpoints[script.HOOKPOINT].files.items():
        for mine, theirs in zip(files, two.hookpoints[script.HOOKPOINT].files[split], strict=True):
            with safe_open(str(mine), "pt") as a, safe_open(str(theirs), "pt") as b:
                assert torch.equal(a.get_tensor("locations"), b.get_tensor("locations")), theirs
                torch.testing.assert_close(a.get_tensor("activations"), b.get_tensor("activations"))
    hp = script.HOOKPOINT
    assert torch.equal(two.statistics(hp).count, one.statistics(hp).count)
