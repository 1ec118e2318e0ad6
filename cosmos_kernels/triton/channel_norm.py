"""RMS norm over channels + per-channel affine + SiLU (the Wan VAE's norm), Triton kernel and launcher.

Spec: ``cosmos_kernels/reference/channel_norm.py``. In a contiguous (B, C, P) view (P: the positions,
T*H*W) the C values of one position lie P elements apart, and neighbouring positions are adjacent. So
a program takes BLOCK_P adjacent positions of one sample and walks the channels in tiles of
(BLOCK_C, BLOCK_P), whose rows are coalesced loads: a first walk sums the squares per position, a
second normalizes, applies the affine and SiLU and writes. x is read twice and the output written
once; at the Wan VAE's widths (up to 384 channels) the second read mostly hits L2.

The launcher trusts the caller (``cosmos_kernels.ops``): x contiguous, weight (C,) and bias (C,)
contiguous in x's dtype, one of float32/float16/bfloat16.
"""

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output

# Adjacent positions per program: 128 x 2-byte = one 256-byte row segment per channel in bf16.
_BLOCK_P = 128
# Channels per tile: 32 x 128 fp32 values in flight per walk step at 4 warps (32 per thread).
_BLOCK_C = 32


@triton.jit
def _rms_norm_channels_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    C,
    P,
    scale,
    eps,
    HAS_BIAS: tl.constexpr,
    SILU: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    sample = tl.program_id(1)
    positions = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    in_p = positions < P
    base = sample.to(tl.int64) * C * P
    squares = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        channels = c0 + tl.arange(0, BLOCK_C)
        mask = (channels[:, None] < C) & in_p[None, :]
        offsets = base + channels[:, None].to(tl.int64) * P + positions[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        squares += tl.sum(x * x, axis=0)
    # F.normalize: x / max(||x||, eps); times sqrt(C) makes it x / RMS.
    inv = scale / tl.maximum(tl.sqrt(squares), eps)
    for c0 in range(0, C, BLOCK_C):
        channels = c0 + tl.arange(0, BLOCK_C)
        in_c = channels < C
        mask = in_c[:, None] & in_p[None, :]
        offsets = base + channels[:, None].to(tl.int64) * P + positions[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + channels, mask=in_c, other=0.0).to(tl.float32)
        z = x * inv[None, :] * w[:, None]
        if HAS_BIAS:
            z += tl.load(b_ptr + channels, mask=in_c, other=0.0).to(tl.float32)[:, None]
        if SILU:
            z = z * tl.sigmoid(z)
        tl.store(out_ptr + offsets, z.to(out_ptr.dtype.element_ty), mask=mask)


def rms_norm_channels_silu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float, silu: bool
) -> torch.Tensor:
    batch, channels = x.shape[:2]
    positions = x[0, 0].numel()
    out = empty_output(x.shape, x)
    grid = (triton.cdiv(positions, _BLOCK_P), batch)
    _rms_norm_channels_kernel[grid](
        x,
        weight,
        weight if bias is None else bias,
        out,
        channels,
        positions,
        channels**0.5,
        eps,
        HAS_BIAS=bias is not None,
        SILU=silu,
        BLOCK_C=_BLOCK_C,
        BLOCK_P=_BLOCK_P,
        num_warps=4,
    )
    return out
