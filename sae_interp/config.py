"""Typed, validated configuration: frozen dataclasses built from TOML, CLI overrides, or code.

Each area defines its own small config dataclass next to the code that uses it; this module holds
the machinery they share, so a typo or a wrong type in a TOML file is one clear error naming the
section, the key and what is allowed, never a silently ignored setting:

    cfg = load_toml(TrainSAEConfig, "train.toml", overrides=["sae.k=64", "model.dtype='float32'"])
    save_config(cfg, run_dir / "config.json")

Rules shared by every config (see STYLE.md): `@dataclass(frozen=True, kw_only=True)`, a docstring
under each field, `Literal` for choices, and `__post_init__` that only validates (use `check_choice`
and `check_positive` for uniform messages).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from sae_interp._io import atomic_write_json

__all__ = [
    "ConfigError",
    "ModelConfig",
    "apply_overrides",
    "build",
    "check_choice",
    "check_positive",
    "config_to_dict",
    "load_toml",
    "save_config",
]

T = TypeVar("T")
DType = Literal["auto", "float32", "bfloat16", "float16"]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type, or out of range."""


def check_choice(section: str, name: str, value: object, choices: Any) -> None:
    """Raise ConfigError unless `value` is one of the Literal `choices`."""
    allowed = get_args(choices)
    if value not in allowed:
        raise ConfigError(f"{section}.{name}={value!r}; expected one of {allowed}")


def check_positive(section: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ConfigError unless `value` > 0 (or >= 0 with allow_zero)."""
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{section}.{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Which language model to load and how."""

    name: str = "qwen2.5-coder-0.5b-instruct"
    """Embedded model name (qwen2.5-coder-0.5b-instruct, gemma-3-270m), local HF folder, .gguf, or hub id."""
    dtype: DType = "auto"
    """Parameter dtype; "auto" is float32 on CPUs without native bf16 and bfloat16 on CUDA."""
    device: str = "auto"
    """"cpu", "cuda", "cuda:1", ...; "auto" picks CUDA when available."""

    def __post_init__(self) -> None:
        check_choice("model", "dtype", self.dtype, DType)
        if not self.name:
            raise ConfigError("model.name is empty; give an embedded model name or a path")


def build(cls: type[T], data: Any, section: str) -> T:
    """Build dataclass `cls` from a mapping, recursing into nested dataclass fields.

    Raises:
        ConfigError: unknown keys, or a value whose type does not match the field's annotation.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{section}] must be a table of keys, got {type(data).__name__}")
    data = typing.cast(Mapping[str, Any], data)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if unknown := sorted(set(data) - set(known)):
        raise ConfigError(f"[{section}] unknown key(s) {unknown}; known keys: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{section}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"[{section}] {err}") from err


def _coerce(annotation: Any, value: Any, where: str) -> Any:
    """Convert TOML values to the annotated type (tables -> dataclasses, arrays -> tuples)."""
    if dataclasses.is_dataclass(annotation):
        return build(annotation, value, where)  # type: ignore[arg-type]
    origin = get_origin(annotation)
    if origin is types.UnionType:
        options = [a for a in get_args(annotation) if a is not type(None)]
        if value is None and len(options) < len(get_args(annotation)):
            return None
        for option in options:
            try:
                return _coerce(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}={value!r} does not match {annotation}")
    if origin is Literal:
        return value  # __post_init__ names the allowed values
    if origin is tuple and isinstance(value, list | tuple):
        inner = get_args(annotation)
        item = inner[0] if inner else Any
        values = typing.cast(list[Any], value)
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(values))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is Path and isinstance(value, str):
        return Path(value)
    if annotation in (int, float, str, bool) and not _is_exactly(value, annotation):
        raise ConfigError(f"{where}={value!r} is a {type(value).__name__}; expected {annotation.__name__}")
    return value


def _is_exactly(value: Any, annotation: type) -> bool:
    # bool is a subclass of int: `k = true` must not pass as an int.
    return isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))


def load_toml(cls: type[T], path: str | os.PathLike[str], *, overrides: Iterable[str] = ()) -> T:
    """Load `cls` from a TOML file, then apply `--set`-style overrides and validate again."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err
    return apply_overrides(build(cls, raw, Path(path).name), overrides)


def apply_overrides(cfg: T, overrides: Iterable[str]) -> T:
    """Return `cfg` with `a.b=value` overrides applied (value parsed as TOML, else taken as text)."""
    data = config_to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = node[part]
        node[leaf] = _parse_value(raw.strip())
    return build(type(cfg), data, "config")


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict of a config (paths as strings, tuples as lists), as written to config.json."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in typing.cast(list[Any], value)]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in typing.cast(dict[Any, Any], value).items()}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def save_config(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write the resolved config next to an output (atomically), so every result says how it was made."""
    atomic_write_json(path, config_to_dict(cfg))
