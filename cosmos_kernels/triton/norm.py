"""GroupNorm + per-channel affine + SiLU, per frame, as Triton kernels and their launchers.

Spec: ``cosmos_kernels/reference/norm.py``. A group spans C/G planes of H*W elements; at 720p a
tokenizer activation has up to 512 channels of 56,320 positions, millions of elements per group, far
more than one program can hold. So the work is cut at planes: in a contiguous (B, C, T, H, W) tensor
plane p = (b * C + c) * T + t is H*W contiguous elements at p * H*W ((B, C, H, W) is the case T = 1),
and no permute copy is needed to normalize each frame alone.

Forward:
- ``_plane_stats_kernel``: one program per plane loops over it in blocks and writes the plane's mean
  and M2 (sum of squared deviations) in fp32, merging its blocks with Chan's formula.
- ``_group_stats_kernel``: one program per (b, group, t) merges its planes with Chan's formula again
  into the group's mean and rstd, which the later kernels look up from the plane's index (in torch,
  ten launches of a few microseconds each between the passes).
- ``_apply_kernel``: grid (plane, block of H*W): ``(x - mean) * rstd * w + b``, SiLU, one write.
Backward (the forward's group statistics passed back in, so x is read twice, not three times):
- ``_plane_grad_sums_kernel``: per plane A = sum(dy_pre) and Bs = sum(dy_pre * x_hat), where
  dy_pre = dy * silu'(z) with z = x_hat * w + b recomputed.
- torch: grad_bias = sum of A and grad_weight = sum of Bs over (b, t); per group, with g = dy_pre * w,
  mean(g) = sum_c w_c A / n and mean(g * x_hat) = sum_c w_c Bs / n.
- ``_grad_x_kernel``: dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)).
Every reduction is a fixed-order sum: results are deterministic, no atomics.

The launchers trust the caller (``cosmos_kernels.ops``): x (and grad_out) contiguous, 4-D or 5-D,
weight and bias (C,) contiguous, one dtype among float32/float16/bfloat16, C divisible by num_groups.
"""

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output

# Elements per loop step of the per-plane reductions: 16 per thread at 8 warps, few loop trips at 720p.
_REDUCE_BLOCK = 4096
_REDUCE_WARPS = 8
# Elements per program of the elementwise passes: one 16-byte vector per thread in bf16 at 4 warps.
# ops/norm.py's MAX_FAST_PLANE (65,535 programs along a plane) counts on this value.
_APPLY_BLOCK = 1024
_APPLY_WARPS = 4


@triton.jit
def _silu_backward(dy, z):
    """dy * d/dz (z * sigmoid(z)) = dy * s * (1 + z * (1 - s))."""
    s = tl.sigmoid(z)
    return dy * s * (1.0 + z * (1.0 - s))


@triton.jit
def _plane_coords(plane, C, T, CG):
    """Channel of plane (b * C + c) * T + t, and the index of its (b, group, t) statistics."""
    t = plane % T
    c = (plane // T) % C
    b = plane // (T * C)
    return c, (b * (C // CG) + c // CG) * T + t


@triton.jit
def _plane_stats_kernel(x_ptr, mean_ptr, m2_ptr, HW, BLOCK: tl.constexpr):
    # int64: B*C*T*H*W passes 2^31 for long 720p clips.
    plane = tl.program_id(0).to(tl.int64)
    base = x_ptr + plane * HW
    offs = tl.arange(0, BLOCK)
    mean = 0.0
    m2 = 0.0
    count = 0.0
    for start in range(0, HW, BLOCK):
        mask = start + offs < HW
        x = tl.load(base + start + offs, mask=mask, other=0.0).to(tl.float32)
        n_block = tl.minimum(HW - start, BLOCK).to(tl.float32)
        mean_block = tl.sum(x, axis=0) / n_block
        # Deviations from the block's own mean: no cancellation between large sums of squares.
        dev = tl.where(mask, x - mean_block, 0.0)
        m2_block = tl.sum(dev * dev, axis=0)
        total = count + n_block
        delta = mean_block - mean
        mean += delta * (n_block / total)
        m2 += m2_block + delta * delta * (count * n_block / total)
        count = total
    tl.store(mean_ptr + plane, mean)
    tl.store(m2_ptr + plane, m2)


@triton.jit
def _group_stats_kernel(
    mean_ptr, m2_ptr, group_mean_ptr, rstd_ptr, C, T, CG, HW, eps, BLOCK_CG: tl.constexpr
):  # fmt: skip
    # Program (b * G + g) * T + t writes entry (b, g, t) of the (B, G, T) outputs.
    pid = tl.program_id(0)
    t = pid % T
    bg = pid // T
    b, g = bg // (C // CG), bg % (C // CG)
    offs = tl.arange(0, BLOCK_CG)
    ok = offs < CG
    planes = (b.to(tl.int64) * C + g * CG + offs) * T + t
    mean = tl.load(mean_ptr + planes, mask=ok, other=0.0)
    m2 = tl.load(m2_ptr + planes, mask=ok, other=0.0)
    # Chan's formula for equal counts: the planes' M2 plus the spread of their means.
    group_mean = tl.sum(mean, axis=0) / CG
    dev = tl.where(ok, mean - group_mean, 0.0)
    group_m2 = tl.sum(m2, axis=0) + HW * tl.sum(dev * dev, axis=0)
    tl.store(group_mean_ptr + pid, group_mean)
    tl.store(rstd_ptr + pid, tl.rsqrt(group_m2 / (CG * HW) + eps))


@triton.jit
def _apply_kernel(
    x_ptr, out_ptr, mean_ptr, rstd_ptr, w_ptr, b_ptr, C, T, CG, HW,
    SILU: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    plane = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < HW
    c, group = _plane_coords(plane, C, T, CG)
    mean = tl.load(mean_ptr + group)
    scale = tl.load(rstd_ptr + group) * tl.load(w_ptr + c).to(tl.float32)
    shift = tl.load(b_ptr + c).to(tl.float32)
    x = tl.load(x_ptr + plane * HW + offs, mask=mask, other=0.0).to(tl.float32)
    z = (x - mean) * scale + shift
    if SILU:
        z = z * tl.sigmoid(z)
    tl.store(out_ptr + plane * HW + offs, z.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _plane_grad_sums_kernel(
    x_ptr, dy_ptr, mean_ptr, rstd_ptr, w_ptr, b_ptr, sum_ptr, sum_xhat_ptr, C, T, CG, HW,
    SILU: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    plane = tl.program_id(0).to(tl.int64)
    c, group = _plane_coords(plane, C, T, CG)
    mean = tl.load(mean_ptr + group)
    rstd = tl.load(rstd_ptr + group)
    w = tl.load(w_ptr + c).to(tl.float32)
    b = tl.load(b_ptr + c).to(tl.float32)
    offs = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    acc_xhat = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, HW, BLOCK):
        mask = start + offs < HW
        x = tl.load(x_ptr + plane * HW + start + offs, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + plane * HW + start + offs, mask=mask, other=0.0).to(tl.float32)
        x_hat = (x - mean) * rstd
        if SILU:
            dy = _silu_backward(dy, x_hat * w + b)
        # Padding has dy = 0, so it adds nothing to either sum although its x_hat is not 0.
        acc += dy
        acc_xhat += dy * x_hat
    tl.store(sum_ptr + plane, tl.sum(acc, axis=0))
    tl.store(sum_xhat_ptr + plane, tl.sum(acc_xhat, axis=0))


@triton.jit
def _grad_x_kernel(
    x_ptr, dy_ptr, dx_ptr, mean_ptr, rstd_ptr, mean_g_ptr, mean_gx_ptr, w_ptr, b_ptr, C, T, CG, HW,
    SILU: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    plane = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < HW
    c, group = _plane_coords(plane, C, T, CG)
    mean = tl.load(mean_ptr + group)
    rstd = tl.load(rstd_ptr + group)
    mean_g = tl.load(mean_g_ptr + group)
    mean_gx = tl.load(mean_gx_ptr + group)
    w = tl.load(w_ptr + c).to(tl.float32)
    b = tl.load(b_ptr + c).to(tl.float32)
    x = tl.load(x_ptr + plane * HW + offs, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(dy_ptr + plane * HW + offs, mask=mask, other=0.0).to(tl.float32)
    x_hat = (x - mean) * rstd
    if SILU:
        dy = _silu_backward(dy, x_hat * w + b)
    dx = rstd * (dy * w - mean_g - x_hat * mean_gx)
    tl.store(dx_ptr + plane * HW + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _geometry(x: torch.Tensor) -> tuple[int, int, int, int]:
    """(B, C, T, H*W) of a (B, C, T, H, W) or (B, C, H, W) tensor; images have T = 1."""
    batch, channels = x.shape[:2]
    frames = x.shape[2] if x.dim() == 5 else 1
    return batch, channels, frames, x.shape[-2] * x.shape[-1]


def _block(limit: int, hw: int) -> int:
    return min(limit, triton.next_power_of_2(hw))


def _group_stats(x: torch.Tensor, num_groups: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 (mean, rstd) of each (b, group, t), each (B, G, T) contiguous."""
    batch, channels, frames, hw = _geometry(x)
    n_planes = batch * channels * frames
    mean, m2 = empty_output((2, n_planes), x, torch.float32)
    _plane_stats_kernel[(n_planes,)](
        x, mean, m2, hw, BLOCK=_block(_REDUCE_BLOCK, hw), num_warps=_REDUCE_WARPS
    )
    channels_per_group = channels // num_groups
    # Two tensors, not one unpacked: the op's outputs must not share storage.
    group_mean, rstd = (empty_output((batch, num_groups, frames), x, torch.float32) for _ in range(2))
    _group_stats_kernel[(batch * num_groups * frames,)](
        mean, m2, group_mean, rstd, channels, frames, channels_per_group, hw, eps,
        BLOCK_CG=triton.next_power_of_2(channels_per_group),
    )  # fmt: skip
    return group_mean, rstd


def group_norm_silu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float, silu: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(``silu(GroupNorm(x) * weight + bias)``, mean, rstd): statistics per (b, group, t), each
    (B, G, T) float32, for the backward; contiguous x."""
    batch, channels, frames, hw = _geometry(x)
    mean, rstd = _group_stats(x, num_groups, eps)
    channels_per_group = channels // num_groups
    out = empty_output(x.shape, x)
    block = _block(_APPLY_BLOCK, hw)
    _apply_kernel[(batch * channels * frames, triton.cdiv(hw, block))](
        x, out, mean, rstd, weight, bias, channels, frames, channels_per_group, hw,
        SILU=silu, BLOCK=block, num_warps=_APPLY_WARPS,
    )  # fmt: skip
    return out, mean, rstd


def group_norm_silu_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    silu: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_weight, grad_bias) from the forward's (B, G, T) statistics; grad_out contiguous."""
    batch, channels, frames, hw = _geometry(x)
    n_planes = batch * channels * frames
    num_groups = mean.shape[1]
    channels_per_group = channels // num_groups
    sums = empty_output((2, n_planes), x, torch.float32)
    _plane_grad_sums_kernel[(n_planes,)](
        x, grad_out, mean, rstd, weight, bias, sums[0], sums[1], channels, frames, channels_per_group, hw,
        SILU=silu, BLOCK=_block(_REDUCE_BLOCK, hw), num_warps=_REDUCE_WARPS,
    )  # fmt: skip
    sums = sums.view(2, batch, channels, frames)
    # Two sums, not one unpacked: the op's outputs must not share storage.
    grad_bias, grad_weight = sums[0].sum((0, 2)), sums[1].sum((0, 2))
    # Group means of g = dy_pre * w and of g * x_hat, from the channel sums weighted by w.
    per_group = (2, batch, num_groups, channels_per_group, frames)
    weighted = (sums * weight.float().view(1, 1, channels, 1)).view(per_group)
    mean_g, mean_gx = weighted.sum(3) / (channels_per_group * hw)
    grad_x = empty_output(x.shape, x)
    block = _block(_APPLY_BLOCK, hw)
    _grad_x_kernel[(n_planes, triton.cdiv(hw, block))](
        x, grad_out, grad_x, mean, rstd, mean_g, mean_gx,
        weight, bias, channels, frames, channels_per_group, hw,
        SILU=silu, BLOCK=block, num_warps=_APPLY_WARPS,
    )  # fmt: skip
    return grad_x, grad_weight.to(weight.dtype), grad_bias.to(bias.dtype)
