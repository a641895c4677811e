"""Every on-disk name of the SAE formats we read and write, and the dtype names used in `cfg.json`.

Kept in one place so that the writer, the readers and the tests cannot drift apart.
"""

from __future__ import annotations

import torch

__all__ = [
    "CFG_FILENAME",
    "DTYPE_NAMES",
    "SAELENS_FORMAT_VERSION",
    "SAELENS_WEIGHTS_FILENAME",
    "SPARSIFY_WEIGHTS_FILENAME",
    "TRAINER_STATE_FILENAME",
    "dtype_from_name",
    "dtype_name",
]

CFG_FILENAME = "cfg.json"
"""Config file of both SAELens and sparsify/Delphi SAE folders."""
SAELENS_WEIGHTS_FILENAME = "sae_weights.safetensors"
"""SAELens weights: W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec (+ threshold)."""
SPARSIFY_WEIGHTS_FILENAME = "sae.safetensors"
"""sparsify/Delphi weights: encoder.weight [d_sae, d_in], encoder.bias, W_dec [d_sae, d_in], b_dec."""
TRAINER_STATE_FILENAME = "trainer_state.pt"
"""Training checkpoint (model, optimizer, scheduler, step, dead-latent counters, RNG)."""

SAELENS_FORMAT_VERSION = "6.0.0"
"""Written as `metadata.sae_lens_version` when the file did not come from SAELens.

SAELens treats a config without this key as a pre-6.0 layout and renames keys; the value marks
the 6.x layout we write, not a SAELens installation.
"""

DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def dtype_name(dtype: torch.dtype) -> str:
    """The `cfg.json` spelling of a floating dtype, e.g. torch.bfloat16 -> "bfloat16"."""
    for name, value in DTYPE_NAMES.items():
        if value == dtype:
            return name
    raise ValueError(f"SAE dtype {dtype} is not one of {sorted(DTYPE_NAMES)}")


def dtype_from_name(name: str) -> torch.dtype:
    """Inverse of `dtype_name`; also accepts the "torch.float32" spelling."""
    key = name.removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise ValueError(f"dtype {name!r} is not one of {sorted(DTYPE_NAMES)}")
    return DTYPE_NAMES[key]
