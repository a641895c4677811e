"""Each architecture's defining property, shapes, dtypes, encode_sparse and the registry."""

from __future__ import annotations

import pytest
import torch

from sae_interp.sae import (
    ARCHITECTURES,
    SAE,
    JumpReLUSAE,
    SAEConfig,
    SAEMetadata,
    StandardSAE,
    TopKSAE,
    build_sae,
    register_architecture,
)

ARCHS = [("standard", None), ("topk", 8), ("jumprelu", None)]


def _sae(arch: str, k: int | None, dtype: torch.dtype = torch.float32, **kw) -> SAE:
    return build_sae(SAEConfig(d_in=16, d_sae=64, architecture=arch, k=k, **kw), dtype=dtype)


@pytest.mark.parametrize(("arch", "k"), ARCHS)
def test_shapes_and_caller_dtype(arch: str, k: int | None) -> None:
    sae = _sae(arch, k)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    acts, out = sae.encode(x), sae(x)
    assert acts.shape == (2, 5, 64) and acts.dtype == torch.float64
    assert out.recon.shape == (2, 5, 16) and out.recon.dtype == torch.float64
    assert out.mse is None and out.sparsity is None and out.auxk is None
    assert sae.decode(acts).shape == (2, 5, 16)
    torch.testing.assert_close(sae.decode(acts), out.recon)
    with pytest.raises(ValueError, match=r"\[\.\.\., 16\]"):
        sae.encode(torch.randn(3, 15))


def test_relu_alias_builds_standard_and_saves_canonical_name() -> None:
    sae = build_sae(SAEConfig(d_in=4, d_sae=8, architecture="relu"))
    assert isinstance(sae, StandardSAE)
    assert sae.cfg.to_dict()["architecture"] == "standard"


def test_standard_is_relu_of_affine_map() -> None:
    sae = _sae("standard", None)
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    x = torch.randn(32, 16)
    acts = sae.encode(x)
    assert (acts >= 0).all() and (acts == 0).any() and (acts > 0).any()
    torch.testing.assert_close(acts, ((x - sae.b_dec) @ sae.W_enc + sae.b_enc).relu())


def test_topk_exactly_k_nonzeros_when_preacts_positive() -> None:
    sae = _sae("topk", 8)
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every pre-activation positive
    acts = sae.encode(torch.randn(32, 16))
    assert ((acts != 0).sum(-1) == 8).all()


def test_topk_keeps_the_largest_preacts() -> None:
    sae = _sae("topk", 4)
    x = torch.randn(8, 16)
    pre, acts = sae.pre_acts(x), sae.encode(x)
    kth = pre.topk(4, dim=-1).values[:, -1:]
    assert ((acts > 0) <= (pre >= kth)).all()
    torch.testing.assert_close(acts[acts > 0], pre[acts > 0])


def test_jumprelu_zeroes_below_threshold() -> None:
    sae = _sae("jumprelu", None)
    with torch.no_grad():
        sae.threshold.uniform_(0.05, 0.2)
    x = torch.randn(64, 16)
    pre, acts = sae.pre_acts(x), sae.encode(x)
    assert (acts[pre <= sae.threshold] == 0).all()
    above = pre > sae.threshold
    assert above.any() and (pre[~above] > 0).any()  # some positive pre-activations were cut
    torch.testing.assert_close(acts[above], pre[above])


def test_topk_rescale_acts_by_decoder_norm_ranks_by_scaled_preacts() -> None:
    sae = _sae("topk", 4, rescale_acts_by_decoder_norm=True)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(64, 1) * 3 + 0.1)
    x = torch.randn(8, 16)
    raw = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    scaled = raw * sae.W_dec.norm(dim=1)
    acts = sae.encode(x)
    torch.testing.assert_close(acts[acts > 0], scaled[acts > 0])
    torch.testing.assert_close(sae.decode(acts), (acts / sae.W_dec.norm(dim=1)) @ sae.W_dec + sae.b_dec)
    torch.testing.assert_close(sae(x).recon, sae.decode(acts))


@pytest.mark.parametrize(("arch", "k"), ARCHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_encode_sparse_equals_dense_nonzeros(arch: str, k: int | None, dtype: torch.dtype) -> None:
    sae = _sae(arch, k, dtype)
    x = torch.randn(40, 16)
    dense = sae.encode(x)
    sparse = sae.encode_sparse(x)
    rows, latents = dense.nonzero(as_tuple=True)
    assert len(rows) > 40
    assert torch.equal(sparse.rows, rows) and torch.equal(sparse.latents, latents)
    assert sparse.rows.dtype == torch.int64 and sparse.latents.dtype == torch.int64
    assert sparse.values.dtype == torch.float32
    torch.testing.assert_close(sparse.values, dense[rows, latents])


def test_topk_encode_sparse_drops_nonpositive_topk_values() -> None:
    sae = _sae("topk", 8)
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)
        sae.b_enc[:3] = 100.0  # only 3 latents can be positive
    sparse = sae.encode_sparse(torch.randn(5, 16))
    assert torch.equal(sparse.latents, torch.arange(3).repeat(5))
    assert torch.equal(sparse.rows, torch.arange(5).repeat_interleave(3))


def test_bfloat16_sae_casts_inputs_and_returns_caller_dtype() -> None:
    sae = _sae("topk", 8, torch.bfloat16)
    assert sae.dtype == torch.bfloat16 and sae.device.type == "cpu"
    out = sae(torch.randn(4, 16))
    assert out.recon.dtype == torch.float32 and out.acts.dtype == torch.float32


def test_norm_scaling_factor_scales_inputs_and_unscales_recon() -> None:
    plain = _sae("standard", None)
    scaled = build_sae(
        SAEConfig(
            d_in=16,
            d_sae=64,
            architecture="standard",
            normalize_activations="expected_average_only_in",
            norm_scaling_factor=2.0,
        )
    )
    scaled.load_state_dict(plain.state_dict())
    x = torch.randn(8, 16)
    torch.testing.assert_close(scaled.encode(x), plain.encode(2 * x))
    torch.testing.assert_close(scaled(x).recon, plain(2 * x).recon / 2)


def test_registry_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_architecture("topk")
        class Again(TopKSAE):
            pass

    assert ARCHITECTURES["topk"] is TopKSAE and ARCHITECTURES["jumprelu"] is JumpReLUSAE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "topk"}, "k=None"),
        ({"architecture": "topk", "k": 65}, "k=65"),
        ({"architecture": "standard", "k": 4}, "only valid for architecture 'topk'"),
        ({"architecture": "gated"}, "architecture='gated'"),
        ({"architecture": "standard", "normalize_activations": "layer_norm"}, "normalize_activations"),
        (
            {"architecture": "standard", "normalize_activations": "expected_average_only_in"},
            "norm_scaling_factor",
        ),
        ({"architecture": "standard", "d_sae": 0}, "d_sae=0"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SAEConfig(**{"d_in": 16, "d_sae": 64, **kwargs})


def test_metadata_for_layer_and_roundtrip() -> None:
    meta = SAEMetadata.for_layer(13, model_name="m", provenance={"gguf_sha256": "ab"}, extra={"note": 1})
    assert meta.hook_name == "blocks.13.hook_resid_pre" and meta.module_path == "model.layers.13"
    assert SAEMetadata.from_dict(meta.to_dict()) == SAEMetadata(
        **{**meta.__dict__, "extra": {"note": 1, "sae_lens_version": "6.0.0"}}
    )
