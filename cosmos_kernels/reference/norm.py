"""GroupNorm with a per-channel affine and an optional SiLU, per frame for video, in plain PyTorch.

Shapes: ``x`` is (B, C, T, H, W), normalized per (sample, frame, group) over (C/G, H, W) so that frames
never mix (the causal video tokenizer's norm), or (B, C, H, W), per (sample, group) over (C/G, H, W)
(``torch.nn.GroupNorm``). ``weight``/``bias`` are (C,).
"""

import torch
import torch.nn.functional as F


def group_norm_silu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    num_groups: int = 1,
    eps: float = 1e-6,
    silu: bool = True,
) -> torch.Tensor:
    """``silu(x_hat * weight + bias)`` (no SiLU when ``silu`` is False), statistics per frame and group."""
    ct = torch.float64 if x.dtype == torch.float64 else torch.float32
    # (B, C, [T,] H, W) -> (B, G, C/G, [T,] H, W); reduce over channels-in-group and the plane.
    groups = x.to(ct).unflatten(1, (num_groups, -1))
    dims = (2, 4, 5) if x.dim() == 5 else (2, 3, 4)
    var, mean = torch.var_mean(groups, dim=dims, correction=0, keepdim=True)
    x_hat = ((groups - mean) * torch.rsqrt(var + eps)).flatten(1, 2)
    per_channel = (-1,) + (1,) * (x.dim() - 2)
    out = x_hat * weight.to(ct).view(per_channel) + bias.to(ct).view(per_channel)
    return (F.silu(out) if silu else out).to(x.dtype)
