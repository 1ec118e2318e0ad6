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
    # Each frame of a video is its own GroupNorm sample: (B, C, T, H, W) -> (B*T, C, H, W). PyTorch's
    # native GroupNorm keeps the CPU path (tests, CPU training) fast.
    frames = x.to(ct).transpose(1, 2).flatten(0, 1) if x.dim() == 5 else x.to(ct)
    out = F.group_norm(frames, num_groups, weight.to(ct), bias.to(ct), eps)
    out = F.silu(out) if silu else out
    if x.dim() == 5:
        out = out.unflatten(0, (x.shape[0], x.shape[2])).transpose(1, 2)
    return out.to(x.dtype)
