"""Config building: strict keys, type checks, nested sections, overrides re-validated."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from sae_interp.config import (
    ConfigError,
    ModelConfig,
    apply_overrides,
    build,
    check_choice,
    config_to_dict,
    load_toml,
    save_config,
)

Arch = Literal["topk", "relu"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inner:
    arch: Arch = "topk"
    k: int = 32
    lr: float = 1e-3
    layers: tuple[int, ...] = (13,)
    out: Path | None = None

    def __post_init__(self) -> None:
        check_choice("inner", "arch", self.arch, Arch)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outer:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_toml_builds_nested_frozen_configs(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nname = "gemma-3-270m"\n[inner]\nk = 8\nlr = 1\nlayers = [3, 4]\nout = "x/y"\n')
    cfg = load_toml(Outer, path)
    assert cfg.model.name == "gemma-3-270m" and cfg.inner == Inner(
        k=8, lr=1.0, layers=(3, 4), out=Path("x/y")
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.inner.k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[inner]\nkk = 8\n", r"\[run.toml.inner\] unknown key\(s\) \['kk'\]; known keys"),
        ("[inner]\nk = '8'\n", r"run.toml.inner.k='8' is a str; expected int"),
        ("[inner]\nk = true\n", r"inner.k=True is a bool; expected int"),
        ("[inner]\narch = 'gated'\n", r"inner.arch='gated'; expected one of \('topk', 'relu'\)"),
        ("[model]\ndtype = 'fp8'\n", r"model.dtype='fp8'; expected one of"),
        ("inner = 3\n", r"\[run.toml.inner\] must be a table"),
        ("[inner\n", r"is not valid TOML"),
    ],
)
def test_bad_values_give_one_clear_message(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_toml(Outer, path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(Outer, tmp_path / "nope.toml")


def test_overrides_are_parsed_and_validated_again():
    cfg = apply_overrides(Outer(), ["inner.k=64", "model.name=gemma-3-270m", "inner.layers=[1, 2]"])
    assert cfg.inner.k == 64 and cfg.model.name == "gemma-3-270m" and cfg.inner.layers == (1, 2)
    with pytest.raises(ConfigError, match=r"inner.arch='nope'"):
        apply_overrides(Outer(), ["inner.arch=nope"])
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides(Outer(), ["inner.k"])
    with pytest.raises(ConfigError, match="'nosuch' is not a section"):
        apply_overrides(Outer(), ["nosuch.k=1"])


def test_round_trip_through_config_json(tmp_path):
    cfg = Outer(inner=Inner(out=Path("a/b"), layers=(1, 2)))
    save_config(cfg, tmp_path / "config.json")
    import json

    data = json.loads((tmp_path / "config.json").read_text())
    assert data == config_to_dict(cfg) and data["inner"]["out"] == "a/b"
    assert build(Outer, data, "config.json") == cfg
