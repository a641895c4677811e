"""pyright over the package: strict for clients/ and config.py, basic elsewhere (pyproject [tool.pyright])."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_pyright_reports_no_errors():
    pyright = shutil.which("pyright")
    if pyright is None:
        pytest.skip("pyright is not installed (it comes with the [dev] extra)")
    done = subprocess.run([pyright], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-5000:]
