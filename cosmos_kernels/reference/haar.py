"""3D and 2D Haar wavelet packet transforms as Cosmos's tokenizer patcher computes them.

Each level filters along one axis at a time with the Haar pair L = (a + b)/sqrt2, H = (a - b)/sqrt2
and transforms every channel, so channels multiply by 8 (3D) or 4 (2D) per level. 3D filters time,
then height, then width and orders the bands LLL, LLH, ..., HHH (letters: time, height, width); 2D
filters width, then height and orders LL, LH, HL, HH (width letter first). The band is the outer
channel index: after one level channel = band * C + c, after two band2 * 8C + band1 * C + c.

``causal=True`` (3D) repeats the first frame 2**levels times before the transform, so a video of
1 + k * 2**levels frames gives 1 + k output frames and no output frame sees a later input frame;
synthesis drops the repeated frames again. ``rescale=True`` divides each level by 2*sqrt2 (3D) or 2
(2D) as the Cosmos tokenizer does, making the all-low band the block mean.
"""

import math

import torch

_SQRT2 = math.sqrt(2.0)
_TIME, _HEIGHT, _WIDTH = 2, 3, 4


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _split_pairs(x: torch.Tensor, dim: int) -> list[torch.Tensor]:
    even, odd = x.unflatten(dim, (-1, 2)).unbind(dim + 1)
    return [(even + odd) / _SQRT2, (even - odd) / _SQRT2]


def _merge_pairs(low: torch.Tensor, high: torch.Tensor, dim: int) -> torch.Tensor:
    even, odd = (low + high) / _SQRT2, (low - high) / _SQRT2
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


def _analysis_level(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    bands = [x]
    for dim in dims:
        bands = [part for band in bands for part in _split_pairs(band, dim)]
    return torch.cat(bands, dim=1)


def _synthesis_level(y: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    bands = list(y.chunk(2 ** len(dims), dim=1))
    for dim in reversed(dims):
        bands = [_merge_pairs(bands[i], bands[i + 1], dim) for i in range(0, len(bands), 2)]
    return bands[0]


def haar3d_analysis(
    x: torch.Tensor, levels: int = 1, causal: bool = True, rescale: bool = False
) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C * 8**levels, T', H / 2**levels, W / 2**levels)."""
    out = x.to(_compute_dtype(x))
    if causal:
        first = out[:, :, :1].expand(-1, -1, 2**levels - 1, -1, -1)
        out = torch.cat([first, out], dim=2)
    for _ in range(levels):
        out = _analysis_level(out, (_TIME, _HEIGHT, _WIDTH))
        if rescale:
            out = out / (2 * _SQRT2)
    return out.to(x.dtype)


def haar3d_synthesis(
    y: torch.Tensor, levels: int = 1, causal: bool = True, rescale: bool = False
) -> torch.Tensor:
    """Inverse of :func:`haar3d_analysis` with the same arguments."""
    out = y.to(_compute_dtype(y))
    for _ in range(levels):
        out = _synthesis_level(out, (_TIME, _HEIGHT, _WIDTH))
        if rescale:
            out = out * (2 * _SQRT2)
    if causal:
        out = out[:, :, 2**levels - 1 :]
    return out.to(y.dtype)


def haar2d_analysis(x: torch.Tensor, levels: int = 1, rescale: bool = False) -> torch.Tensor:
    """(B, C, H, W) -> (B, C * 4**levels, H / 2**levels, W / 2**levels)."""
    out = x.to(_compute_dtype(x))
    for _ in range(levels):
        out = _analysis_level(out, (_WIDTH - 1, _HEIGHT - 1))
        if rescale:
            out = out / 2
    return out.to(x.dtype)


def haar2d_synthesis(y: torch.Tensor, levels: int = 1, rescale: bool = False) -> torch.Tensor:
    """Inverse of :func:`haar2d_analysis` with the same arguments."""
    out = y.to(_compute_dtype(y))
    for _ in range(levels):
        out = _synthesis_level(out, (_WIDTH - 1, _HEIGHT - 1))
        if rescale:
            out = out * 2
    return out.to(y.dtype)
