"""Evaluations of SAEs on a model: the SAEBench-style core evaluation and its result files."""

from sae_interp.evals._saebench import EVAL_TYPE_ID_CORE, core_eval_record, write_core_eval
from sae_interp.evals.core import CoreEvalConfig, CoreEvalResult, evaluate_core

__all__ = [
    "EVAL_TYPE_ID_CORE",
    "CoreEvalConfig",
    "CoreEvalResult",
    "core_eval_record",
    "evaluate_core",
    "write_core_eval",
]
