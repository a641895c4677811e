"""Load any causal LM behind one API and read or steer its residual stream through nnsight."""

from sae_interp.models.embedded import EMBEDDED_MODELS, EmbeddedModel, EmbeddedModelError, resolve_embedded
from sae_interp.models.interventions import (
    Ablate,
    AddVector,
    Intervention,
    Splice,
    generate,
    generate_ids,
    intervene,
)
from sae_interp.models.loading import (
    LoadedModel,
    ModelNotFoundError,
    ModelSpec,
    default_dtype,
    load_model,
    load_model_from_config,
)
from sae_interp.models.prompts import PromptBatch, encode_chat
from sae_interp.models.resid import ResidBatch, collect_resid, read_resid

__all__ = [
    "EMBEDDED_MODELS",
    "Ablate",
    "AddVector",
    "EmbeddedModel",
    "EmbeddedModelError",
    "Intervention",
    "LoadedModel",
    "ModelNotFoundError",
    "ModelSpec",
    "PromptBatch",
    "ResidBatch",
    "Splice",
    "collect_resid",
    "default_dtype",
    "encode_chat",
    "generate",
    "generate_ids",
    "intervene",
    "load_model",
    "load_model_from_config",
    "read_resid",
    "resolve_embedded",
]
