"""The README's two set-up commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert first_block, "README.md must start with a fenced block holding the two commands"
    return [line for line in first_block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_the_two_commands():
    main_job, tests = _readme_commands()
    assert main_job.endswith("python -m sae_interp.experiments.refusal_latents")
    assert "pytest" in tests and "[embedded,dev,llamacpp]" in tests  # llamacpp: the `server` tests


def test_ci_runs_exactly_the_readme_test_command():
    """Set-up lines (installing Chromium for the browser tests) may come first; the command is last."""
    ci_lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci_lines[-1] == _readme_commands()[1]
    assert [line for line in ci_lines if "pytest" in line] == [ci_lines[-1]]
