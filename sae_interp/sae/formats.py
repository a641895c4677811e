"""Readers for SAE folders written by other tools: pure converters to (cfg_dict, state_dict).

Each format is a `SAEFormat`: `detect(folder)` says whether a folder is in that format, `read`
returns the config as a SAELens-layout dict (what `SAEConfig.from_dict` reads) and the tensors in
our layout (`W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`, ...). Converters do no validation beyond
their own format; `sae_interp.sae.io.load_sae` checks names and shapes once for all formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from safetensors.torch import load_file
from torch import Tensor

from sae_interp._io import read_json
from sae_interp.sae.constants import CFG_FILENAME, SAELENS_WEIGHTS_FILENAME, SPARSIFY_WEIGHTS_FILENAME

__all__ = ["FORMATS", "SAEFormat", "SAELensFormat", "SparsifyFormat", "detect_format"]


class SAEFormat(Protocol):
    """One on-disk SAE format."""

    name: str
    weights_filename: str

    def detect(self, folder: Path) -> bool:
        """True when `folder` holds this format's weights file."""
        ...

    def read(self, folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """(SAELens-layout cfg dict, state dict in our layout)."""
        ...


def _read_cfg(folder: Path) -> dict[str, Any]:
    path = folder / CFG_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; an SAE folder needs {CFG_FILENAME} next to its weights")
    cfg = read_json(path)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(cfg).__name__}")
    return cfg


class SAELensFormat:
    """SAELens 6.x: `cfg.json` + `sae_weights.safetensors`, already in our layout."""

    name = "saelens"
    weights_filename = SAELENS_WEIGHTS_FILENAME

    def detect(self, folder: Path) -> bool:
        return (folder / self.weights_filename).is_file()

    def read(self, folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
        cfg = _read_cfg(folder)
        state = load_file(folder / self.weights_filename)
        return cfg, state


class SparsifyFormat:
    """sparsify / Delphi: `cfg.json` + `sae.safetensors` with `encoder.weight [d_sae, d_in]`.

    sparsify subtracts b_dec before encoding, applies ReLU then keeps the top k: the same latents
    as SAELens' topk (which ranks first and applies ReLU after).
    """

    name = "sparsify"
    weights_filename = SPARSIFY_WEIGHTS_FILENAME

    def detect(self, folder: Path) -> bool:
        return (folder / self.weights_filename).is_file()

    def read(self, folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
        raw = _read_cfg(folder)
        cfg_path = folder / CFG_FILENAME
        for key, ok in (("activation", "topk"), ("skip_connection", False), ("transcode", False)):
            if raw.get(key, ok) != ok:
                raise ValueError(f"{cfg_path}: {key}={raw[key]!r} is not supported (only {key}={ok!r})")
        state = load_file(folder / self.weights_filename)
        if "encoder.weight" not in state:
            raise ValueError(
                f"{folder / self.weights_filename}: missing tensor 'encoder.weight' [d_sae, d_in]"
            )
        d_sae = state["encoder.weight"].shape[0]
        if raw.get("d_in") is None:
            raise ValueError(f"{cfg_path}: missing key 'd_in'")
        converted = {
            "W_enc": state.pop("encoder.weight").T.contiguous(),
            **({"b_enc": state.pop("encoder.bias")} if "encoder.bias" in state else {}),
            **state,  # W_dec [d_sae, d_in] and b_dec are already in our layout; extras stay to be reported
        }
        cfg = {
            "architecture": "topk",
            "d_in": raw["d_in"],
            "d_sae": raw.get("num_latents") or raw["d_in"] * raw.get("expansion_factor", 0) or d_sae,
            "k": raw["k"],
            "apply_b_dec_to_input": True,
            "metadata": {"hookpoint": folder.name, "source_format": "sparsify"},
        }
        return cfg, converted


FORMATS: dict[str, SAEFormat] = {}
"""Known formats by name, tried in insertion order by `detect_format`."""


def _register(fmt: SAEFormat) -> None:
    if fmt.name in FORMATS:
        raise ValueError(f"SAE format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt


_register(SAELensFormat())
_register(SparsifyFormat())


def detect_format(folder: Path) -> SAEFormat:
    """The format of an SAE folder, by the name of its weights file.

    Raises:
        FileNotFoundError: the folder does not exist or holds no known weights file.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; an SAE is a folder with {CFG_FILENAME} and weights")
    for fmt in FORMATS.values():
        if fmt.detect(folder):
            return fmt
    expected = ", ".join(f"{f.weights_filename} ({f.name})" for f in FORMATS.values())
    raise FileNotFoundError(f"{folder}: no SAE weights file found; expected one of {expected}")
