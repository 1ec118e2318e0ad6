"""RMS norm over the channels of each position, with a per-channel affine and an optional SiLU, in
plain PyTorch: the norm of the Wan VAE (Cosmos Predict2/2.5's tokenizer in diffusers).

``x`` is (B, C, *positions), channel-first; each position's C values are divided by their L2 norm
(floored at ``eps``, as ``F.normalize``) and multiplied by sqrt(C), i.e. divided by their RMS.
``weight``/``bias`` are (C,).
"""

import torch
import torch.nn.functional as F


def rms_norm_channels_silu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    eps: float = 1e-12,
    silu: bool = True,
) -> torch.Tensor:
    """``silu(x / max(||x||_C, eps) * sqrt(C) * weight + bias)`` (no SiLU when ``silu`` is False)."""
    ct = torch.float64 if x.dtype == torch.float64 else torch.float32
    channels = x.shape[1]
    per_channel = (channels,) + (1,) * (x.dim() - 2)
    out = F.normalize(x.to(ct), dim=1, eps=eps) * channels**0.5 * weight.to(ct).view(per_channel)
    if bias is not None:
        out = out + bias.to(ct).view(per_channel)
    out = F.silu(out) if silu else out
    return out.to(x.dtype)
