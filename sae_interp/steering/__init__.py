"""SAE-targeted steering (SAE-TS): steer with many vectors at once, measure their effects on SAE
latents, fit a linear effect approximator, and build vectors that target chosen latents.

    steer.py         batched steered generation, latents of the result, scale calibration
    effects.py       feature-effect collection in resumable shards
    approximator.py  e_hat(s) = s W + b (ridge or Adam) and its held-out evaluation
    targeted.py      targeted vectors, CAA and decoder-row baselines
    evaluate.py      behaviour x coherence sweeps and their plot
    judge.py         the same rated by a judge LLM (any client)

The runnable experiment is `python -m sae_interp.experiments.sae_ts`.
"""

from sae_interp.steering.approximator import (
    AdapterConfig,
    EffectApproximator,
    encoder_prior,
    evaluate_predictions,
    fit_adam,
    fit_approximator,
    fit_ridge,
    split_indices,
)
from sae_interp.steering.effects import (
    EffectsConfig,
    EffectStore,
    collect_effects,
    direction_bank,
    measure_effects,
)
from sae_interp.steering.evaluate import (
    BEHAVIOURS,
    Behaviour,
    SweepRow,
    plot_sweep,
    sequence_nll,
    sweep_behaviour,
)
from sae_interp.steering.judge import judge_sweep
from sae_interp.steering.steer import (
    Generations,
    calibrate_scales,
    generate_steered,
    latent_means,
    steering_loss,
)
from sae_interp.steering.targeted import (
    caa_direction,
    contrast_latents,
    decoder_direction,
    target_effect,
    targeted_direction,
)

__all__ = [
    "BEHAVIOURS",
    "AdapterConfig",
    "Behaviour",
    "EffectApproximator",
    "EffectStore",
    "EffectsConfig",
    "Generations",
    "SweepRow",
    "caa_direction",
    "calibrate_scales",
    "collect_effects",
    "contrast_latents",
    "decoder_direction",
    "direction_bank",
    "encoder_prior",
    "evaluate_predictions",
    "fit_adam",
    "fit_approximator",
    "fit_ridge",
    "generate_steered",
    "judge_sweep",
    "latent_means",
    "measure_effects",
    "plot_sweep",
    "sequence_nll",
    "split_indices",
    "steering_loss",
    "sweep_behaviour",
    "target_effect",
    "targeted_direction",
]
