"""SAE configuration: shape, architecture, input handling and where the SAE belongs in a model.

`SAEConfig.to_dict()` produces exactly the SAELens 6.x `cfg.json` layout (top-level `architecture`,
`d_in`, `d_sae`, `k`, `apply_b_dec_to_input`, `normalize_activations`, and a `metadata` object with
`model_name`, `hook_name`, `context_size`, ...), so a folder we write loads in SAELens and theirs
loads here. Our own additions (`module_path`, `layer`, `provenance`) live inside `metadata`, which
SAELens keeps as free-form attributes.

Boundary decision: the dtype is not part of the config. It comes from the weights (in memory) and
from the tensors in the file (on disk); `cfg.json` records it only because SAELens requires the key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sae_interp.sae.constants import SAELENS_FORMAT_VERSION
from sae_interp.sae.registry import ARCHITECTURES

__all__ = [
    "NormalizeActivations",
    "SAEConfig",
    "SAEMetadata",
    "hook_name_for_layer",
    "module_path_for_layer",
]

logger = logging.getLogger(__name__)

NormalizeActivations = Literal["none", "expected_average_only_in"]
"""SAELens input normalisations we support. "expected_average_only_in" multiplies inputs by a fixed
scalar (`norm_scaling_factor`) and divides reconstructions by it. SAELens' per-token
"constant_norm_rescale" and "layer_norm" are not supported: loading such a file raises."""

# metadata field -> SAELens metadata key, where the names differ
_METADATA_RENAMES = {"dataset": "dataset_path"}
# top-level SAELens keys that carry no information for us (dtype comes from the tensors)
_IGNORED_TOP_LEVEL = {"device", "dtype"}


def hook_name_for_layer(layer: int) -> str:
    """SAELens hook name of "layer L" (the residual stream entering decoder layer L)."""
    return f"blocks.{layer}.hook_resid_pre"


def module_path_for_layer(layer: int) -> str:
    """Module whose input is "layer L" in a transformers decoder model."""
    return f"model.layers.{layer}"


@dataclass(frozen=True, kw_only=True)
class SAEMetadata:
    """Where the SAE was trained and from what. Every field is optional: foreign files lack most."""

    model_name: str | None = None
    """Model the SAE reads, e.g. "Qwen/Qwen2.5-Coder-0.5B-Instruct"."""
    hook_name: str | None = None
    """SAELens hook name, e.g. "blocks.13.hook_resid_pre" (files from other tools may differ)."""
    module_path: str | None = None
    """Module whose input the SAE reads, e.g. "model.layers.13" (input of decoder layer 13)."""
    layer: int | None = None
    """Layer L: the residual stream entering decoder layer L."""
    context_size: int | None = None
    """Tokens per training sequence."""
    dataset: str | None = None
    """Training data (SAELens key `dataset_path`)."""
    provenance: dict[str, str] = field(default_factory=dict)
    """Where the activations came from, e.g. {"gguf_sha256": ..., "transformers": "5.19.0"}."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other metadata, including keys of foreign files we do not model; kept on save."""

    def __post_init__(self) -> None:
        if self.layer is not None and self.layer < 0:
            raise ValueError(f"metadata.layer must be >= 0, got {self.layer}")
        if self.context_size is not None and self.context_size <= 0:
            raise ValueError(f"metadata.context_size must be > 0, got {self.context_size}")

    @classmethod
    def for_layer(cls, layer: int, **kwargs: Any) -> SAEMetadata:
        """Metadata for an SAE on "layer L", with both the SAELens hook name and the module path."""
        return cls(
            layer=layer,
            hook_name=hook_name_for_layer(layer),
            module_path=module_path_for_layer(layer),
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """SAELens `metadata` object; None fields are left out."""
        out: dict[str, Any] = {"sae_lens_version": SAELENS_FORMAT_VERSION}
        for name in ("model_name", "hook_name", "module_path", "layer", "context_size", "dataset"):
            if (value := getattr(self, name)) is not None:
                out[_METADATA_RENAMES.get(name, name)] = value
        if self.provenance:
            out["provenance"] = dict(self.provenance)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEMetadata:
        """Inverse of `to_dict`; keys we do not model go to `extra`."""
        known: dict[str, Any] = {}
        extra = dict(data)
        for name in (
            "model_name",
            "hook_name",
            "module_path",
            "layer",
            "context_size",
            "dataset",
            "provenance",
        ):
            key = _METADATA_RENAMES.get(name, name)
            if key in extra:
                known[name] = extra.pop(key)
        known = {k: v for k, v in known.items() if v is not None}
        return cls(**known, extra=extra)


@dataclass(frozen=True, kw_only=True)
class SAEConfig:
    """Shape and behaviour of one SAE. Validated on construction."""

    d_in: int
    """Width of the activations the SAE reads."""
    d_sae: int
    """Number of latents."""
    architecture: str = "topk"
    """Registered architecture name: "standard" (alias "relu"), "topk" or "jumprelu"."""
    k: int | None = None
    """Active latents per token; required for "topk", must be None otherwise."""
    apply_b_dec_to_input: bool = True
    """Subtract b_dec from the input before encoding (SAELens and sparsify both do by default)."""
    rescale_acts_by_decoder_norm: bool = False
    """TopK only (SAELens): rank pre-activations scaled by decoder row norms, divide them out in decode."""
    normalize_activations: NormalizeActivations = "none"
    """Input normalisation; "expected_average_only_in" needs `norm_scaling_factor`."""
    norm_scaling_factor: float | None = None
    """Inputs are multiplied by this before encoding (and reconstructions divided by it)."""
    metadata: SAEMetadata = field(default_factory=SAEMetadata)
    """Model, hook and provenance; see `SAEMetadata`."""

    def __post_init__(self) -> None:  # validate only
        if self.d_in <= 0 or self.d_sae <= 0:
            raise ValueError(f"d_in and d_sae must be > 0, got d_in={self.d_in}, d_sae={self.d_sae}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={self.architecture!r}; expected one of {sorted(ARCHITECTURES)}")
        topk = ARCHITECTURES[self.architecture].architecture == "topk"
        if topk and (self.k is None or not 0 < self.k <= self.d_sae):
            raise ValueError(f"k={self.k!r}; topk needs 0 < k <= d_sae={self.d_sae}")
        if not topk and self.k is not None:
            raise ValueError(f"k={self.k!r} is only valid for architecture 'topk', not {self.architecture!r}")
        if self.rescale_acts_by_decoder_norm and not topk:
            raise ValueError("rescale_acts_by_decoder_norm=True is only valid for architecture 'topk'")
        if self.normalize_activations not in get_args(NormalizeActivations):
            raise ValueError(
                f"normalize_activations={self.normalize_activations!r}; expected one of "
                f"{get_args(NormalizeActivations)} (per-token SAELens normalisations are not supported)"
            )
        scaled = self.normalize_activations == "expected_average_only_in"
        if scaled != (self.norm_scaling_factor is not None):
            raise ValueError(
                "norm_scaling_factor must be set exactly when "
                f"normalize_activations='expected_average_only_in' (got {self.normalize_activations!r}, "
                f"{self.norm_scaling_factor!r})"
            )
        if self.norm_scaling_factor is not None and not self.norm_scaling_factor > 0:
            raise ValueError(f"norm_scaling_factor must be > 0, got {self.norm_scaling_factor}")

    def to_dict(self) -> dict[str, Any]:
        """The SAELens 6.x `cfg.json` object (without `dtype`, which the writer adds from the weights)."""
        out: dict[str, Any] = {
            "architecture": ARCHITECTURES[self.architecture].architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": self.normalize_activations,
            "reshape_activations": "none",
        }
        if self.k is not None:
            out["k"] = self.k
            out["rescale_acts_by_decoder_norm"] = self.rescale_acts_by_decoder_norm
        if self.norm_scaling_factor is not None:
            out["norm_scaling_factor"] = self.norm_scaling_factor
        out["metadata"] = self.metadata.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        """Read a SAELens 6.x `cfg.json` object (or our own).

        Raises:
            ValueError: a setting we cannot reproduce (reshape_activations other than "none",
                per-token normalisation), or an invalid value.
        """
        raw = dict(data)
        if (reshape := raw.pop("reshape_activations", "none")) != "none":
            raise ValueError(f"reshape_activations={reshape!r} (attention hook_z SAEs) is not supported")
        metadata = SAEMetadata.from_dict(raw.pop("metadata", None) or {})
        names = {"d_in", "d_sae", "architecture", "k", "apply_b_dec_to_input", "rescale_acts_by_decoder_norm"}
        names |= {"normalize_activations", "norm_scaling_factor"}
        kwargs = {key: raw.pop(key) for key in names if key in raw}
        kwargs.setdefault("architecture", "standard")  # SAELens' own default for old files
        if unknown := set(raw) - _IGNORED_TOP_LEVEL:
            logger.debug("cfg.json keys ignored: %s", sorted(unknown))
        if kwargs["architecture"] != "topk":
            kwargs.pop("rescale_acts_by_decoder_norm", None)
        return cls(**kwargs, metadata=metadata)
