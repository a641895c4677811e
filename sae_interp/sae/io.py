"""Save SAEs in the SAELens format and load SAELens or sparsify/Delphi folders.

Saving builds the folder under a temporary name and moves it into place, so a crash never leaves
a half-written SAE. Loading checks every tensor name and shape against the config and reports all
problems in one error that names the file, the tensor and the expected shape. The dtype comes from
the tensors in the file, never from the config.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from sae_interp._io import atomic_directory, atomic_write_json
from sae_interp.sae.base import SAE
from sae_interp.sae.config import SAEConfig
from sae_interp.sae.constants import CFG_FILENAME, SAELENS_WEIGHTS_FILENAME, dtype_name
from sae_interp.sae.formats import detect_format
from sae_interp.sae.registry import get_architecture

__all__ = ["check_state_dict", "load_sae", "save_sae"]

logger = logging.getLogger(__name__)


def save_sae(sae: SAE, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write `sae` as a SAELens 6.x folder: `cfg.json` + `sae_weights.safetensors`.

    A `norm_scaling_factor` is folded into the saved weights (W_enc * s, W_dec / s, b_dec / s) and
    the file says normalize_activations="none", because SAELens' loader cannot apply the factor.

    Args:
        sae: the SAE to save.
        path: the folder to create.
        overwrite: replace an existing folder (removed first, so not atomic for readers).

    Returns:
        The folder.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
    """
    target = Path(path)
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
        shutil.rmtree(target)
    cfg, state = _folded_for_saelens(sae)
    cfg_dict = {**cfg.to_dict(), "dtype": dtype_name(sae.dtype)}
    with atomic_directory(target) as tmp:
        save_file(state, str(tmp / SAELENS_WEIGHTS_FILENAME))
        atomic_write_json(tmp / CFG_FILENAME, cfg_dict)
    return target


def _folded_for_saelens(sae: SAE) -> tuple[SAEConfig, dict[str, Tensor]]:
    state = {k: v.detach().contiguous().cpu() for k, v in sae.state_dict().items()}
    s = sae.cfg.norm_scaling_factor
    if s is None:
        return sae.cfg, state
    if sae.cfg.rescale_acts_by_decoder_norm:
        raise ValueError(
            "cannot fold norm_scaling_factor into a TopK SAE with rescale_acts_by_decoder_norm=True"
        )
    state["W_enc"], state["W_dec"], state["b_dec"] = (
        state["W_enc"] * s,
        state["W_dec"] / s,
        state["b_dec"] / s,
    )
    fields = {f: getattr(sae.cfg, f) for f in sae.cfg.__dataclass_fields__}
    return SAEConfig(**{**fields, "normalize_activations": "none", "norm_scaling_factor": None}), state


def check_state_dict(state: dict[str, Tensor], cfg: SAEConfig, source: Path) -> torch.dtype:
    """Check tensor names and shapes against `cfg`; return the one dtype the tensors share.

    Raises:
        ValueError: listing every missing, unexpected or mis-shaped tensor, and naming `source`.
    """
    expected = get_architecture(cfg.architecture).param_shapes(cfg)
    problems = [
        f"missing tensor {n!r} {dims}={list(s)}" for n, (s, dims) in expected.items() if n not in state
    ]
    problems += [f"unexpected tensor {n!r} {list(t.shape)}" for n, t in state.items() if n not in expected]
    problems += [
        f"tensor {n!r} has shape {list(state[n].shape)}, expected {dims}={list(s)}"
        for n, (s, dims) in expected.items()
        if n in state and tuple(state[n].shape) != s
    ]
    if problems:
        where = f"d_in={cfg.d_in}, d_sae={cfg.d_sae}, architecture={cfg.architecture!r}"
        raise ValueError(f"{source}: " + "; ".join(problems) + f" (config: {where})")
    dtypes = {t.dtype for t in state.values()}
    if len(dtypes) != 1:
        raise ValueError(f"{source}: tensors have mixed dtypes {sorted(map(str, dtypes))}")
    return dtypes.pop()


def load_sae(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    norm_scaling_factor: float | None = None,
) -> SAE:
    """Load an SAE folder in any known format (SAELens, sparsify/Delphi), detected from its files.

    Args:
        path: the SAE folder.
        device: where to put the weights; the dtype is the one stored in the file.
        norm_scaling_factor: for SAELens files with normalize_activations="expected_average_only_in",
            whose factor SAELens keeps outside the folder (pretrained_saes.yaml). Pass 1.0 to read
            the file as SAELens' `load_from_disk` does (no scaling).

    Returns:
        The SAE, in eval mode.

    Raises:
        FileNotFoundError: the folder, its cfg.json or its weights file is missing.
        ValueError: tensors that do not match the config, or settings we do not support.
    """
    folder = Path(path)
    fmt = detect_format(folder)
    cfg_dict, state = fmt.read(folder)
    if cfg_dict.get("normalize_activations") == "expected_average_only_in":
        factor = (
            norm_scaling_factor if norm_scaling_factor is not None else cfg_dict.get("norm_scaling_factor")
        )
        if factor is None:
            raise ValueError(
                f"{folder / CFG_FILENAME}: normalize_activations='expected_average_only_in' but the "
                "file has no scaling factor; pass load_sae(..., norm_scaling_factor=...) "
                "(1.0 reads it as SAELens does)"
            )
        cfg_dict = {**cfg_dict, "norm_scaling_factor": float(factor)}
    _drop_unit_scaling_factor(state, folder / fmt.weights_filename)
    try:
        cfg = SAEConfig.from_dict(cfg_dict)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{folder / CFG_FILENAME}: {err}") from err
    dtype = check_state_dict(state, cfg, folder / fmt.weights_filename)
    sae = get_architecture(cfg.architecture)(cfg, device="meta", dtype=dtype)
    sae.load_state_dict({k: v.to(device) for k, v in state.items()}, assign=True)
    logger.debug("loaded %s SAE from %s (%s, %s)", fmt.name, folder, cfg.architecture, dtype)
    return sae.eval()


def _drop_unit_scaling_factor(state: dict[str, Tensor], source: Path) -> None:
    """Older SAELens files carry a `scaling_factor` of ones (a no-op); anything else is unsupported."""
    if "scaling_factor" in state:
        if not torch.all(state["scaling_factor"] == 1):
            raise ValueError(
                f"{source}: tensor 'scaling_factor' (SAELens finetuning scaling) is not supported"
            )
        del state["scaling_factor"]
