"""Write evaluations (core, refusal fidelity, refusal sparsity, latent steering) as SAEBench-style files.

SAEBench's result files are JSON objects with `eval_type_id`, `eval_config`, `eval_id`,
`datetime_epoch_millis`, `eval_result_metrics` (grouped metrics), `eval_result_details` (per-latent
rows), `eval_result_unstructured`, provenance of the evaluating code, and the SAE's identity
(`sae_lens_id`, `sae_lens_release_id`, `sae_lens_version`, `sae_cfg_dict`). We fill the same keys
from our own evaluation; the evaluating code is sae_interp, so its version and git commit stand
where SAEBench writes its own commit hash, and `sae_bench_commit_hash` is null.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from sae_interp._io import atomic_write_json
from sae_interp.evals.core import CoreEvalConfig, CoreEvalResult
from sae_interp.sae.base import SAE

__all__ = [
    "EVAL_TYPE_ID_CORE",
    "core_eval_record",
    "saebench_record",
    "write_core_eval",
    "write_eval_record",
]

EVAL_TYPE_ID_CORE = "core"


def _git_commit() -> str | None:
    """The sae_interp checkout's commit, when it runs from a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def saebench_record(
    eval_type_id: str,
    eval_config: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    details: list[dict[str, Any]],
    sae: SAE,
    *,
    sae_id: str | None = None,
    unstructured: Any = None,
) -> dict[str, Any]:
    """The SAEBench-style JSON object of any evaluation: its identity, config, results and provenance.

    Args:
        eval_type_id: e.g. "core", "refusal_fidelity".
        eval_config: JSON-ready settings of the evaluation (model, layer, counts, ...).
        metrics: grouped scalar metrics (`eval_result_metrics`).
        details: per-latent (or per-condition) rows (`eval_result_details`).
        sae: the evaluated SAE; its config goes to `sae_cfg_dict`.
        sae_id: where the SAE came from (a folder), as `sae_lens_id`.
        unstructured: anything else worth keeping (`eval_result_unstructured`).
    """
    try:
        version = metadata.version("sae_interp")
    except metadata.PackageNotFoundError:
        version = None
    return {
        "eval_type_id": eval_type_id,
        "eval_config": eval_config,
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(time.time() * 1000),
        "eval_result_metrics": metrics,
        "eval_result_details": details,
        "eval_result_unstructured": unstructured,
        "sae_bench_commit_hash": None,
        "sae_interp_version": version,
        "sae_interp_commit_hash": _git_commit(),
        "sae_lens_id": sae_id,
        "sae_lens_release_id": None,
        "sae_lens_version": None,
        "sae_cfg_dict": sae.cfg.to_dict(),
    }


def core_eval_record(
    result: CoreEvalResult,
    sae: SAE,
    cfg: CoreEvalConfig,
    *,
    model_name: str,
    model_dtype: str,
    dataset: str,
    context_size: int,
    n_rows: int,
    sae_id: str | None = None,
) -> dict[str, Any]:
    """The SAEBench-style JSON object of one core evaluation."""
    eval_config = {
        "model_name": model_name,
        "llm_dtype": model_dtype,
        "batch_size_prompts": cfg.batch_size,
        "n_eval_rows": n_rows,
        "dataset": dataset,
        "context_size": context_size,
        "compute_kl": True,
        "compute_ce_loss": True,
        "exclude_special_tokens_from_reconstruction": True,
        "splice_note": "position 0 (BOS) keeps its clean residual in the SAE and ablation runs",
        **dataclasses.asdict(cfg),
    }
    return saebench_record(EVAL_TYPE_ID_CORE, eval_config, result.metrics, result.details, sae, sae_id=sae_id)


def write_eval_record(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Atomically write `record` (from `saebench_record` or `core_eval_record`) as JSON; returns the path."""
    atomic_write_json(path, record)
    return Path(path)


write_core_eval = write_eval_record
"""The name train_sae and older callers use for `write_eval_record`."""
