"""`python -m sae_interp.dashboard RUN_DIR`: output, exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from sae_interp.dashboard.__main__ import main
from tests.dashboard.runs import write_run


def test_cli_renders_and_prints_the_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    write_run(tmp_path)
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "index.html")
    assert (tmp_path / "run.html").is_file()


@pytest.mark.parametrize("name", ["missing", "empty"])
def test_cli_bad_folder_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str):
    (tmp_path / "empty" / "latents").mkdir(parents=True)
    folder = tmp_path / name
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert str(folder) in err and "latents/<hookpoint>/<latent>.json" in err


def test_cli_invalid_latent_file_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "latents" / "hp" / "1.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(orjson.dumps({"schema_version": 999}))
    assert main([str(tmp_path)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_module_entry_point_exit_code(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "sae_interp.dashboard", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {tmp_path / 'nope'}: no such folder")


def test_dashboard_imports_no_model_code():
    """The dashboard must run where no model stack is installed: it reads files only."""
    code = (
        "import sys, sae_interp.dashboard.__main__; "
        "bad = [m for m in sys.modules if m.split('.')[:2] in "
        "[['sae_interp', p] for p in ('models', 'cache', 'clients', 'explainers', 'scorers', 'experiments')]"
        " or m in ('torch', 'transformers', 'nnsight')]; print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
