"""AdaLN modulation and the gated residual between DiT sub-blocks, in plain PyTorch.

Shapes: ``x``/``y`` are (B, S, D); ``shift``/``scale``/``gate`` are (B, D), shared by every token, or
(B, T, D), one row per frame, where each frame's S/T tokens are contiguous in S.
"""

import torch
import torch.nn.functional as F


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _per_frame(mod: torch.Tensor) -> torch.Tensor:
    """(B, D) or (B, T, D) -> broadcastable against (B, T, S/T, D): one row per frame of tokens."""
    return (mod.unsqueeze(1) if mod.dim() == 2 else mod).unsqueeze(2)


def _frames(x: torch.Tensor, *mods: torch.Tensor) -> torch.Tensor:
    """(B, S, D) -> (B, T, S/T, D) for the most modulation rows per sample among ``mods``."""
    return x.unflatten(1, (max(m.shape[1] if m.dim() == 3 else 1 for m in mods), -1))


def adaln_modulate(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """LayerNorm over the last dim without affine, then ``x_hat * (1 + scale) + shift``."""
    ct = _compute_dtype(x)
    x_hat = _frames(F.layer_norm(x.to(ct), (x.shape[-1],), eps=eps), shift, scale)
    out = x_hat * (1 + _per_frame(scale.to(ct))) + _per_frame(shift.to(ct))
    return out.flatten(1, 2).to(x.dtype)


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
    h = _frames(x.to(ct), gate) + _per_frame(gate.to(ct)) * _frames(y.to(ct), gate)
    h = h.flatten(1, 2)
    return h.to(x.dtype), adaln_modulate(h, shift, scale, eps).to(x.dtype)
