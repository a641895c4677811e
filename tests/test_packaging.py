"""Packaging: the optional extras resolve against the package index, and vllm is never imported eagerly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_importing_every_cpu_module_does_not_import_vllm():
    code = (
        "import importlib, pkgutil, sys, sae_interp\n"
        "for m in pkgutil.walk_packages(sae_interp.__path__, 'sae_interp.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'vllm'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("extra", ["vllm", "dev"])
def test_extra_resolves_against_the_package_index(extra, tmp_path):
    """`pip install '.[extra]'` must be installable; show pip's own message when it is not.

    vLLM pins torch and caps transformers (<5.21 for 0.33): a floor of ours above its cap would
    make the extra unresolvable, which is what this test guards.
    """
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    done = subprocess.run(
        [*cmd, "--report", str(report), f".[{extra}]"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"pip could not resolve .[{extra}]:\n{done.stderr[-4000:]}"
    installed = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    expected = {"vllm": {"vllm", "transformers"}, "dev": {"pytest", "pytest-asyncio"}}[extra]
    assert expected <= installed
