"""2D layers of the Cosmos continuous image tokenizer (CI8x8): an LDM-style conv net on Haar bands.

Names follow Cosmos Tokenizer's ``cosmos_tokenizer/modules/layers2d.py`` so that parameter names are
its checkpoint keys (plain ``nn.Conv2d`` / ``nn.GroupNorm``: ``...conv1.weight``, ``...norm1.weight``).
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from cosmos_kernels import ops
from cosmos_kernels.nn.tokenizer_layers3d import fused_group_norm, haar_levels

Tensor = torch.Tensor


def group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
    """Cosmos's ``Normalize``: GroupNorm(eps 1e-6, affine); its image tokenizers use 32 groups."""
    return nn.GroupNorm(num_groups, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm, SiLU, 3x3 conv, norm, SiLU, dropout, 3x3 conv; plus a 1x1 ``nin_shortcut`` when the
    channel count changes."""

    def __init__(self, in_channels: int, out_channels: int, *, num_groups: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, num_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        # GroupNorm + SiLU in one op; the modules stay plain nn.GroupNorm for the checkpoint keys.
        h = self.conv1(fused_group_norm(self.norm1, x, silu=True))
        h = self.conv2(self.dropout(fused_group_norm(self.norm2, h, silu=True)))
        return self.nin_shortcut(x) + h


class Downsample(nn.Module):
    """Halve H and W: zero-pad right and bottom by one, then a 3x3 stride-2 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double H and W: nearest neighbour, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class AttnBlock(nn.Module):
    """Single-head attention among all H*W positions, 1x1 q/k/v/out projections, pre-norm, residual."""

    def __init__(self, channels: int, *, num_groups: int) -> None:
        super().__init__()
        self.norm = group_norm(channels, num_groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        q, k, v = (rearrange(p(h), "b c h w -> b 1 (h w) c") for p in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(rearrange(out, "b 1 (h w) c -> b c h w", h=x.shape[2]))


class Patcher(nn.Module):
    """Cosmos's 2D ``Patcher`` ("haar"): (B, C, H, W) -> (B, C * p**2, H/p, W/p), no weights or buffers."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.levels = haar_levels(patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return ops.haar2d_analysis(x, levels=self.levels, rescale=True)


class UnPatcher(nn.Module):
    """Cosmos's 2D ``UnPatcher`` ("haar"): the exact inverse of :class:`Patcher`."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.levels = haar_levels(patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return ops.haar2d_synthesis(x, levels=self.levels, rescale=True)
