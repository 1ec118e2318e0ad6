"""Flash attention (plain softmax attention, keys past ``k_lengths[b]`` masked) in Triton.

Spec: ``cosmos_kernels/reference/attention.py`` with the QK RMSNorm and RoPE already applied: the
prologue runs as its own pass (``cosmos_kernels/triton/qk_norm_rope.py``) before these kernels: fused
into the loads of q and k it rebuilt k' for every (query block, key block) pair and cost far more than
the separate pass (benchmarks/RESULTS.md).
Without RoPE's rotate-half pairing the head dim needs no split: q, k and their gradients are whole
[rows, BLOCK_D] tiles (D padded to a power of two, the padded columns masked), one dot per product.

- forward: grid (query block, batch x head). An online softmax in fp32 (exp2, the scale folded into
  the log2 domain) over the keys < min(Sk, k_lengths[b]). Writes out and the natural-log lse; a row
  with no key gives zeros and lse = -inf. Only the last key block, when partial, is masked: the full
  ones load unmasked and scale and shift each score with one FMA (the softmax's ALU work, not the
  dots, bounds this loop on Hopper, as in FlashAttention-3's analysis).
- backward, FlashAttention-2 style: a preprocess kernel for delta = rowsum(dO * O) (minus grad_lse when
  the lse has a gradient); one kernel per key block accumulating dK, dV over all query blocks (no mask
  in its loop: padded queries add zeros, masked keys' rows are zeroed at the store); one per query
  block accumulating dQ over the key blocks (the last block masked, as in the forward). Each output
  element is written by one program: no atomics, deterministic.
- ``merge_block``: ring attention's merge of one K/V block's (out, lse) into the running float32 ones,
  in place, one read and one write of the running out (PyTorch's lerp needs a float32 copy of the
  block's out first: three passes over a float32 tensor more).

The launchers trust the caller (``cosmos_kernels.ops``) for the input contract: q (B, Sq, H, D), k and v
(B, Sk, H, D), unit stride in D, other strides free; one dtype among float32/float16/bfloat16;
``head_dim_supported(D)``; k_lengths (B,) int32/int64 in [0, Sk] (values above Sk act as Sk).
"""

from collections.abc import Callable

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output
from cosmos_kernels._backend import triton_interpreter_enabled
from cosmos_kernels.triton.layout import bshd_strides

LOG2E = 1.4426950408889634

# The interpreter runs every program in numpy: autotuning there would only multiply the test time, and
# small tiles keep several key/query blocks in play at test sizes (online softmax, ragged tails).
_INTERPRET = triton_interpreter_enabled()
_INTERPRET_TILES = {
    "fwd": {"BLOCK_M": 32, "BLOCK_N": 16},
    "dkdv": {"BLOCK_M": 16, "BLOCK_N": 32},
    "dq": {"BLOCK_M": 32, "BLOCK_N": 16},
}

# Autotune candidates (BLOCK_M, BLOCK_N, num_warps, num_stages) per kernel, by the largest head dim
# they serve ("fp32" for float32 inputs of any D). Wider heads hold more of q (forward, dQ) or k, v and
# two accumulators (dK/dV) per row in registers, so the tiles shrink as D grows; each list holds the
# tiles that compile for sm_90 with no spills (ptxas -v, triton 3.6; on triton 3.9 four forward tiles
# at D = 128 and 256 spill 12 to 136 bytes, since the loop's unmasked copy). For sm_80 (A100) every tile
# fits its 163 KB of shared memory; 9 of 50 spill 8 to 64 bytes, and every list keeps spill-free ones.
# The dK/dV kernel's long axis is its key block (BLOCK_N), the dQ kernel's its query block (BLOCK_M), as
# in FlashAttention-2: the accumulators live along that axis, the other axis is the loop's step. Exact
# fp32 dots have no tensor-core path: their FMA tiles need registers and shared memory that only small
# tiles fit, and the fp32 lists must hold up to D = 256.
_CUDA_TILES = {
    "fwd": {
        64: [(128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 4), (128, 32, 4, 3)],
        128: [(128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 8, 2), (128, 32, 4, 3), (64, 64, 4, 3)],
        256: [(64, 64, 8, 2), (64, 64, 8, 3), (64, 32, 4, 2), (128, 32, 8, 2)],
        "fp32": [(32, 32, 8, 2), (16, 16, 4, 2)],
    },
    "dkdv": {
        64: [(64, 128, 8, 3), (32, 128, 8, 3), (64, 64, 4, 3), (32, 64, 4, 3)],
        128: [(32, 128, 8, 3), (32, 128, 8, 2), (64, 64, 8, 3), (32, 64, 4, 3), (16, 128, 8, 3)],
        256: [(16, 64, 8, 2), (32, 32, 8, 2), (16, 32, 8, 2), (16, 32, 4, 2)],
        "fp32": [(16, 16, 4, 2), (16, 16, 4, 1)],
    },
    "dq": {
        64: [(128, 64, 8, 3), (128, 32, 4, 3), (64, 64, 4, 3), (128, 128, 8, 3)],
        128: [(128, 64, 8, 3), (128, 64, 8, 2), (128, 32, 8, 3), (64, 64, 4, 3), (64, 32, 4, 2)],
        256: [(64, 32, 8, 2), (32, 32, 4, 2), (64, 16, 8, 2)],
        "fp32": [(32, 32, 8, 2), (16, 16, 4, 2)],
    },
}


def head_dim_supported(D: int) -> bool:
    """Multiples of 16 from 32 to 256: the range the tile lists are tuned and tested for (tl.dot needs
    a K dim of at least 16). Non-power-of-two D is padded to the next power of two with masked columns."""
    return D % 16 == 0 and 32 <= D <= 256


def _tile_class(D: int, dtype: torch.dtype) -> int | str:
    return "fp32" if dtype == torch.float32 else next(d for d in (64, 128, 256) if D <= d)


def _tiled(kind: str) -> Callable:
    """The kernel as the interpreter runs it (tiles passed by the launcher), else autotuned on CUDA."""

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
            want = tiles[_tile_class(args["D"], args["q_ptr"].dtype)]
            return [
                c
                for c in configs
                if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) in want
            ]

        # The autotuner appends the dtype of every tensor argument to the key; the shapes are left out
        # so that a new sequence length does not re-tune.
        return triton.autotune(
            configs, key=["D", "HAS_KLEN"], prune_configs_by={"early_config_prune": prune}
        )(fn)

    return decorate


def _launch_tiles(kind: str) -> dict:
    return _INTERPRET_TILES[kind] if _INTERPRET else {}


@triton.jit
def _load_rows(ptr, rows, row_ok, stride_s, offs_d, D: tl.constexpr):
    """Rows [R] of a (batch, head) slice as an [R, BLOCK_D] tile in its dtype, zero where masked;
    ``row_ok`` None for rows known to be in bounds."""
    mask = (offs_d < D)[None, :]
    if row_ok is not None:
        mask = row_ok[:, None] & mask
    return tl.load(ptr + (rows * stride_s)[:, None] + offs_d[None, :], mask=mask, other=0.0)


@triton.jit
def _store_rows(ptr, x, rows, row_ok, stride_s, offs_d, D: tl.constexpr):
    tl.store(
        ptr + (rows * stride_s)[:, None] + offs_d[None, :],
        x.to(ptr.dtype.element_ty),
        mask=row_ok[:, None] & (offs_d < D)[None, :],
    )


@triton.jit
def _num_keys(klen_ptr, b, Sk, HAS_KLEN: tl.constexpr):
    n = Sk
    if HAS_KLEN:
        n = tl.minimum(tl.load(klen_ptr + b).to(tl.int32), Sk)
    return n


@triton.jit
def _attn_fwd_block(
    acc, l_i, m_i, q, k_ptr, v_ptr, start_n, n_keys, stride_ks, stride_vs, offs_d, qk_scale,
    D: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
):  # fmt: skip
    """One key block of the online softmax; MASKED for the last block when it is partial."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    n_ok = offs_n < n_keys if MASKED else None
    k = _load_rows(k_ptr, offs_n, n_ok, stride_ks, offs_d, D)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION)
    if MASKED:
        s = tl.where(n_ok[None, :], s * qk_scale, float("-inf"))
        # Every block in the loop has a valid key, so m_new is finite and no row sees -inf - -inf.
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
    else:
        # The scale is positive (ops.attention checks), so max(s) * scale is the max of the scaled
        # scores, and scaling and subtracting it is one FMA per score: the softmax, not the dots, is
        # what limits this loop on Hopper, and a full block needs no mask.
        m_new = tl.maximum(m_i, tl.max(s, axis=1) * qk_scale)
        p = tl.exp2(s * qk_scale - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    v = _load_rows(v_ptr, offs_n, n_ok, stride_vs, offs_d, D)
    acc = tl.dot(p.to(v_ptr.dtype.element_ty), v, acc * alpha[:, None], input_precision=PRECISION)
    return acc, l_i, m_new


@_tiled("fwd")
@triton.jit
def _attn_fwd_kernel(
    q_ptr, k_ptr, v_ptr, klen_ptr, out_ptr, lse_ptr,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_ob, stride_os, stride_oh,
    H, Sq, Sk, qk_scale,
    D: tl.constexpr, HAS_KLEN: tl.constexpr, PRECISION: tl.constexpr, MASK_ALL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
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

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < Sq
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(q_ptr, offs_m, m_ok, stride_qs, offs_d, D)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    full_end = 0 if MASK_ALL else n_keys // BLOCK_N * BLOCK_N
    for start_n in range(0, full_end, BLOCK_N):
        acc, l_i, m_i = _attn_fwd_block(
            acc, l_i, m_i, q, k_ptr, v_ptr, start_n, n_keys, stride_ks, stride_vs, offs_d, qk_scale,
            D, PRECISION, BLOCK_N, MASKED=False,
        )  # fmt: skip
    for start_n in range(full_end, n_keys, BLOCK_N):
        acc, l_i, m_i = _attn_fwd_block(
            acc, l_i, m_i, q, k_ptr, v_ptr, start_n, n_keys, stride_ks, stride_vs, offs_d, qk_scale,
            D, PRECISION, BLOCK_N, MASKED=True,
        )  # fmt: skip

    # A row with no key (n_keys == 0) has l_i = 0: zeros out, lse -inf, as the reference gives.
    has_keys = l_i > 0.0
    out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    _store_rows(out_ptr, out, offs_m, m_ok, stride_os, offs_d, D)
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
    q_ptr, k_ptr, v_ptr, klen_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_gb, stride_gs, stride_gh, stride_dkb, stride_dks, stride_dkh,
    H, Sq, Sk, qk_scale, sm_scale,
    D: tl.constexpr, HAS_KLEN: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
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
    offs_d = tl.arange(0, BLOCK_D)
    # Masked keys load as zeros. Their rows of P^T may overflow (exp(0 - lse)), but row n of dK and dV
    # takes only row n of P^T and dS^T: they are zeroed once, at the store, not masked every step.
    k = _load_rows(k_ptr, offs_n, n_ok, stride_ks, offs_d, D)
    v = _load_rows(v_ptr, offs_n, n_ok, stride_vs, offs_d, D)

    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    # A block of masked keys only gets zero gradients: it skips the loop.
    q_end = tl.where(pid_n * BLOCK_N < n_keys, Sq, 0)
    for start_m in range(0, q_end, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        m_ok = offs_m < Sq
        q = _load_rows(q_ptr, offs_m, m_ok, stride_qs, offs_d, D)
        do = _load_rows(do_ptr, offs_m, m_ok, stride_gs, offs_d, D)
        # This block has a valid key, so every row's lse is finite.
        lse2 = tl.load(lse_ptr + offs_m, mask=m_ok, other=0.0) * 1.4426950408889634
        delta = tl.load(delta_ptr + offs_m, mask=m_ok, other=0.0)
        # Transposed scores (keys x queries): the accumulations below then need no transposed P or dS.
        st = tl.dot(k, tl.trans(q), input_precision=PRECISION)
        # Padded queries need no mask: their q, dO, lse and delta load as 0, so P^T is 1 there and
        # both products below add 0 * 1.
        pt = tl.exp2(st * qk_scale - lse2[None, :])
        dv = tl.dot(pt.to(dtype), do, dv, input_precision=PRECISION)
        dpt = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        dst = (pt * (dpt - delta[None, :])).to(dtype)
        dk = tl.dot(dst, q, dk, input_precision=PRECISION)

    # Keys in [n_keys, Sk) are stored too, as zeros.
    k_store = offs_n < Sk
    _store_rows(dv_ptr, tl.where(n_ok[:, None], dv, 0.0), offs_n, k_store, stride_dks, offs_d, D)
    _store_rows(dk_ptr, tl.where(n_ok[:, None], dk * sm_scale, 0.0), offs_n, k_store, stride_dks, offs_d, D)


@triton.jit
def _attn_bwd_dq_block(
    dq, q, do, lse2, delta, k_ptr, v_ptr, start_n, n_keys, stride_ks, stride_vs, offs_d, qk_scale,
    D: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
):  # fmt: skip
    """One key block's share of dQ; MASKED for the last block when it is partial."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    n_ok = offs_n < n_keys if MASKED else None
    k = _load_rows(k_ptr, offs_n, n_ok, stride_ks, offs_d, D)
    v = _load_rows(v_ptr, offs_n, n_ok, stride_vs, offs_d, D)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION)
    # Padded query rows need no mask: their dO and delta are 0, so their dS is 0.
    p = tl.exp2(s * qk_scale - lse2[:, None])
    if MASKED:
        # A masked key's zero row would give p = exp(-lse), which may overflow, and inf * 0 is NaN.
        p = tl.where(n_ok[None, :], p, 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    ds = (p * (dp - delta[:, None])).to(v_ptr.dtype.element_ty)
    return tl.dot(ds, k, dq, input_precision=PRECISION)


@_tiled("dq")
@triton.jit
def _attn_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, klen_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_gb, stride_gs, stride_gh, stride_dqb, stride_dqs, stride_dqh,
    H, Sq, Sk, qk_scale, sm_scale,
    D: tl.constexpr, HAS_KLEN: tl.constexpr, PRECISION: tl.constexpr, MASK_ALL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
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

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < Sq
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(q_ptr, offs_m, m_ok, stride_qs, offs_d, D)
    do = _load_rows(do_ptr, offs_m, m_ok, stride_gs, offs_d, D)
    # The lse is -inf only where n_keys == 0, and then no key block runs.
    lse2 = tl.load(lse_ptr + bh.to(tl.int64) * Sq + offs_m, mask=m_ok, other=0.0) * 1.4426950408889634
    delta = tl.load(delta_ptr + bh.to(tl.int64) * Sq + offs_m, mask=m_ok, other=0.0)

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    full_end = 0 if MASK_ALL else n_keys // BLOCK_N * BLOCK_N
    for start_n in range(0, full_end, BLOCK_N):
        dq = _attn_bwd_dq_block(
            dq, q, do, lse2, delta, k_ptr, v_ptr, start_n, n_keys, stride_ks, stride_vs, offs_d, qk_scale,
            D, PRECISION, BLOCK_N, MASKED=False,
        )  # fmt: skip
    for start_n in range(full_end, n_keys, BLOCK_N):
        dq = _attn_bwd_dq_block(
            dq, q, do, lse2, delta, k_ptr, v_ptr, start_n, n_keys, stride_ks, stride_vs, offs_d, qk_scale,
            D, PRECISION, BLOCK_N, MASKED=True,
        )  # fmt: skip

    # Every query row is stored: a row with no key gets the zeros it accumulated.
    _store_rows(dq_ptr, dq * sm_scale, offs_m, m_ok, stride_dqs, offs_d, D)


@triton.jit
def _merge_block_kernel(
    out_ptr, lse_ptr, block_ptr, block_lse_ptr, H, S,
    D: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid_s = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    row_ok = rows < S
    lse = tl.load(lse_ptr + bh * S + rows, mask=row_ok, other=0.0)
    block_lse = tl.load(block_lse_ptr + bh * S + rows, mask=row_ok, other=0.0)
    # Both are finite (every block has a key): logaddexp, and the block's weight exp(block_lse - new).
    merged = tl.maximum(lse, block_lse) + tl.log(1.0 + tl.exp(-tl.abs(lse - block_lse)))
    weight = tl.exp(block_lse - merged)
    offs_d = tl.arange(0, BLOCK_D)
    offs = ((b * S + rows) * H + h)[:, None] * D + offs_d[None, :]
    mask = row_ok[:, None] & (offs_d < D)[None, :]
    out = tl.load(out_ptr + offs, mask=mask, other=0.0)
    block = tl.load(block_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, out + (block - out) * weight[:, None], mask=mask)
    tl.store(lse_ptr + bh * S + rows, merged, mask=row_ok)


def merge_block(
    out: torch.Tensor, lse: torch.Tensor, block_out: torch.Tensor, block_lse: torch.Tensor
) -> None:
    """Fold one K/V block's attention into the running result, in place, in one pass: ``out`` (B, S, H, D)
    float32 and ``lse`` (B, H, S) float32 become those of the union of keys. ``block_out`` (B, S, H, D)
    any float dtype and ``block_lse``; all contiguous, every lse finite."""
    B, S, H, D = out.shape
    block_s = 32 if _INTERPRET else 64
    _merge_block_kernel[(triton.cdiv(S, block_s), B * H)](
        out, lse, block_out, block_lse, H, S, D=D, BLOCK_S=block_s, BLOCK_D=triton.next_power_of_2(D),
        num_warps=8,
    )  # fmt: skip


def _flags(q: torch.Tensor, k_lengths: torch.Tensor | None) -> dict:
    """The constexpr arguments shared by the attention kernels."""
    D = q.shape[3]
    return {
        "D": D,
        "HAS_KLEN": k_lengths is not None,
        # float32 inputs get exact fp32 dots on the GPU, not tf32 (about 3e-4 off).
        "PRECISION": "ieee" if q.dtype == torch.float32 else None,
        # The forward and dQ loops run their full key blocks unmasked and the partial one masked: two
        # copies of the loop body. Exact fp32 dots (FMA, not tensor cores) already fill the registers,
        # and with the second copy ptxas spills kilobytes: float32 masks every block instead.
        "MASK_ALL": q.dtype == torch.float32,
        "BLOCK_D": triton.next_power_of_2(D),
    }


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_lengths: torch.Tensor | None,
    softmax_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, Sq, H, D) contiguous in q's dtype, lse (B, H, Sq) float32, natural log)."""
    B, Sq, H = q.shape[:3]
    Sk = k.shape[1]
    out = empty_output(q.shape, q)
    lse = empty_output((B, H, Sq), q, torch.float32)
    # q stands in for absent k_lengths: the kernel never reads it then.
    klen = k_lengths if k_lengths is not None else q
    _attn_fwd_kernel[lambda meta: (triton.cdiv(Sq, meta["BLOCK_M"]), B * H)](
        q, k, v, klen, out, lse,
        *bshd_strides(q), *bshd_strides(k), *bshd_strides(v), *bshd_strides(out),
        H, Sq, Sk, softmax_scale * LOG2E,
        **_flags(q, k_lengths), **_launch_tiles("fwd"),
    )  # fmt: skip
    return out, lse


def attention_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    k_lengths: torch.Tensor | None,
    softmax_scale: float,
    grad_lse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_q, grad_k, grad_v) from the forward's out and lse (lse contiguous (B, H, Sq) float32).
    ``grad_lse`` (B, H, Sq) float32, contiguous, when the lse has a gradient."""
    B, Sq, H, D = q.shape
    Sk = k.shape[1]
    grad_q = empty_output(q.shape, q)
    grad_k = empty_output(k.shape, k)
    grad_v = empty_output(v.shape, v)
    delta = empty_output((B, H, Sq), q, torch.float32)
    pre_block_m = 32
    _attn_bwd_preprocess_kernel[(triton.cdiv(Sq, pre_block_m), B * H)](
        out, grad_out, grad_lse if grad_lse is not None else delta, delta,
        *bshd_strides(out), *bshd_strides(grad_out), H, Sq,
        D=D, HAS_GLSE=grad_lse is not None, BLOCK_M=pre_block_m, BLOCK_D=triton.next_power_of_2(D),
    )  # fmt: skip

    flags = _flags(q, k_lengths)
    klen = k_lengths if k_lengths is not None else q
    common = (q, k, v, klen, grad_out, lse, delta)
    in_strides = (*bshd_strides(q), *bshd_strides(k), *bshd_strides(v), *bshd_strides(grad_out))
    scales = (softmax_scale * LOG2E, softmax_scale)
    # The dK/dV loop masks nothing, so it has no partial-block copy to leave out.
    unsplit = {name: value for name, value in flags.items() if name != "MASK_ALL"}
    _attn_bwd_dkdv_kernel[lambda meta: (triton.cdiv(Sk, meta["BLOCK_N"]), B * H)](
        *common, grad_k, grad_v, *in_strides, *bshd_strides(grad_k), H, Sq, Sk, *scales,
        **unsplit, **_launch_tiles("dkdv"),
    )  # fmt: skip
    _attn_bwd_dq_kernel[lambda meta: (triton.cdiv(Sq, meta["BLOCK_M"]), B * H)](
        *common, grad_q, *in_strides, *bshd_strides(grad_q), H, Sq, Sk, *scales,
        **flags, **_launch_tiles("dq"),
    )  # fmt: skip
    return grad_q, grad_k, grad_v
