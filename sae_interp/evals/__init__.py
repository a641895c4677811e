"""Evaluations of SAEs on a model: the SAEBench-style core evaluation, refusal evaluations, result files.

Refusal evaluations (REFERENCE section 2): `evaluate_refusal_fidelity` (does the reconstruction keep
r?), `evaluate_refusal_sparsity` (how many decoder rows rebuild r?) and `evaluate_latent_steering`
(does ablating the latents closest to r remove refusal?). Each result is written with
`saebench_record` + `write_eval_record`; any SAE (ours or SAELens-format via `load_sae`) on any model.
"""

from sae_interp.evals._refusal import (
    RefusalActivations,
    RefusalPromptConfig,
    collect_refusal_activations,
    decoder_cosines,
    mean_latent_difference,
)
from sae_interp.evals._saebench import (
    EVAL_TYPE_ID_CORE,
    core_eval_record,
    saebench_record,
    write_core_eval,
    write_eval_record,
)
from sae_interp.evals.core import CoreEvalConfig, CoreEvalResult, evaluate_core
from sae_interp.evals.latent_steering import (
    EVAL_TYPE_ID_LATENT_STEERING,
    LatentSteeringConfig,
    LatentSteeringResult,
    evaluate_latent_steering,
    steering_prompts,
)
from sae_interp.evals.refusal_fidelity import (
    EVAL_TYPE_ID_REFUSAL_FIDELITY,
    RefusalFidelityResult,
    evaluate_refusal_fidelity,
)
from sae_interp.evals.refusal_sparsity import (
    EVAL_TYPE_ID_REFUSAL_SPARSITY,
    RefusalSparsityResult,
    evaluate_refusal_sparsity,
    sparsity_ks,
)

__all__ = [
    "EVAL_TYPE_ID_CORE",
    "EVAL_TYPE_ID_LATENT_STEERING",
    "EVAL_TYPE_ID_REFUSAL_FIDELITY",
    "EVAL_TYPE_ID_REFUSAL_SPARSITY",
    "CoreEvalConfig",
    "CoreEvalResult",
    "LatentSteeringConfig",
    "LatentSteeringResult",
    "RefusalActivations",
    "RefusalFidelityResult",
    "RefusalPromptConfig",
    "RefusalSparsityResult",
    "collect_refusal_activations",
    "core_eval_record",
    "decoder_cosines",
    "evaluate_core",
    "evaluate_latent_steering",
    "evaluate_refusal_fidelity",
    "evaluate_refusal_sparsity",
    "mean_latent_difference",
    "saebench_record",
    "sparsity_ks",
    "steering_prompts",
    "write_core_eval",
    "write_eval_record",
]
