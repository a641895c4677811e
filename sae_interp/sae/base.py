"""The SAE base class shared by every architecture.

Parameters follow the SAELens layout: `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`,
`b_dec [d_in]` (+ `threshold [d_sae]` for JumpReLU). An architecture only says how pre-activations
become latents (`activate`), what its training loss adds (`_sparsity_losses`) and which constraints
training keeps (`constrain_gradients`, `apply_constraints`); everything else lives here once.

Dtypes: the SAE computes in its own dtype (read from the weights); inputs are cast to it and every
output goes back in the caller's dtype.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from sae_interp.sae.config import SAEConfig
from sae_interp.sae.registry import get_architecture

__all__ = ["SAE", "SAEOutput", "SparseLatents", "TrainStepInputs", "build_sae"]


class SparseLatents(NamedTuple):
    """The nonzero latents of a batch, sorted by (row, latent). All three tensors are [n]."""

    rows: Tensor
    """int64 row of the input batch."""
    latents: Tensor
    """int64 latent index."""
    values: Tensor
    """Activation, in the caller's dtype."""


class TrainStepInputs(NamedTuple):
    """What `SAE.forward` needs, beyond x, to compute training losses."""

    dead_mask: Tensor | None = None
    """[d_sae] bool, latents counted as dead (TopK AuxK loss); None means none are dead."""
    k_aux: int | None = None
    """Latents used by the AuxK loss; None means d_in // 2 (Gao et al.)."""
    bandwidth: float = 0.05
    """Width of the JumpReLU straight-through kernel."""


class SAEOutput(NamedTuple):
    """Result of `SAE.forward`. Loss terms are None unless training inputs were given.

    Loss terms are unweighted; the trainer applies coefficients and warm-ups.
    """

    recon: Tensor
    """[..., d_in] reconstruction, caller's dtype."""
    acts: Tensor
    """[..., d_sae] dense latents, caller's dtype."""
    mse: Tensor | None = None
    """Squared error summed over d_in, mean over rows (SAE dtype)."""
    sparsity: Tensor | None = None
    """standard: sum_i f_i * ||W_dec[i]||; jumprelu: L0 with a straight-through threshold gradient."""
    auxk: Tensor | None = None
    """TopK: AuxK loss of the dead latents on the residual (zero when no latent is dead)."""


class SAE(nn.Module):
    """Sparse autoencoder base class; subclasses register themselves by architecture name."""

    architecture: ClassVar[str] = ""
    """Set by `register_architecture`: the canonical name written to cfg.json."""
    decoder_init_norm: ClassVar[float] = 0.1
    """Norm of each decoder row at initialisation (Anthropic's April 2024 update uses 0.1)."""
    sparsity_coefficient: ClassVar[str] = "l1_coefficient"
    """`TrainConfig` field weighting `SAEOutput.sparsity` for this architecture."""

    W_enc: nn.Parameter
    """[d_in, d_sae]"""
    b_enc: nn.Parameter
    """[d_sae]"""
    W_dec: nn.Parameter
    """[d_sae, d_in]"""
    b_dec: nn.Parameter
    """[d_in]"""

    def __init__(
        self, cfg: SAEConfig, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ):
        super().__init__()
        self.cfg = cfg
        kw = {"device": device, "dtype": dtype}
        w_dec = nn.init.kaiming_uniform_(torch.empty(cfg.d_sae, cfg.d_in, **kw))
        w_dec = w_dec * (self.decoder_init_norm / w_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.T.clone())  # tied at init only
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, **kw))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, **kw))

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    # ---- encoding ------------------------------------------------------------------------------

    def sae_in(self, x: Tensor) -> Tensor:
        """x: [..., d_in] in any dtype -> the encoder's input in the SAE dtype (scaled, b_dec removed)."""
        if x.shape[-1] != self.cfg.d_in:
            raise ValueError(f"SAE expects inputs [..., {self.cfg.d_in}], got {tuple(x.shape)}")
        x = x.to(self.dtype)
        if self.cfg.norm_scaling_factor is not None:
            x = x * self.cfg.norm_scaling_factor
        return x - self.b_dec if self.cfg.apply_b_dec_to_input else x

    def pre_acts(self, x: Tensor) -> Tensor:
        """x: [..., d_in] -> pre-activations [..., d_sae] in the SAE dtype."""
        return self.sae_in(x) @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        """pre-activations [..., d_sae] -> dense latents [..., d_sae] (SAE dtype)."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        """x: [..., d_in] -> dense latents [..., d_sae] in x's dtype."""
        return self.activate(self.pre_acts(x)).to(x.dtype)

    def encode_sparse(self, x: Tensor) -> SparseLatents:
        """x: [N, d_in] -> the nonzero latents, sorted by (row, latent).

        This default builds the dense [N, d_sae] latents; TopK overrides it without doing so.
        """
        if x.ndim != 2:
            raise ValueError(f"encode_sparse expects x [N, d_in], got {tuple(x.shape)}")
        acts = self.activate(self.pre_acts(x))
        rows, latents = acts.nonzero(as_tuple=True)
        return SparseLatents(rows, latents, acts[rows, latents].to(x.dtype))

    # ---- decoding ------------------------------------------------------------------------------

    def _unscale(self, recon: Tensor) -> Tensor:
        """Undo `norm_scaling_factor`, so reconstructions live in the caller's units."""
        return recon if self.cfg.norm_scaling_factor is None else recon / self.cfg.norm_scaling_factor

    def decode(self, acts: Tensor) -> Tensor:
        """acts: [..., d_sae] -> reconstruction [..., d_in] in acts' dtype."""
        return self._unscale(acts.to(self.dtype) @ self.W_dec + self.b_dec).to(acts.dtype)

    # ---- forward and training ------------------------------------------------------------------

    def forward(self, x: Tensor, step: TrainStepInputs | None = None) -> SAEOutput:
        """x: [..., d_in] -> SAEOutput; loss terms are computed only when `step` is given."""
        pre = self.pre_acts(x)
        acts = self.activate(pre)
        recon = self._unscale(acts @ self.W_dec + self.b_dec)
        if step is None:
            return SAEOutput(recon.to(x.dtype), acts.to(x.dtype))
        mse = (recon - x.to(self.dtype)).pow(2).sum(-1).mean()
        sparsity, auxk = self._sparsity_losses(x, pre, acts, recon, step)
        return SAEOutput(recon.to(x.dtype), acts.to(x.dtype), mse, sparsity, auxk)

    def _sparsity_losses(
        self, x: Tensor, pre: Tensor, acts: Tensor, recon: Tensor, step: TrainStepInputs
    ) -> tuple[Tensor | None, Tensor | None]:
        """Architecture-specific loss terms: (sparsity, auxk)."""
        return None, None

    def constrain_gradients(self) -> None:
        """Called after backward, before the optimizer step (e.g. TopK's decoder-row projection)."""

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Called after each optimizer step (e.g. TopK's unit-norm decoder rows)."""

    @classmethod
    def param_shapes(cls, cfg: SAEConfig) -> dict[str, tuple[tuple[int, ...], str]]:
        """Expected tensors: name -> (shape, shape written with dimension names)."""
        return {
            "W_enc": ((cfg.d_in, cfg.d_sae), "[d_in, d_sae]"),
            "b_enc": ((cfg.d_sae,), "[d_sae]"),
            "W_dec": ((cfg.d_sae, cfg.d_in), "[d_sae, d_in]"),
            "b_dec": ((cfg.d_in,), "[d_in]"),
        }


def build_sae(
    cfg: SAEConfig, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> SAE:
    """A freshly initialised SAE of the architecture named in `cfg`."""
    return get_architecture(cfg.architecture)(cfg, device=device, dtype=dtype)
