"""Sparse autoencoders: architectures, SAELens/sparsify file formats, training and metrics.

Pure torch: nothing here imports transformers, nnsight or model code. Importing this package
registers the built-in architectures ("standard"/"relu", "topk", "jumprelu").
"""

from sae_interp.sae.base import SAE, SAEOutput, SparseLatents, TrainStepInputs, build_sae
from sae_interp.sae.config import (
    SAEConfig,
    SAEMetadata,
    hook_name_for_layer,
    module_path_for_layer,
)
from sae_interp.sae.jumprelu import JumpReLUSAE
from sae_interp.sae.registry import ARCHITECTURES, get_architecture, register_architecture
from sae_interp.sae.standard import StandardSAE
from sae_interp.sae.topk import TopKSAE

__all__ = [
    "ARCHITECTURES",
    "SAE",
    "JumpReLUSAE",
    "SAEConfig",
    "SAEMetadata",
    "SAEOutput",
    "SparseLatents",
    "StandardSAE",
    "TopKSAE",
    "TrainStepInputs",
    "build_sae",
    "get_architecture",
    "hook_name_for_layer",
    "module_path_for_layer",
    "register_architecture",
]
