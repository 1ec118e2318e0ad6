"""The attention prologue as one memory-bound pass per tensor: per-head RMSNorm, then rotate-half RoPE.

Spec: ``cosmos_kernels/reference/attention.py`` (``attention_prologue``). Each program takes a block of
token rows of one batch element and walks all heads of those rows: the RoPE tables (S, D/2) and the
norm weight are loaded once per row block and reused for every head (one program per head swept the
tables through L2 once per head), and the rows it reads are whole (H * D contiguous elements).

The head dim is handled as two halves because rotate-half RoPE pairs dim i with dim i + D/2. Math in
fp32, rounded once to the input dtype. The backward writes per-program fp32 partials of the norm-weight
gradient that torch sums in a fixed order (deterministic, no atomics).

One tile serves every shape, not an autotuned set: no candidate tile beat it on an H100, where the pass
runs near copy bandwidth (benchmarks/RESULTS.md).

The launchers trust the caller (``cosmos_kernels.ops``): x (B, S, H, D) with unit stride in D; D even;
weight (D,) contiguous or None; cos/sin (S, D/2) float32 with unit stride in the last dim, or None.
"""

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output
from cosmos_kernels._backend import triton_interpreter_enabled
from cosmos_kernels.triton.layout import bshd_strides

_INTERPRET = triton_interpreter_enabled()
# 32 rows keep the fp32 tables and one head's halves of a block in registers up to D = 256 at 4 warps;
# 56,320 tokens make 1,760 programs, over 13 per SM. The interpreter takes 8 so that test shapes span
# several blocks.
_ROWS = 8 if _INTERPRET else 32
_WARPS = 4


@triton.jit
def _load_halves(ptr, offs, mask, HALF: tl.constexpr):
    """The two halves [.., :HALF] and [.., HALF:] at ptr + offs, in fp32."""
    x1 = tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(ptr + offs + HALF, mask=mask, other=0.0).to(tl.float32)
    return x1, x2


@triton.jit
def _load_tables(cos_ptr, sin_ptr, rows, offs_h, mask, stride_cs, stride_ss):
    c = tl.load(cos_ptr + (rows * stride_cs)[:, None] + offs_h[None, :], mask=mask, other=0.0)
    s = tl.load(sin_ptr + (rows * stride_ss)[:, None] + offs_h[None, :], mask=mask, other=0.0)
    return c, s


@triton.jit
def _rstd(x1, x2, eps, HALF: tl.constexpr):
    # Padded columns are 0 and do not count: the mean is over the true D = 2 * HALF.
    return tl.rsqrt((tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / (2 * HALF) + eps)


@triton.jit
def _prologue_fwd_kernel(
    x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr,
    stride_xb, stride_xs, stride_xh, stride_ob, stride_os, stride_oh, stride_cs, stride_ss,
    H, S, eps,
    HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr,
    BLOCK_S: tl.constexpr, BLOCK_HALF: tl.constexpr,
):  # fmt: skip
    pid_s, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_h = tl.arange(0, BLOCK_HALF)
    mask = (rows < S)[:, None] & (offs_h < HALF)[None, :]
    if NORM:
        w1, w2 = _load_halves(w_ptr, offs_h[None, :], (offs_h < HALF)[None, :], HALF)
    if ROPE:
        c, s = _load_tables(cos_ptr, sin_ptr, rows, offs_h, mask, stride_cs, stride_ss)
    x_rows = x_ptr + b * stride_xb + (rows * stride_xs)[:, None] + offs_h[None, :]
    out_rows = out_ptr + b * stride_ob + (rows * stride_os)[:, None] + offs_h[None, :]
    for h in range(H):
        x1, x2 = _load_halves(x_rows + h * stride_xh, 0, mask, HALF)
        if NORM:
            rstd = _rstd(x1, x2, eps, HALF)
            x1 = x1 * rstd[:, None] * w1
            x2 = x2 * rstd[:, None] * w2
        if ROPE:
            x1, x2 = x1 * c - x2 * s, x2 * c + x1 * s
        tl.store(out_rows + h * stride_oh, x1.to(out_ptr.dtype.element_ty), mask=mask)
        tl.store(out_rows + h * stride_oh + HALF, x2.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _prologue_bwd_kernel(
    g_ptr, x_ptr, w_ptr, cos_ptr, sin_ptr, ws_ptr, dx_ptr,
    stride_gb, stride_gs, stride_gh, stride_xb, stride_xs, stride_xh, stride_db, stride_ds, stride_dh,
    stride_cs, stride_ss, H, S, eps,
    HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr,
    BLOCK_S: tl.constexpr, BLOCK_HALF: tl.constexpr,
):  # fmt: skip
    pid_s, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_h = tl.arange(0, BLOCK_HALF)
    h_ok = offs_h < HALF
    mask = (rows < S)[:, None] & h_ok[None, :]
    if NORM:
        w1, w2 = _load_halves(w_ptr, offs_h[None, :], h_ok[None, :], HALF)
        acc_w1 = tl.zeros([BLOCK_HALF], tl.float32)
        acc_w2 = tl.zeros([BLOCK_HALF], tl.float32)
    if ROPE:
        c, s = _load_tables(cos_ptr, sin_ptr, rows, offs_h, mask, stride_cs, stride_ss)
    g_rows = g_ptr + b * stride_gb + (rows * stride_gs)[:, None] + offs_h[None, :]
    x_rows = x_ptr + b * stride_xb + (rows * stride_xs)[:, None] + offs_h[None, :]
    dx_rows = dx_ptr + b * stride_db + (rows * stride_ds)[:, None] + offs_h[None, :]
    for h in range(H):
        g1, g2 = _load_halves(g_rows + h * stride_gh, 0, mask, HALF)
        if ROPE:
            # The transpose of the rotation [[c, -s], [s, c]] on each (i, i + D/2) pair.
            g1, g2 = g1 * c + g2 * s, g2 * c - g1 * s
        if NORM:
            x1, x2 = _load_halves(x_rows + h * stride_xh, 0, mask, HALF)
            rstd = _rstd(x1, x2, eps, HALF)
            x1 = x1 * rstd[:, None]
            x2 = x2 * rstd[:, None]
            acc_w1 += tl.sum(g1 * x1, axis=0)
            acc_w2 += tl.sum(g2 * x2, axis=0)
            g1 = g1 * w1
            g2 = g2 * w2
            # d/dx of x * rstd: rstd * (g - x_hat * mean(g * x_hat)).
            proj = (tl.sum(g1 * x1, axis=1) + tl.sum(g2 * x2, axis=1)) / (2 * HALF)
            g1 = rstd[:, None] * (g1 - x1 * proj[:, None])
            g2 = rstd[:, None] * (g2 - x2 * proj[:, None])
        tl.store(dx_rows + h * stride_dh, g1.to(dx_ptr.dtype.element_ty), mask=mask)
        tl.store(dx_rows + h * stride_dh + HALF, g2.to(dx_ptr.dtype.element_ty), mask=mask)
    if NORM:
        ws = ws_ptr + (b * tl.num_programs(0) + pid_s) * (2 * HALF) + offs_h
        tl.store(ws, acc_w1, mask=h_ok)
        tl.store(ws + HALF, acc_w2, mask=h_ok)


def _flags(x: torch.Tensor, weight: torch.Tensor | None, cos: torch.Tensor | None) -> dict:
    half = x.shape[3] // 2
    return {
        "HALF": half,
        "NORM": weight is not None,
        "ROPE": cos is not None,
        "BLOCK_S": _ROWS,
        "BLOCK_HALF": triton.next_power_of_2(half),
        "num_warps": _WARPS,
    }


def _table_strides(cos: torch.Tensor | None, sin: torch.Tensor | None) -> tuple[int, int]:
    return (cos.stride(0), sin.stride(0)) if cos is not None else (0, 0)


def prologue_forward(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    cos: torch.Tensor | None,
    sin: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """RMSNorm (when ``weight``) then RoPE (when ``cos``/``sin``) of x (B, S, H, D); contiguous, x's dtype."""
    B, S, H, _ = x.shape
    out = empty_output(x.shape, x)
    if out.numel() == 0:
        return out
    # Absent pointers are never read: x stands in for them.
    _prologue_fwd_kernel[(triton.cdiv(S, _ROWS), B)](
        x, weight if weight is not None else x, cos if cos is not None else x, sin if sin is not None else x,
        out, *bshd_strides(x), *bshd_strides(out), *_table_strides(cos, sin), H, S, eps,
        **_flags(x, weight, cos),
    )  # fmt: skip
    return out


def prologue_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    cos: torch.Tensor | None,
    sin: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(grad_x, grad_weight or None) from the gradient of the prologue's output (unit stride in D)."""
    B, S, H, D = x.shape
    dx = empty_output(x.shape, x)
    grid = (triton.cdiv(S, _ROWS), B)
    # Weight-gradient partials, one row per program; without a norm the kernel writes none.
    ws = torch.zeros((B * grid[0], D), dtype=torch.float32, device=x.device) if weight is not None else dx
    if dx.numel() > 0:
        _prologue_bwd_kernel[grid](
            grad, x, weight if weight is not None else x, cos if cos is not None else x,
            sin if sin is not None else x, ws, dx,
            *bshd_strides(grad), *bshd_strides(x), *bshd_strides(dx), *_table_strides(cos, sin), H, S, eps,
            **_flags(x, weight, cos),
        )  # fmt: skip
    # Summed in torch in a fixed order: deterministic, unlike atomics.
    return dx, None if weight is None else ws.sum(0).to(weight.dtype)
