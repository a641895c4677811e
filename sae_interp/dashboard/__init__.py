"""Static HTML explorer of an explanation run: `render_run(run_dir)` or `python -m sae_interp.dashboard`.

Reads the run folder only through `sae_interp.results` and plain files; imports no model code.
"""

from sae_interp.dashboard.render import RunFolderError, render_run

__all__ = ["RunFolderError", "render_run"]
