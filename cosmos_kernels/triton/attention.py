"""Flash attention with the per-head QK RMSNorm and rotate-half RoPE fused into the loads of q and k.

Spec: ``cosmos_kernels/reference/attention.py``. The head dim is handled as two halves, x1 = x[:, :D/2]
and x2 = x[:, D/2:], because rotate-half RoPE pairs dim i with dim i + D/2: each half is loaded on its
own, normalized with the RMS of the whole row, rotated (x1 c - x2 s, x2 c + x1 s), and the scores are
q1·k1 + q2·k2, two dots of half width. The normalized and rotated q', k' never reach memory.

- forward: grid (query block, batch x head). q' is built once per program, k' once per key block; an
  online softmax in fp32 (exp2, the scale folded into the log2 domain) over the keys < min(Sk,
  k_lengths[b]). Writes out and the natural-log lse; a row with no key gives zeros and lse = -inf.
- backward, FlashAttention-2 style: a preprocess kernel for delta = rowsum(dO * O) (minus grad_lse when
  the lse has a gradient); one kernel per key block accumulating dK', dV over all query blocks; one per
  query block accumulating dQ' over the key blocks. q' and k' are recomputed from the raw inputs, and
  each kernel ends by applying the transposed RoPE rotation and the RMSNorm backward to its dQ'/dK', so
  the gradient w.r.t. the raw q/k is written directly. Norm-weight gradients are per-program fp32
  partials that torch sums in a fixed order (deterministic, no atomics).

The launchers trust the caller (``cosmos_kernels.ops``) for the input contract: q (B, Sq, H, D), k and v
(B, Sk, H, D), unit stride in D, other strides free; one dtype among float32/float16/bfloat16;
``head_dim_supported(D)``; norm weights (D,) contiguous; RoPE tables (Sq, D/2) float32 with unit stride
in the last dim, only when Sq == Sk; k_lengths (B,) int32/int64 in [0, Sk] (values above Sk act as Sk).
"""

import os
from collections.abc import Callable

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output

LOG2E = 1.4426950408889634

# The interpreter runs every program in numpy: autotuning there would only multiply the test time, and
# small tiles keep several key/query blocks in play at test sizes (online softmax, ragged tails).
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_INTERPRET_TILES = {
    "fwd": {"BLOCK_M": 32, "BLOCK_N": 16},
    "dkdv": {"BLOCK_M": 16, "BLOCK_N": 32},
    "dq": {"BLOCK_M": 32, "BLOCK_N": 16},
}

# Autotune candidates (BLOCK_M, BLOCK_N, num_warps, num_stages) per kernel, by the largest head dim
# they serve ("fp32" for float32 inputs of any D). Wider heads hold more of q (forward, dQ) or k, v and
# two accumulators (dK/dV) per row in registers, so the tiles shrink as D grows; each list holds the
# tiles that compile for sm_90 with no or few spills (checked with triton 3.6 and 3.9). The dK/dV
# kernel's long axis is its key block (BLOCK_N), the dQ kernel's its query block (BLOCK_M), as in
# FlashAttention-2. Exact fp32 dots have no tensor-core path: their FMA tiles live in shared memory,
# which only small tiles fit.
_CUDA_TILES = {
    "fwd": {
        64: [(128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 4)],
        128: [(128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3)],
        256: [(64, 64, 8, 2), (128, 32, 8, 2), (64, 32, 8, 2)],
        "fp32": [(64, 32, 4, 2), (32, 32, 4, 2)],
    },
    "dkdv": {
        64: [(64, 128, 8, 3), (32, 64, 4, 3), (32, 128, 8, 3)],
        128: [(32, 64, 4, 3), (32, 128, 8, 2), (64, 64, 8, 2), (32, 64, 8, 3)],
        256: [(32, 32, 8, 2), (16, 32, 8, 2), (32, 32, 8, 1)],
        "fp32": [(32, 32, 4, 1), (16, 32, 4, 2)],
    },
    "dq": {
        64: [(128, 64, 8, 3), (64, 32, 4, 3), (128, 32, 8, 3)],
        128: [(128, 32, 8, 2), (64, 32, 8, 2), (64, 32, 4, 3), (128, 16, 8, 2)],
        256: [(32, 32, 8, 1), (32, 32, 8, 2), (32, 16, 8, 2)],
        "fp32": [(32, 32, 4, 1), (32, 16, 4, 2)],
    },
}


def head_dim_supported(D: int) -> bool:
    """Multiples of 16 from 32 to 256: each half-width dot needs a K dim of at least 16 (tl.dot), and
    non-power-of-two halves are padded to the next power of two with masked columns."""
    return D % 16 == 0 and 32 <= D <= 256


def _tile_class(half: int, dtype: torch.dtype) -> int | str:
    return "fp32" if dtype == torch.float32 else next(d for d in (64, 128, 256) if 2 * half <= d)


def _tiled(kind: str) -> Callable:
    """The kernel as the interpreter runs it (tiles passed by the launcher), else autotuned on CUDA."""
    # The backward kernels' norm-weight workspace (see _weight_workspace) must start at zero.
    reset = ["ws_ptr"] if kind in ("dkdv", "dq") else None

    def decorate(fn: triton.runtime.JITFunction) -> triton.runtime.JITFunction:
        if _INTERPRET:
            return fn
        tiles = _CUDA_TILES[kind]
        # A tile listed for several head-dim classes is one config: dict.fromkeys drops the repeats.
        configs = [
            triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)
            for m, n, w, s in dict.fromkeys(t for ts in tiles.values() for t in ts)
        ]

        def prune(configs: list, named_args: dict, **kwargs: object) -> list:
            args = {**named_args, **kwargs}
            want = tiles[_tile_class(args["HALF"], args["q_ptr"].dtype)]
            return [
                c
                for c in configs
                if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) in want
            ]

        # The autotuner appends the dtype of every tensor argument to the key; the shapes are left out
        # so that a new sequence length does not re-tune.
        return triton.autotune(
            configs,
            key=["HALF", "Q_NORM", "K_NORM", "ROPE", "HAS_KLEN"],
            reset_to_zero=reset,
            prune_configs_by={"early_config_prune": prune},
        )(fn)

    return decorate


def _launch_tiles(kind: str) -> dict:
    return _INTERPRET_TILES[kind] if _INTERPRET else {}


def _min_tile(kind: str, name: str, half: int, dtype: torch.dtype) -> int:
    """The smallest tile the autotuner may pick for this head dim and dtype: it sizes the workspaces."""
    if _INTERPRET:
        return _INTERPRET_TILES[kind][name]
    i = 0 if name == "BLOCK_M" else 1
    return min(t[i] for t in _CUDA_TILES[kind][_tile_class(half, dtype)])


@triton.jit
def _load_halves(ptr, rows, row_ok, stride_s, offs_h, HALF: tl.constexpr):
    """The two halves of the head dim of rows [R] as fp32 [R, BLOCK_HALF] tiles, zero where masked."""
    ptrs = ptr + (rows * stride_s)[:, None] + offs_h[None, :]
    mask = row_ok[:, None] & (offs_h < HALF)[None, :]
    x1 = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(ptrs + HALF, mask=mask, other=0.0).to(tl.float32)
    return x1, x2


@triton.jit
def _rstd(x1, x2, eps, HALF: tl.constexpr):
    # Padded columns are 0 and do not count: the mean is over the true D = 2 * HALF.
    return tl.rsqrt((tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / (2 * HALF) + eps)


@triton.jit
def _load_rope(cos_ptr, sin_ptr, rows, row_ok, stride_cs, stride_ss, offs_h, HALF: tl.constexpr):
    mask = row_ok[:, None] & (offs_h < HALF)[None, :]
    c = tl.load(cos_ptr + (rows * stride_cs)[:, None] + offs_h[None, :], mask=mask, other=0.0)
    s = tl.load(sin_ptr + (rows * stride_ss)[:, None] + offs_h[None, :], mask=mask, other=0.0)
    return c, s


@triton.jit
def _norm_rope(
    x1, x2, w_ptr, cos_ptr, sin_ptr, rows, row_ok, stride_cs, stride_ss, offs_h, eps,
    HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr,
):  # fmt: skip
    """RMSNorm (when NORM) then rotate-half RoPE (when ROPE) of fp32 halves, in fp32."""
    if NORM:
        rstd = _rstd(x1, x2, eps, HALF)
        h_ok = offs_h < HALF
        w1 = tl.load(w_ptr + offs_h, mask=h_ok, other=0.0).to(tl.float32)
        w2 = tl.load(w_ptr + HALF + offs_h, mask=h_ok, other=0.0).to(tl.float32)
        x1 = x1 * rstd[:, None] * w1[None, :]
        x2 = x2 * rstd[:, None] * w2[None, :]
    if ROPE:
        c, s = _load_rope(cos_ptr, sin_ptr, rows, row_ok, stride_cs, stride_ss, offs_h, HALF)
        x1, x2 = x1 * c - x2 * s, x2 * c + x1 * s
    return x1, x2


@triton.jit
def _load_norm_rope(
    ptr, rows, row_ok, stride_s, w_ptr, cos_ptr, sin_ptr, stride_cs, stride_ss, offs_h, eps,
    HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr,
):  # fmt: skip
    """Rows of q or k as the dots see them: loaded by halves, normalized and rotated in fp32, then in
    the input dtype (the operand type of tl.dot)."""
    x1, x2 = _load_halves(ptr, rows, row_ok, stride_s, offs_h, HALF)
    x1, x2 = _norm_rope(x1, x2, w_ptr, cos_ptr, sin_ptr, rows, row_ok, stride_cs, stride_ss, offs_h, eps,
                        HALF, NORM, ROPE)  # fmt: skip
    dtype = ptr.dtype.element_ty
    return x1.to(dtype), x2.to(dtype)


@triton.jit
def _norm_rope_backward(
    g1, g2, x_ptr, w_ptr, cos_ptr, sin_ptr, ws_ptr, rows, row_ok, stride_xs, stride_cs, stride_ss,
    offs_h, eps, HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr,
):  # fmt: skip
    """The gradient w.r.t. the raw rows x from the gradient (g1, g2) w.r.t. their normalized and rotated
    form; with NORM also stores this tile's norm-weight gradient sum(g_normalized * x_hat) at ws_ptr."""
    if ROPE:
        # The transpose of the rotation [[c, -s], [s, c]] on each (i, i + D/2) pair.
        c, s = _load_rope(cos_ptr, sin_ptr, rows, row_ok, stride_cs, stride_ss, offs_h, HALF)
        g1, g2 = g1 * c + g2 * s, g2 * c - g1 * s
    if NORM:
        # The raw rows are reloaded rather than kept from the start: holding them through the main loop
        # would cost a [rows, D] fp32 tile of registers.
        x1, x2 = _load_halves(x_ptr, rows, row_ok, stride_xs, offs_h, HALF)
        rstd = _rstd(x1, x2, eps, HALF)
        x1 = x1 * rstd[:, None]
        x2 = x2 * rstd[:, None]
        h_ok = offs_h < HALF
        tl.store(ws_ptr + offs_h, tl.sum(g1 * x1, axis=0), mask=h_ok)
        tl.store(ws_ptr + HALF + offs_h, tl.sum(g2 * x2, axis=0), mask=h_ok)
        g1 = g1 * tl.load(w_ptr + offs_h, mask=h_ok, other=0.0).to(tl.float32)[None, :]
        g2 = g2 * tl.load(w_ptr + HALF + offs_h, mask=h_ok, other=0.0).to(tl.float32)[None, :]
        # d/dx of x * rstd: rstd * (g - x_hat * mean(g * x_hat)).
        proj = (tl.sum(g1 * x1, axis=1) + tl.sum(g2 * x2, axis=1)) / (2 * HALF)
        g1 = rstd[:, None] * (g1 - x1 * proj[:, None])
        g2 = rstd[:, None] * (g2 - x2 * proj[:, None])
    return g1, g2


@triton.jit
def _store_halves(ptr, g1, g2, rows, row_ok, stride_s, offs_h, HALF: tl.constexpr):
    ptrs = ptr + (rows * stride_s)[:, None] + offs_h[None, :]
    mask = row_ok[:, None] & (offs_h < HALF)[None, :]
    tl.store(ptrs, g1.to(ptr.dtype.element_ty), mask=mask)
    tl.store(ptrs + HALF, g2.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _num_keys(klen_ptr, b, Sk, HAS_KLEN: tl.constexpr):
    n = Sk
    if HAS_KLEN:
        n = tl.minimum(tl.load(klen_ptr + b).to(tl.int32), Sk)
    return n


@_tiled("fwd")
@triton.jit
def _attn_fwd_kernel(
    q_ptr, k_ptr, v_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, klen_ptr, out_ptr, lse_ptr,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_ob, stride_os, stride_oh, stride_cs, stride_ss,
    H, Sq, Sk, eps, qk_scale,
    HALF: tl.constexpr, Q_NORM: tl.constexpr, K_NORM: tl.constexpr, ROPE: tl.constexpr,
    HAS_KLEN: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_HALF: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    # int64 for the (batch, head) base: batch strides of large inputs pass 2^31; offsets inside one
    # (batch, head) stay int32 (the launcher checks they fit).
    q_ptr += b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_ptr += b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_ptr += b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    out_ptr += b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
    n_keys = _num_keys(klen_ptr, b, Sk, HAS_KLEN)
    dtype = v_ptr.dtype.element_ty

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < Sq
    offs_h = tl.arange(0, BLOCK_HALF)
    # v, dO and out are never split: their tiles span the whole (padded) head dim.
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < 2 * HALF

    q1, q2 = _load_norm_rope(
        q_ptr, offs_m, m_ok, stride_qs, qw_ptr, cos_ptr, sin_ptr, stride_cs, stride_ss, offs_h, eps,
        HALF, Q_NORM, ROPE,
    )  # fmt: skip

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, n_keys, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_keys
        k1, k2 = _load_norm_rope(
            k_ptr, offs_n, n_ok, stride_ks, kw_ptr, cos_ptr, sin_ptr, stride_cs, stride_ss, offs_h, eps,
            HALF, K_NORM, ROPE,
        )  # fmt: skip
        s = tl.dot(q1, tl.trans(k1), input_precision=PRECISION)
        s = tl.dot(q2, tl.trans(k2), s, input_precision=PRECISION)
        # Scaled before masking and taking the max: the scale may be of any sign, and 0 * -inf is NaN.
        s = tl.where(n_ok[None, :], s * qk_scale, float("-inf"))
        # Every block in the loop has a valid key, so m_new is finite and no row sees -inf - -inf.
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_ptr + (offs_n * stride_vs)[:, None] + offs_d[None, :],
            mask=n_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        acc = tl.dot(p.to(dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new

    # A row with no key (n_keys == 0) has l_i = 0: zeros out, lse -inf, as the reference gives.
    has_keys = l_i > 0.0
    out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    tl.store(
        out_ptr + (offs_m * stride_os)[:, None] + offs_d[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=m_ok[:, None] & d_ok[None, :],
    )
    lse = tl.where(
        has_keys, (m_i + tl.log2(tl.where(has_keys, l_i, 1.0))) * 0.6931471805599453, float("-inf")
    )
    tl.store(lse_ptr + bh.to(tl.int64) * Sq + offs_m, lse, mask=m_ok)


@triton.jit
def _attn_bwd_preprocess_kernel(
    out_ptr, do_ptr, glse_ptr, delta_ptr,
    stride_ob, stride_os, stride_oh, stride_gb, stride_gs, stride_gh,
    H, Sq, D: tl.constexpr, HAS_GLSE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_m < Sq)[:, None] & (offs_d < D)[None, :]
    o = tl.load(
        out_ptr
        + b.to(tl.int64) * stride_ob
        + h * stride_oh
        + (offs_m * stride_os)[:, None]
        + offs_d[None, :],
        mask=mask,
        other=0.0,
    )
    do = tl.load(
        do_ptr + b.to(tl.int64) * stride_gb + h * stride_gh + (offs_m * stride_gs)[:, None] + offs_d[None, :],
        mask=mask,
        other=0.0,
    )
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    row = bh.to(tl.int64) * Sq + offs_m
    if HAS_GLSE:
        # d lse / d s_ij = p_ij, so a gradient on the lse enters dS = P * (dP - delta) as -grad_lse.
        delta -= tl.load(glse_ptr + row, mask=offs_m < Sq, other=0.0)
    tl.store(delta_ptr + row, delta, mask=offs_m < Sq)


@_tiled("dkdv")
@triton.jit
def _attn_bwd_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, klen_ptr, do_ptr, lse_ptr, delta_ptr,
    dk_ptr, dv_ptr, ws_ptr,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_gb, stride_gs, stride_gh, stride_dkb, stride_dks, stride_dkh, stride_cs, stride_ss,
    H, Sq, Sk, n_ws, eps, qk_scale, sm_scale,
    HALF: tl.constexpr, Q_NORM: tl.constexpr, K_NORM: tl.constexpr, ROPE: tl.constexpr,
    HAS_KLEN: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_HALF: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    q_ptr += b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_ptr += b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_ptr += b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    do_ptr += b.to(tl.int64) * stride_gb + h.to(tl.int64) * stride_gh
    # dk and dv are allocated alike by the launcher and share strides.
    dk_ptr += b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh
    dv_ptr += b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh
    lse_ptr += bh.to(tl.int64) * Sq
    delta_ptr += bh.to(tl.int64) * Sq
    n_keys = _num_keys(klen_ptr, b, Sk, HAS_KLEN)
    dtype = v_ptr.dtype.element_ty

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < n_keys
    offs_h = tl.arange(0, BLOCK_HALF)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < 2 * HALF

    k1, k2 = _load_norm_rope(
        k_ptr, offs_n, n_ok, stride_ks, kw_ptr, cos_ptr, sin_ptr, stride_cs, stride_ss, offs_h, eps,
        HALF, K_NORM, ROPE,
    )  # fmt: skip
    v = tl.load(
        v_ptr + (offs_n * stride_vs)[:, None] + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :], other=0.0
    )

    dk1 = tl.zeros([BLOCK_N, BLOCK_HALF], tl.float32)
    dk2 = tl.zeros([BLOCK_N, BLOCK_HALF], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    # A block of masked keys only gets zero gradients: it skips the loop.
    q_end = tl.where(pid_n * BLOCK_N < n_keys, Sq, 0)
    for start_m in range(0, q_end, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        m_ok = offs_m < Sq
        q1, q2 = _load_norm_rope(
            q_ptr, offs_m, m_ok, stride_qs, qw_ptr, cos_ptr, sin_ptr, stride_cs, stride_ss, offs_h, eps,
            HALF, Q_NORM, ROPE,
        )  # fmt: skip
        do = tl.load(
            do_ptr + (offs_m * stride_gs)[:, None] + offs_d[None, :],
            mask=m_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        # This block has a valid key, so every row's lse is finite.
        lse2 = tl.load(lse_ptr + offs_m, mask=m_ok, other=0.0) * 1.4426950408889634
        delta = tl.load(delta_ptr + offs_m, mask=m_ok, other=0.0)
        # Transposed scores (keys x queries): the accumulations below then need no transposed P or dS.
        st = tl.dot(k1, tl.trans(q1), input_precision=PRECISION)
        st = tl.dot(k2, tl.trans(q2), st, input_precision=PRECISION)
        pt = tl.exp2(st * qk_scale - lse2[None, :])
        # Padded queries and masked keys would otherwise contribute exp2(0 - 0) = 1 or more.
        pt = tl.where(n_ok[:, None] & m_ok[None, :], pt, 0.0)
        dv = tl.dot(pt.to(dtype), do, dv, input_precision=PRECISION)
        dpt = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        dst = (pt * (dpt - delta[None, :])).to(dtype)
        dk1 = tl.dot(dst, q1, dk1, input_precision=PRECISION)
        dk2 = tl.dot(dst, q2, dk2, input_precision=PRECISION)

    k_store = offs_n < Sk
    tl.store(
        dv_ptr + (offs_n * stride_dks)[:, None] + offs_d[None, :],
        dv.to(dv_ptr.dtype.element_ty),
        mask=k_store[:, None] & d_ok[None, :],
    )
    dk1, dk2 = _norm_rope_backward(
        dk1 * sm_scale, dk2 * sm_scale, k_ptr, kw_ptr, cos_ptr, sin_ptr,
        ws_ptr + (bh.to(tl.int64) * n_ws + pid_n) * (2 * HALF),
        offs_n, k_store, stride_ks, stride_cs, stride_ss, offs_h, eps, HALF, K_NORM, ROPE,
    )  # fmt: skip
    _store_halves(dk_ptr, dk1, dk2, offs_n, k_store, stride_dks, offs_h, HALF)


@_tiled("dq")
@triton.jit
def _attn_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, klen_ptr, do_ptr, lse_ptr, delta_ptr,
    dq_ptr, ws_ptr,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_gb, stride_gs, stride_gh, stride_dqb, stride_dqs, stride_dqh, stride_cs, stride_ss,
    H, Sq, Sk, n_ws, eps, qk_scale, sm_scale,
    HALF: tl.constexpr, Q_NORM: tl.constexpr, K_NORM: tl.constexpr, ROPE: tl.constexpr,
    HAS_KLEN: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_HALF: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    q_ptr += b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_ptr += b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_ptr += b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    do_ptr += b.to(tl.int64) * stride_gb + h.to(tl.int64) * stride_gh
    dq_ptr += b.to(tl.int64) * stride_dqb + h.to(tl.int64) * stride_dqh
    n_keys = _num_keys(klen_ptr, b, Sk, HAS_KLEN)
    dtype = v_ptr.dtype.element_ty

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < Sq
    offs_h = tl.arange(0, BLOCK_HALF)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < 2 * HALF

    q1, q2 = _load_norm_rope(
        q_ptr, offs_m, m_ok, stride_qs, qw_ptr, cos_ptr, sin_ptr, stride_cs, stride_ss, offs_h, eps,
        HALF, Q_NORM, ROPE,
    )  # fmt: skip
    do = tl.load(
        do_ptr + (offs_m * stride_gs)[:, None] + offs_d[None, :],
        mask=m_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    # The lse is -inf only where n_keys == 0, and then the loop below does not run.
    lse2 = tl.load(lse_ptr + bh.to(tl.int64) * Sq + offs_m, mask=m_ok, other=0.0) * 1.4426950408889634
    delta = tl.load(delta_ptr + bh.to(tl.int64) * Sq + offs_m, mask=m_ok, other=0.0)

    dq1 = tl.zeros([BLOCK_M, BLOCK_HALF], tl.float32)
    dq2 = tl.zeros([BLOCK_M, BLOCK_HALF], tl.float32)
    for start_n in range(0, n_keys, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_keys
        k1, k2 = _load_norm_rope(
            k_ptr, offs_n, n_ok, stride_ks, kw_ptr, cos_ptr, sin_ptr, stride_cs, stride_ss, offs_h, eps,
            HALF, K_NORM, ROPE,
        )  # fmt: skip
        v = tl.load(
            v_ptr + (offs_n * stride_vs)[:, None] + offs_d[None, :],
            mask=n_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        s = tl.dot(q1, tl.trans(k1), input_precision=PRECISION)
        s = tl.dot(q2, tl.trans(k2), s, input_precision=PRECISION)
        # Padded query rows need no mask: their dO and delta are 0, so their dS is 0.
        p = tl.where(n_ok[None, :], tl.exp2(s * qk_scale - lse2[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = (p * (dp - delta[:, None])).to(dtype)
        dq1 = tl.dot(ds, k1, dq1, input_precision=PRECISION)
        dq2 = tl.dot(ds, k2, dq2, input_precision=PRECISION)

    dq1, dq2 = _norm_rope_backward(
        dq1 * sm_scale, dq2 * sm_scale, q_ptr, qw_ptr, cos_ptr, sin_ptr,
        ws_ptr + (bh.to(tl.int64) * n_ws + pid_m) * (2 * HALF),
        offs_m, m_ok, stride_qs, stride_cs, stride_ss, offs_h, eps, HALF, Q_NORM, ROPE,
    )  # fmt: skip
    _store_halves(dq_ptr, dq1, dq2, offs_m, m_ok, stride_dqs, offs_h, HALF)


def _strides(t: torch.Tensor) -> tuple[int, int, int]:
    """(batch, sequence, head) strides of a BSHD tensor, checked to keep the int32 in-head offsets."""
    if (t.shape[1] - 1) * t.stride(1) + t.shape[3] >= 2**31:
        raise ValueError(
            f"attention: one (batch, head) of a tensor of shape {tuple(t.shape)} and strides {t.stride()} "
            "spans 2^31 elements or more, past the int32 offsets of the Triton kernels"
        )
    return t.stride(0), t.stride(1), t.stride(2)


def _common(
    q: torch.Tensor,
    q_norm_weight: torch.Tensor | None,
    k_norm_weight: torch.Tensor | None,
    rope_cos: torch.Tensor | None,
    rope_sin: torch.Tensor | None,
    k_lengths: torch.Tensor | None,
) -> tuple[list, dict]:
    """The optional pointer arguments (q stands in for absent ones, which the kernels never read), the
    table strides, and the constexpr flags shared by the kernels."""
    D = q.shape[3]
    ptrs = [
        q_norm_weight if q_norm_weight is not None else q,
        k_norm_weight if k_norm_weight is not None else q,
        rope_cos if rope_cos is not None else q,
        rope_sin if rope_sin is not None else q,
        k_lengths if k_lengths is not None else q,
    ]
    table_strides = [rope_cos.stride(0), rope_sin.stride(0)] if rope_cos is not None else [0, 0]
    flags = {
        "HALF": D // 2,
        "Q_NORM": q_norm_weight is not None,
        "K_NORM": k_norm_weight is not None,
        "ROPE": rope_cos is not None,
        "HAS_KLEN": k_lengths is not None,
        # float32 inputs get exact fp32 dots on the GPU, not tf32 (about 3e-4 off).
        "PRECISION": "ieee" if q.dtype == torch.float32 else None,
        "BLOCK_HALF": triton.next_power_of_2(D // 2),
        "BLOCK_D": triton.next_power_of_2(D),
    }
    return ptrs + table_strides, flags


def _weight_workspace(
    weight: torch.Tensor | None, seq: int, kind: str, tile: str, n_heads: int, q: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """(workspace, slots per (batch, head)): one fp32 row of norm-weight partials per program, sized for
    the smallest tile autotuning may pick. Zeros, so that the slots a larger tile leaves unwritten add
    nothing; the autotuner re-zeroes it (reset_to_zero) after benchmarking, whose runs with smaller
    tiles write more slots. Without a weight, a one-element stand-in the kernel never writes."""
    if weight is None:
        return torch.zeros(1, dtype=torch.float32, device=q.device), 0
    D = q.shape[3]
    n_ws = triton.cdiv(seq, _min_tile(kind, tile, D // 2, q.dtype))
    return torch.zeros((n_heads, n_ws, D), dtype=torch.float32, device=q.device), n_ws


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_norm_weight: torch.Tensor | None,
    k_norm_weight: torch.Tensor | None,
    rope_cos: torch.Tensor | None,
    rope_sin: torch.Tensor | None,
    k_lengths: torch.Tensor | None,
    norm_eps: float,
    softmax_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, Sq, H, D) contiguous in q's dtype, lse (B, H, Sq) float32, natural log)."""
    B, Sq, H = q.shape[:3]
    Sk = k.shape[1]
    out = empty_output(q.shape, q)
    lse = empty_output((B, H, Sq), q, torch.float32)
    (qw, kw, cos, sin, klen, stride_cs, stride_ss), flags = _common(
        q, q_norm_weight, k_norm_weight, rope_cos, rope_sin, k_lengths
    )
    _attn_fwd_kernel[lambda meta: (triton.cdiv(Sq, meta["BLOCK_M"]), B * H)](
        q, k, v, qw, kw, cos, sin, klen, out, lse,
        *_strides(q), *_strides(k), *_strides(v), *_strides(out), stride_cs, stride_ss,
        H, Sq, Sk, norm_eps, softmax_scale * LOG2E,
        **flags, **_launch_tiles("fwd"),
    )  # fmt: skip
    return out, lse


def attention_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    q_norm_weight: torch.Tensor | None,
    k_norm_weight: torch.Tensor | None,
    rope_cos: torch.Tensor | None,
    rope_sin: torch.Tensor | None,
    k_lengths: torch.Tensor | None,
    norm_eps: float,
    softmax_scale: float,
    grad_lse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(grad_q, grad_k, grad_v, grad_q_norm_weight, grad_k_norm_weight) from the forward's out and lse
    (lse contiguous (B, H, Sq) float32); the weight gradients are None for absent weights, in the
    weight's dtype otherwise. ``grad_lse`` (B, H, Sq) float32, contiguous, when the lse has a gradient."""
    B, Sq, H, D = q.shape
    Sk = k.shape[1]
    grad_q = empty_output(q.shape, q)
    grad_k = empty_output(k.shape, k)
    grad_v = empty_output(v.shape, v)
    delta = empty_output((B, H, Sq), q, torch.float32)
    pre_block_m = 32
    _attn_bwd_preprocess_kernel[(triton.cdiv(Sq, pre_block_m), B * H)](
        out, grad_out, grad_lse if grad_lse is not None else delta, delta,
        *_strides(out), *_strides(grad_out), H, Sq,
        D=D, HAS_GLSE=grad_lse is not None, BLOCK_M=pre_block_m, BLOCK_D=triton.next_power_of_2(D),
    )  # fmt: skip

    (qw, kw, cos, sin, klen, stride_cs, stride_ss), flags = _common(
        q, q_norm_weight, k_norm_weight, rope_cos, rope_sin, k_lengths
    )
    ws_k, n_ws_k = _weight_workspace(k_norm_weight, Sk, "dkdv", "BLOCK_N", B * H, q)
    ws_q, n_ws_q = _weight_workspace(q_norm_weight, Sq, "dq", "BLOCK_M", B * H, q)
    scales = (norm_eps, softmax_scale * LOG2E, softmax_scale)
    common = (
        q, k, v, qw, kw, cos, sin, klen, grad_out, lse, delta,
    )  # fmt: skip
    in_strides = (*_strides(q), *_strides(k), *_strides(v), *_strides(grad_out))
    _attn_bwd_dkdv_kernel[lambda meta: (triton.cdiv(Sk, meta["BLOCK_N"]), B * H)](
        *common, grad_k, grad_v, ws_k,
        *in_strides, *_strides(grad_k), stride_cs, stride_ss,
        H, Sq, Sk, n_ws_k, *scales,
        **flags, **_launch_tiles("dkdv"),
    )  # fmt: skip
    _attn_bwd_dq_kernel[lambda meta: (triton.cdiv(Sq, meta["BLOCK_M"]), B * H)](
        *common, grad_q, ws_q,
        *in_strides, *_strides(grad_q), stride_cs, stride_ss,
        H, Sq, Sk, n_ws_q, *scales,
        **flags, **_launch_tiles("dq"),
    )  # fmt: skip
    # Summed in torch in a fixed order: deterministic, unlike atomics.
    grad_qw = ws_q.sum((0, 1)).to(q_norm_weight.dtype) if q_norm_weight is not None else None
    grad_kw = ws_k.sum((0, 1)).to(k_norm_weight.dtype) if k_norm_weight is not None else None
    return grad_q, grad_k, grad_v, grad_qw, grad_kw


# The standalone prologue (``ops.qk_norm_rope``) for other attention backends: memory-bound, one pass
# that reads each row of q or k once and writes it once. 64 rows x D keeps the fp32 halves of a tile in
# registers up to D = 256; the interpreter takes smaller tiles so that test shapes span several.
_PROLOGUE_ROWS = 16 if _INTERPRET else 64


@triton.jit
def _qk_norm_rope_kernel(
    x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr,
    stride_xb, stride_xs, stride_xh, stride_ob, stride_os, stride_oh, stride_cs, stride_ss,
    H, S, eps,
    HALF: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_HALF: tl.constexpr,
):  # fmt: skip
    pid_s, bh = tl.program_id(0), tl.program_id(1)
    b, h = bh // H, bh % H
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    row_ok = rows < S
    offs_h = tl.arange(0, BLOCK_HALF)
    x_base = x_ptr + b.to(tl.int64) * stride_xb + h * stride_xh
    x1, x2 = _load_halves(x_base, rows, row_ok, stride_xs, offs_h, HALF)
    x1, x2 = _norm_rope(x1, x2, w_ptr, cos_ptr, sin_ptr, rows, row_ok, stride_cs, stride_ss, offs_h, eps,
                        HALF, True, True)  # fmt: skip
    out_base = out_ptr + b.to(tl.int64) * stride_ob + h * stride_oh
    _store_halves(out_base, x1, x2, rows, row_ok, stride_os, offs_h, HALF)


@triton.jit
def _qk_norm_rope_bwd_kernel(
    g_ptr, x_ptr, w_ptr, cos_ptr, sin_ptr, ws_ptr, dx_ptr,
    stride_gb, stride_gs, stride_gh, stride_xb, stride_xs, stride_xh, stride_db, stride_ds, stride_dh,
    stride_cs, stride_ss, H, S, n_ws, eps,
    HALF: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_HALF: tl.constexpr,
):  # fmt: skip
    pid_s, bh = tl.program_id(0), tl.program_id(1)
    b, h = bh // H, bh % H
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    row_ok = rows < S
    offs_h = tl.arange(0, BLOCK_HALF)
    g_base = g_ptr + b.to(tl.int64) * stride_gb + h * stride_gh
    g1, g2 = _load_halves(g_base, rows, row_ok, stride_gs, offs_h, HALF)
    g1, g2 = _norm_rope_backward(
        g1, g2, x_ptr + b.to(tl.int64) * stride_xb + h * stride_xh, w_ptr, cos_ptr, sin_ptr,
        ws_ptr + (bh.to(tl.int64) * n_ws + pid_s) * (2 * HALF),
        rows, row_ok, stride_xs, stride_cs, stride_ss, offs_h, eps, HALF, True, True,
    )  # fmt: skip
    dx_base = dx_ptr + b.to(tl.int64) * stride_db + h * stride_dh
    _store_halves(dx_base, g1, g2, rows, row_ok, stride_ds, offs_h, HALF)


def _prologue_grid(x: torch.Tensor) -> tuple[int, int]:
    B, S, H, _ = x.shape
    return triton.cdiv(S, _PROLOGUE_ROWS), B * H


def qk_norm_rope_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    q_norm_weight: torch.Tensor,
    k_norm_weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(q', k'), contiguous, in the inputs' dtype: RMSNorm and RoPE in fp32, rounded once."""
    D = q.shape[3]
    outs = []
    for x, weight in ((q, q_norm_weight), (k, k_norm_weight)):
        out = empty_output(x.shape, x)
        _qk_norm_rope_kernel[_prologue_grid(x)](
            x, weight, cos, sin, out, *_strides(x), *_strides(out), cos.stride(0), sin.stride(0),
            x.shape[2], x.shape[1], eps,
            HALF=D // 2, BLOCK_S=_PROLOGUE_ROWS, BLOCK_HALF=triton.next_power_of_2(D // 2),
        )  # fmt: skip
        outs.append(out)
    return outs[0], outs[1]


def qk_norm_rope_backward(
    grad_q: torch.Tensor,
    grad_k: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    q_norm_weight: torch.Tensor,
    k_norm_weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_q, grad_k, grad_q_norm_weight, grad_k_norm_weight); the grads of q and k come in with unit
    stride in D. Weight gradients are per-program fp32 partials summed in torch (deterministic)."""
    D = q.shape[3]
    grads = []
    weight_grads = []
    for g, x, weight in ((grad_q, q, q_norm_weight), (grad_k, k, k_norm_weight)):
        grid = _prologue_grid(x)
        ws = torch.zeros((grid[1], grid[0], D), dtype=torch.float32, device=x.device)
        dx = empty_output(x.shape, x)
        _qk_norm_rope_bwd_kernel[grid](
            g, x, weight, cos, sin, ws, dx, *_strides(g), *_strides(x), *_strides(dx),
            cos.stride(0), sin.stride(0), x.shape[2], x.shape[1], grid[0], eps,
            HALF=D // 2, BLOCK_S=_PROLOGUE_ROWS, BLOCK_HALF=triton.next_power_of_2(D // 2),
        )  # fmt: skip
        grads.append(dx)
        weight_grads.append(ws.sum((0, 1)).to(weight.dtype))
    return grads[0], grads[1], weight_grads[0], weight_grads[1]
