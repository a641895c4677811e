"""Load any causal LM (an embedded model, a local HF folder, a local GGUF or a hub id) behind one API.

Nothing here knows gemma or Qwen: the decoder layers are found by shape (the ModuleList whose
length is the config's layer count), the width is read from the embedding matrix, and a model
without a chat template gets the plain one from `templates.py`. That is what lets a user's own
Qwen1.5-0.5B-Chat, GPT-2 or Llama folder go through every tool unchanged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sae_interp.config import ModelConfig
from sae_interp.models.embedded import (
    EMBEDDED_MODELS,
    ensure_converted,
    read_provenance,
    resolve_embedded,
)
from sae_interp.models.templates import ensure_chat_template

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "LoadedModel",
    "ModelNotFoundError",
    "ModelSpec",
    "cpu_has_native_bf16",
    "default_dtype",
    "find_decoder_layers",
    "load_model",
    "load_model_from_config",
]

logger = logging.getLogger(__name__)


class ModelNotFoundError(FileNotFoundError):
    """The name is neither embedded, nor a local folder or file, nor reachable on a hub."""


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of sae_interp needs to know about a model, whatever its architecture."""

    name: str
    """The name or path it was loaded from."""
    n_layers: int
    """Number of decoder layers; residual "layer L" is the input of decoder layer L, 0 <= L < n_layers."""
    d_model: int
    """Width of the residual stream."""
    layers_path: str
    """Module path of the decoder-layer list, e.g. "model.layers" or "transformer.h"."""
    has_chat_template: bool
    """False when the tokenizer had none and the plain "User:/Assistant:" template was installed."""
    dtype: str
    """Parameter dtype, e.g. "float32"."""
    provenance: dict[str, str] = field(default_factory=dict)
    """Where the weights came from (GGUF sha256, packages, transformers version)."""

    def layer_path(self, layer: int) -> str:
        """Module path of decoder layer `layer` (its input is residual layer `layer`)."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer={layer} is out of range for {self.name} (0..{self.n_layers - 1})")
        return f"{self.layers_path}.{layer}"

    def hook_name(self, layer: int) -> str:
        """The SAELens/TransformerLens name of residual layer `layer`."""
        self.layer_path(layer)
        return f"blocks.{layer}.hook_resid_pre"


@dataclass
class LoadedModel:
    """A model ready for reading and intervening: nnsight wrapper, tokenizer and spec."""

    lm: Any
    """The nnsight `TransformersModel` wrapping `hf` (trace, generate, module access)."""
    tokenizer: Any
    """The tokenizer; left padding, a pad token, and a chat template are guaranteed."""
    spec: ModelSpec

    @property
    def hf(self) -> PreTrainedModel:
        """The underlying transformers model (plain torch module)."""
        return self.lm._module

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    def layer(self, layer: int) -> Any:
        """The nnsight envoy of decoder layer `layer`; `.input` is residual layer `layer`."""
        envoy = self.lm
        for part in self.spec.layer_path(layer).split("."):
            envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
        return envoy


@cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512_BF16 or AMX); else bf16 is 5-7x slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def default_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on CUDA and on CPUs with native bf16; float32 on other CPUs."""
    kind = torch.device(device).type
    if kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return torch.float32


def find_decoder_layers(model: nn.Module) -> tuple[str, int]:
    """Find the decoder-layer ModuleList generically.

    Returns:
        (module path, number of layers).

    Raises:
        ValueError: no ModuleList matches the config's layer count.
    """
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if config is not None else None
    n_expected = getattr(text_config, "num_hidden_layers", None) or getattr(text_config, "n_layer", None)
    lists = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, nn.ModuleList) and name]
    matches = [(name, mod) for name, mod in lists if n_expected is None or len(mod) == n_expected]
    if not matches:
        raise ValueError(
            f"cannot find the decoder layers of {type(model).__name__}: no ModuleList of length "
            f"{n_expected} (module lists: {[(n, len(m)) for n, m in lists][:8]})"
        )
    # Several lists can share the length (e.g. per-layer norms); the decoder stack holds the most weights.
    name, layers = max(matches, key=lambda item: sum(p.numel() for p in item[1].parameters()))
    return name, len(layers)


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Load a causal LM for reading and steering.

    Args:
        name_or_path: an embedded model name (`gemma-3-270m`, `qwen2.5-coder-0.5b-instruct` or an
            alias), a local HF folder, a local `.gguf` file, or a hub id (needs network or a
            filled HF cache).
        dtype: parameter dtype; default from `default_dtype(device)`.
        device: "cpu", "cuda", ...; default CUDA when available.

    Returns:
        The loaded model, in eval mode with gradients off.

    Raises:
        ModelNotFoundError: the name resolves to nothing loadable; the message says what to pass.
    """
    from nnsight import TransformersModel

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or default_dtype(device)
    source, load_kwargs, tokenizer_kwargs, provenance = _resolve(str(name_or_path))
    hf = _from_pretrained("AutoModelForCausalLM", source, str(name_or_path), dtype=dtype, **load_kwargs)
    hf.to(device).eval().requires_grad_(False)
    _contiguous_lm_head_input(hf)
    tokenizer = _from_pretrained(
        "AutoTokenizer", source, str(name_or_path), **load_kwargs, **tokenizer_kwargs
    )
    has_template = ensure_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Left padding keeps the last prompt token at position -1 for every row of a batch, which
    # the refusal tools (last-position directions) and batched generation rely on.
    tokenizer.padding_side = "left"
    layers_path, n_layers = find_decoder_layers(hf)
    spec = ModelSpec(
        name=str(name_or_path),
        n_layers=n_layers,
        d_model=hf.get_input_embeddings().weight.shape[1],
        layers_path=layers_path,
        has_chat_template=has_template,
        dtype=str(dtype).removeprefix("torch."),
        provenance=provenance,
    )
    lm = TransformersModel(hf, tokenizer=tokenizer, task="text-generation")
    logger.info(
        "loaded %s: %d layers, d_model %d, %s on %s", spec.name, n_layers, spec.d_model, dtype, device
    )
    return LoadedModel(lm=lm, tokenizer=tokenizer, spec=spec)


def _contiguous_lm_head_input(hf: PreTrainedModel) -> None:
    """Hand the LM head a contiguous input: a permanent hook, the only one outside `interventions`.

    HF models slice the last position (`logits_to_keep`, and every `generate` prefill) before the
    head. On CPU a bf16 linear layer given that strided [batch, 1, d_model] view falls back to a
    batched matmul that copies the whole [vocab, d_model] weight once per row: measured on Qwen2.5
    (152k vocab) with 8 rows, 6.8 s instead of 0.02 s, 7x the rest of the forward. fp32 loses 2x.
    """
    head = hf.get_output_embeddings()
    if isinstance(head, nn.Module):
        head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]))


def load_model_from_config(cfg: ModelConfig) -> LoadedModel:
    """`load_model` with the dtype and device of a `ModelConfig` ("auto" picks the defaults)."""
    dtype = None if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    return load_model(cfg.name, dtype=dtype, device=None if cfg.device == "auto" else cfg.device)


def _resolve(name: str) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]:
    """Map a user's name to (from_pretrained source, shared kwargs, tokenizer kwargs, provenance)."""
    embedded = resolve_embedded(name)
    if embedded is not None:
        folder = ensure_converted(embedded)
        return str(folder), {}, dict(embedded.tokenizer_kwargs), read_provenance(folder)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), {"gguf_file": path.name}, {}, {"gguf_file": str(path)}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} has no config.json: pass a folder written by save_pretrained")
        return str(path), {}, {}, read_provenance(path)
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"{name}: no such file or folder")
    return name, {}, {}, {"hub_id": name}


def _from_pretrained(auto_class: str, source: str, name: str, **kwargs: Any) -> Any:
    """`Auto*.from_pretrained` that turns an unreachable hub into one clear message."""
    import transformers

    cls = getattr(transformers, auto_class)
    try:
        return cls.from_pretrained(source, **kwargs)
    except OSError as err:
        if Path(source).exists():
            raise
        embedded = ", ".join(EMBEDDED_MODELS)
        raise ModelNotFoundError(
            f"cannot load {name!r}: it is not an embedded model ({embedded}) nor a local path, and "
            f"the Hugging Face hub did not provide it (offline, or no such repo). Pass a local folder "
            f"written by save_pretrained (config.json + weights + tokenizer files) or a .gguf file."
        ) from err
