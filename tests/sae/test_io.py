"""Save/load round trips, reading real SAELens and sparsify folders, and clear load errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sae_interp.sae import SAEConfig, SAEMetadata, build_sae
from sae_interp.sae.constants import CFG_FILENAME, SAELENS_WEIGHTS_FILENAME
from sae_interp.sae.io import load_sae, save_sae

ARCHS = [("standard", None), ("topk", 8), ("jumprelu", None)]


def _random_sae(arch: str, k: int | None, dtype: torch.dtype = torch.float32, **kw):
    meta = SAEMetadata.for_layer(3, model_name="tiny", context_size=64, provenance={"transformers": "5.19"})
    sae = build_sae(SAEConfig(d_in=16, d_sae=64, architecture=arch, k=k, metadata=meta, **kw), dtype=dtype)
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return sae


@pytest.mark.parametrize(("arch", "k"), ARCHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_save_load_same_outputs_and_dtype(
    tmp_path: Path, arch: str, k: int | None, dtype: torch.dtype
) -> None:
    sae = _random_sae(arch, k, dtype)
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert type(loaded) is type(sae) and loaded.dtype == dtype
    assert loaded.cfg == sae.cfg.__class__(**{**sae.cfg.__dict__, "metadata": loaded.cfg.metadata})
    assert loaded.cfg.metadata.hook_name == "blocks.3.hook_resid_pre"
    assert loaded.cfg.metadata.provenance == {"transformers": "5.19"}
    x = torch.randn(32, 16)
    a, b = sae(x), loaded(x)
    assert torch.equal(a.acts, b.acts) and torch.equal(a.recon, b.recon)
    assert not list(tmp_path.glob(".tmp-*"))


def test_saved_cfg_matches_saelens_layout(tmp_path: Path, interop_dir: Path) -> None:
    save_sae(_random_sae("topk", 8), tmp_path / "sae")
    ours = json.loads((tmp_path / "sae" / CFG_FILENAME).read_text())
    theirs = json.loads((interop_dir / "saelens" / "topk" / CFG_FILENAME).read_text())
    # every top-level key SAELens needs to rebuild a topk SAE, with the same types
    for key in (
        "architecture",
        "d_in",
        "d_sae",
        "dtype",
        "apply_b_dec_to_input",
        "normalize_activations",
        "k",
    ):
        assert type(ours[key]) is type(theirs[key]), key
    assert ours["dtype"] == "float32" and ours["architecture"] == "topk"
    assert ours["metadata"]["hook_name"] == "blocks.3.hook_resid_pre"
    assert ours["metadata"]["sae_lens_version"].startswith("6.")
    assert set(load_file(tmp_path / "sae" / SAELENS_WEIGHTS_FILENAME)) == {"W_enc", "b_enc", "W_dec", "b_dec"}


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    sae = _random_sae("standard", None)
    save_sae(sae, tmp_path / "sae")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_sae(sae, tmp_path / "sae")
    save_sae(sae, tmp_path / "sae", overwrite=True)


def test_norm_scaling_factor_is_folded_on_save(tmp_path: Path) -> None:
    sae = _random_sae(
        "jumprelu", None, normalize_activations="expected_average_only_in", norm_scaling_factor=3.0
    )
    save_sae(sae, tmp_path / "sae")
    assert json.loads((tmp_path / "sae" / CFG_FILENAME).read_text())["normalize_activations"] == "none"
    loaded = load_sae(tmp_path / "sae")
    x = torch.randn(32, 16)
    torch.testing.assert_close(loaded(x).recon, sae(x).recon)
    torch.testing.assert_close(loaded(x).acts, sae(x).acts)


@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu"])
def test_reads_saelens_fixture(interop_dir: Path, arch: str) -> None:
    sae = load_sae(interop_dir / "saelens" / arch)
    assert sae.cfg.architecture == arch and sae.dtype == torch.float32
    assert sae.cfg.metadata.model_name == "tiny_llama" and sae.cfg.metadata.context_size == 64
    expected = load_file(interop_dir / "expected" / f"saelens_{arch}_expected.safetensors")
    for name in ("real", "rand"):
        out = sae(expected[f"x_{name}"])
        torch.testing.assert_close(out.acts, expected[f"acts_{name}"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.recon, expected[f"recon_{name}"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            sae.decode(expected[f"acts_{name}"]), expected[f"recon_{name}"], atol=1e-5, rtol=1e-5
        )


def test_reads_sparsify_fixture(interop_dir: Path) -> None:
    sae = load_sae(interop_dir / "sparsify" / "layers.1")
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 8 and sae.cfg.d_sae == 256
    expected = load_file(interop_dir / "expected" / "sparsify_expected.safetensors")
    for name in ("real", "rand"):
        out = sae(expected[f"x_{name}"])
        torch.testing.assert_close(out.acts, expected[f"acts_{name}"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.recon, expected[f"recon_{name}"], atol=1e-5, rtol=1e-5)


def test_saelens_fixture_survives_our_save(tmp_path: Path, interop_dir: Path) -> None:
    sae = load_sae(interop_dir / "saelens" / "jumprelu")
    save_sae(sae, tmp_path / "again")
    again = load_sae(tmp_path / "again")
    assert again.cfg.metadata.extra["training_architecture"] == "jumprelu"
    x = load_file(interop_dir / "expected" / "saelens_jumprelu_expected.safetensors")["x_real"]
    assert torch.equal(again(x).recon, sae(x).recon)


@pytest.fixture
def copied(tmp_path: Path, interop_dir: Path) -> Path:
    return Path(shutil.copytree(interop_dir / "saelens" / "topk", tmp_path / "topk"))


def _rewrite_weights(folder: Path, edit) -> Path:
    weights = folder / SAELENS_WEIGHTS_FILENAME
    state = load_file(weights)
    edit(state)
    save_file(state, weights)
    return weights


def test_missing_tensor_error_names_file_tensor_and_shape(copied: Path) -> None:
    weights = _rewrite_weights(copied, lambda s: s.pop("b_enc"))
    with pytest.raises(ValueError, match=r"missing tensor 'b_enc' \[d_sae\]=\[256\]") as err:
        load_sae(copied)
    assert str(weights) in str(err.value)


def test_wrong_shape_error(copied: Path) -> None:
    def transpose(s):
        s["W_enc"] = s["W_enc"].T.contiguous()

    _rewrite_weights(copied, transpose)
    with pytest.raises(
        ValueError, match=r"tensor 'W_enc' has shape \[256, 64\], expected \[d_in, d_sae\]=\[64, 256\]"
    ):
        load_sae(copied)


def test_extra_tensor_error(copied: Path) -> None:
    def add(s):
        s["threshold"] = torch.zeros(256)

    _rewrite_weights(copied, add)
    with pytest.raises(ValueError, match=r"unexpected tensor 'threshold'"):
        load_sae(copied)


def test_missing_cfg_error(copied: Path) -> None:
    (copied / CFG_FILENAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"cfg\.json: missing"):
        load_sae(copied)


def test_missing_folder_and_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_sae(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"sae_weights\.safetensors"):
        load_sae(tmp_path / "empty")


def test_unsupported_normalisation_errors(copied: Path) -> None:
    cfg = json.loads((copied / CFG_FILENAME).read_text())
    (copied / CFG_FILENAME).write_text(
        json.dumps({**cfg, "normalize_activations": "expected_average_only_in"})
    )
    with pytest.raises(ValueError, match="norm_scaling_factor"):
        load_sae(copied)
    assert load_sae(copied, norm_scaling_factor=2.0).cfg.norm_scaling_factor == 2.0
    (copied / CFG_FILENAME).write_text(json.dumps({**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(ValueError, match=r"cfg\.json: normalize_activations='layer_norm'"):
        load_sae(copied)


@pytest.mark.anchors
def test_saelens_loads_our_file(tmp_path: Path) -> None:
    """Cross-check with SAELens itself where it is installed (the anchors' venv)."""
    sae_lens = pytest.importorskip("sae_lens")
    for arch, k in ARCHS:
        sae = _random_sae(arch, k)
        save_sae(sae, tmp_path / arch)
        theirs = sae_lens.SAE.load_from_disk(str(tmp_path / arch))
        x = torch.randn(16, 16)
        torch.testing.assert_close(theirs.encode(x), sae.encode(x))
        torch.testing.assert_close(theirs.decode(theirs.encode(x)), sae(x).recon)
