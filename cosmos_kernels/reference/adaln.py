"""AdaLN modulation and the gated residual between DiT sub-blocks, in plain PyTorch.

Shapes: ``x``/``y`` are (B, S, D); ``shift``/``scale``/``gate`` are (B, D), shared by every token, or
(B, T, D), one row per frame, where each frame's S/T tokens are contiguous in S.
"""

import torch
import torch.nn.functional as F


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _per_token(mod: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(B, D) or (B, T, D) -> (B, S, D), each frame's row repeated over its S/T tokens."""
    if mod.dim() == 2:
        mod = mod.unsqueeze(1)
    return mod.repeat_interleave(seq_len // mod.shape[1], dim=1)


def adaln_modulate(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """LayerNorm over the last dim without affine, then ``x_hat * (1 + scale) + shift``."""
    ct = _compute_dtype(x)
    x_hat = F.layer_norm(x.to(ct), (x.shape[-1],), eps=eps)
    seq_len = x.shape[1]
    out = x_hat * (1 + _per_token(scale.to(ct), seq_len)) + _per_token(shift.to(ct), seq_len)
    return out.to(x.dtype)


def gated_residual_adaln(
    x: torch.Tensor,
    y: torch.Tensor,
    gate: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``h = x + gate * y`` and ``adaln_modulate(h, shift, scale)``; the modulation sees h before rounding."""
    ct = _compute_dtype(x)
    h = x.to(ct) + _per_token(gate.to(ct), x.shape[1]) * y.to(ct)
    return h.to(x.dtype), adaln_modulate(h, shift, scale, eps).to(x.dtype)
