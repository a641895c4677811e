"""The anchors' venv (`.anchors-venv/`): where benchmarks run Delphi next to our code.

Delphi pins its own torch and vllm, so it never shares the package's venv; each benchmark runs its
Delphi side as a driver script under `.anchors-venv/bin/python` and reads one JSON object back.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ANCHORS = Path(__file__).resolve().parents[1] / ".anchors-venv"
PYTHON = ANCHORS / "bin" / "python"
logger = logging.getLogger("bench.anchors")


def prepare_delphi(check: str, import_deps: Sequence[str] = ()) -> str | None:
    """Make `.anchors-venv` run the Python statement `check`; None when it can, else why not.

    eai-delphi is installed only when the venv lacks it altogether: the venv may be shared with
    other anchors (sae-lens), and a second resolution could replace its torch (vllm pins one). When
    it is there but `check` fails on a missing module, only `import_deps` are added.
    """
    python = str(PYTHON)
    try:
        if not PYTHON.exists():
            subprocess.run([sys.executable, "-m", "venv", str(ANCHORS)], check=True)
        if subprocess.run([python, "-c", "import delphi"], capture_output=True).returncode:
            logger.info("installing eai-delphi into %s (minutes; see REFERENCE section 9)", ANCHORS)
            subprocess.run([python, "-m", "pip", "install", "-q", "eai-delphi"], check=True)
        done = subprocess.run([python, "-c", check], capture_output=True, text=True)
        if done.returncode and "ModuleNotFoundError" in done.stderr and import_deps:
            logger.info("installing Delphi's import-time dependencies into %s", ANCHORS)
            subprocess.run([python, "-m", "pip", "install", "-q", *import_deps], check=True)
            done = subprocess.run([python, "-c", check], capture_output=True, text=True)
        if done.returncode:
            return f"eai-delphi does not import in {ANCHORS}: {done.stderr.strip().splitlines()[-1:]}"
    except (subprocess.CalledProcessError, OSError) as err:
        return f"could not prepare {ANCHORS}: {err}"
    return None
