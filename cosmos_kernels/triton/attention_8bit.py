"""8-bit attention in Triton: a quantizing QK-norm + RoPE prologue, then INT8 QKᵀ (and FP8 PV) attention.

Spec: ``cosmos_kernels/reference/attention_8bit.py``, the torch emulation of the same arithmetic (blocks,
scales, rounding, online softmax); the tests compare these kernels with it under the interpreter.

Passes, for q (B, Sq, H, D), k and v (B, Sk, H, D):
1. ``_key_stats_kernel``: RMSNorm + RoPE of k's valid rows, summed per (row block, batch, head) into a
   float32 workspace that torch reduces to the keys' mean (B, H, D) in a fixed order; for FP8 PV also
   the per-channel amax of |v|. This is the one extra read the mean costs: k once more (and v).
2. ``_quantize_rows_kernel`` for q and for k: RMSNorm + RoPE again (cheaper than writing k' and reading
   it back), k's mean subtracted, then INT8 codes with one scale per block of QUERY_BLOCK (KEY_BLOCK)
   rows per head: the key block is the attention kernel's key tile, its 128-row query tile holds two
   query blocks (finer scales for q at no cost in the attention kernel, and a 64-row prologue tile
   takes 163 registers at D = 128 where a 128-row one takes 237). q's scales carry softmax_scale *
   log2(e). With ``return_lse`` q's pass also writes softmax_scale * q'.mean per row, what the lse
   gets back. Each program walks all heads of its rows, as in ``qk_norm_rope.py``, so the RoPE tables
   are read once.
3. ``_quantize_v_kernel`` (FP8 PV only): v * (448 / amax) in e4m3, written transposed (B, H, D, Sk) so
   that the PV product's second operand is K-major, the layout Hopper's FP8 wgmma takes (SageAttention2
   transposes v for the same reason).
4. ``_attention_8bit_kernel``: grid (query block, batch x head), as ``attention.py``'s forward, with an
   INT8 dot accumulated in int32 times (q scale * k scale) per block pair, online softmax in float32,
   and PV in v's dtype or, P * 2^8 (from exp2) cast to e4m3, an FP8 dot accumulated in float32.

Traffic at the Cosmos-7B shape (bf16, B=1, S=56,320, 32 x 128 heads, 461 MB per tensor): pass 1 reads
k (461 MB; with FP8 PV also v, 461 MB), pass 2 reads q and k and writes them in INT8 (922 + 461 MB),
pass 3 reads v and writes FP8 (461 + 231 MB): 1.84 GB for qk-int8, the exact prologue's traffic for q
and k, and 3.0 GB with FP8 PV.

The launchers trust the caller (``cosmos_kernels.ops.attention_8bit``): D in (32, 64, 128); q, k, v of one
dtype among float16/bfloat16/float32 with unit stride in D; weights (D,) contiguous or None; tables
(S, D/2) float32 with unit stride in the last dim or None; k_lengths (B,) int32/int64 in [0, Sk].
"""

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output
from cosmos_kernels._backend import triton_interpreter_enabled
from cosmos_kernels.reference.attention_8bit import (
    AMAX_FLOOR,
    FP8_MAX,
    INT8_MAX,
    KEY_BLOCK,
    LN2,
    LOG2E,
    P_LOG2_SCALE,
    QUERY_BLOCK,
)
from cosmos_kernels.triton.layout import bshd_strides
from cosmos_kernels.triton.qk_norm_rope import _load_halves, _load_tables, _rstd

# Query rows per attention program, QUERY_BLOCK's multiple: SageAttention's tile.
_BLOCK_M = 128
# Rows per program of the statistics and v passes: as the exact prologue's measured tile.
_STATS_ROWS = 32
# Whether a float32 -> e4m3 cast rounds correctly: on GPUs, not in the interpreter (see _to_e4m3).
_EXACT_CAST = not triton_interpreter_enabled()
# The emulation's constants, as the kernels can read them (Triton takes globals only as constexpr).
_AMAX_FLOOR = tl.constexpr(AMAX_FLOOR)
_FP8_MAX = tl.constexpr(FP8_MAX)
_INT8_MAX = tl.constexpr(INT8_MAX)
_LN2 = tl.constexpr(LN2)
_P_LOG2_SCALE = tl.constexpr(P_LOG2_SCALE)


@triton.jit
def _num_valid(klen_ptr, b, S, HAS_KLEN: tl.constexpr):
    n = S
    if HAS_KLEN:
        n = tl.minimum(tl.load(klen_ptr + b).to(tl.int32), S)
    return n


@triton.jit
def _norm_rope(x1, x2, w1, w2, c, s, eps, HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr):
    """RMSNorm then rotate-half RoPE of the two halves of a row tile, in float32 (reference order)."""
    if NORM:
        rstd = _rstd(x1, x2, eps, HALF)
        x1 = x1 * rstd[:, None] * w1
        x2 = x2 * rstd[:, None] * w2
    if ROPE:
        x1, x2 = x1 * c - x2 * s, x2 * c + x1 * s
    return x1, x2


@triton.jit
def _key_stats_kernel(
    k_ptr, w_ptr, cos_ptr, sin_ptr, klen_ptr, v_ptr, ksum_ptr, vmax_ptr,
    stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh, stride_cs, stride_ss,
    H, S, eps,
    HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr, HAS_KLEN: tl.constexpr,
    V_AMAX: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    pid_s, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_h = tl.arange(0, HALF)
    valid = (rows < _num_valid(klen_ptr, b, S, HAS_KLEN))[:, None]
    # Placeholders where there is no norm or RoPE: _norm_rope never reads them then.
    w1 = None
    w2 = None
    c = None
    s = None
    if NORM:
        w1, w2 = _load_halves(w_ptr, offs_h[None, :], offs_h[None, :] < HALF, HALF)
    if ROPE:
        c, s = _load_tables(cos_ptr, sin_ptr, rows, offs_h, valid, stride_cs, stride_ss)
    k_rows = k_ptr + b * stride_kb + (rows * stride_ks)[:, None] + offs_h[None, :]
    v_rows = v_ptr + b * stride_vb + (rows * stride_vs)[:, None] + offs_h[None, :]
    # One workspace row of D per (batch, row block, head).
    ws = ((b * tl.num_programs(0) + pid_s) * H) * (2 * HALF) + offs_h
    for h in range(H):
        # Masked rows load as zeros and stay zeros through norm and RoPE: they add nothing.
        x1, x2 = _load_halves(k_rows + h * stride_kh, 0, valid, HALF)
        x1, x2 = _norm_rope(x1, x2, w1, w2, c, s, eps, HALF, NORM, ROPE)
        tl.store(ksum_ptr + ws + h * 2 * HALF, tl.sum(x1, axis=0))
        tl.store(ksum_ptr + ws + h * 2 * HALF + HALF, tl.sum(x2, axis=0))
        if V_AMAX:
            v1, v2 = _load_halves(v_rows + h * stride_vh, 0, valid, HALF)
            tl.store(vmax_ptr + ws + h * 2 * HALF, tl.max(tl.abs(v1), axis=0))
            tl.store(vmax_ptr + ws + h * 2 * HALF + HALF, tl.max(tl.abs(v2), axis=0))


@triton.jit
def _to_e4m3(x, EXACT_CAST: tl.constexpr):
    """x (float32, |x| <= 448) in FP8 e4m3, rounded to nearest even.

    The GPU's cast rounds correctly. Triton's interpreter (3.9; 3.6 unchecked) drops the carry when rounding
    crosses a power of two (31.9 -> 16, not 32), so there the mantissa is first rounded to e4m3's 3
    bits in float32 (RNE on the bit pattern; the carry propagates into the exponent) and the cast
    is then exact for e4m3's normal range, which is where P * 2^8 and v's codes lie but for values
    below 2^-6 (P < 2^-14, |v| < amax / 2^15)."""
    if not EXACT_CAST:
        bits = x.to(tl.int32, bitcast=True)
        bits = (bits + 0x7FFFF + ((bits >> 20) & 1)) & -0x100000
        x = bits.to(tl.float32, bitcast=True)
    return x.to(tl.float8e4nv)


@triton.jit
def _round_to_int8(y):
    # Half away from zero: Triton's float-to-int cast truncates.
    return (y + tl.where(y >= 0, 0.5, -0.5)).to(tl.int8)


@triton.jit
def _quantize_rows_kernel(
    x_ptr, w_ptr, cos_ptr, sin_ptr, mean_ptr, klen_ptr, codes_ptr, scale_ptr, shift_ptr,
    stride_xb, stride_xs, stride_xh, stride_cs, stride_ss,
    H, S, eps, dequant, lse_scale,
    HALF: tl.constexpr, NORM: tl.constexpr, ROPE: tl.constexpr, CENTER: tl.constexpr,
    SHIFT: tl.constexpr, HAS_KLEN: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    pid_s, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    n_blocks = tl.num_programs(0)
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_h = tl.arange(0, HALF)
    in_seq = rows < S
    valid = (rows < _num_valid(klen_ptr, b, S, HAS_KLEN))[:, None]
    # Placeholders where there is no norm or RoPE: _norm_rope never reads them then.
    w1 = None
    w2 = None
    c = None
    s = None
    if NORM:
        w1, w2 = _load_halves(w_ptr, offs_h[None, :], offs_h[None, :] < HALF, HALF)
    if ROPE:
        c, s = _load_tables(cos_ptr, sin_ptr, rows, offs_h, valid, stride_cs, stride_ss)
    x_rows = x_ptr + b * stride_xb + (rows * stride_xs)[:, None] + offs_h[None, :]
    codes_rows = codes_ptr + ((b * S + rows) * H)[:, None] * (2 * HALF) + offs_h[None, :]
    for h in range(H):
        x1, x2 = _load_halves(x_rows + h * stride_xh, 0, valid, HALF)
        x1, x2 = _norm_rope(x1, x2, w1, w2, c, s, eps, HALF, NORM, ROPE)
        if CENTER or SHIFT:
            mu1, mu2 = _load_halves(
                mean_ptr + (b * H + h) * (2 * HALF), offs_h[None, :], offs_h[None, :] < HALF, HALF
            )
        if CENTER:
            x1 = tl.where(valid, x1 - mu1, 0.0)
            x2 = tl.where(valid, x2 - mu2, 0.0)
        if SHIFT:
            shift = (tl.sum(x1 * mu1, axis=1) + tl.sum(x2 * mu2, axis=1)) * lse_scale
            tl.store(shift_ptr + (b * H + h) * S + rows, shift, mask=in_seq)
        amax = tl.maximum(tl.maximum(tl.max(tl.abs(x1)), tl.max(tl.abs(x2))), _AMAX_FLOOR)
        inv = _INT8_MAX / amax
        tl.store(codes_rows + h * 2 * HALF, _round_to_int8(x1 * inv), mask=in_seq[:, None])
        tl.store(codes_rows + h * 2 * HALF + HALF, _round_to_int8(x2 * inv), mask=in_seq[:, None])
        tl.store(scale_ptr + (b * H + h) * n_blocks + pid_s, amax * dequant)


@triton.jit
def _quantize_v_kernel(
    v_ptr, inv_ptr, klen_ptr, codes_ptr,
    stride_vb, stride_vs, stride_vh,
    H, S, D: tl.constexpr, HAS_KLEN: tl.constexpr, EXACT_CAST: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    pid_s, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, D)
    valid = (rows < _num_valid(klen_ptr, b, S, HAS_KLEN))[:, None]
    for h in range(H):
        v = tl.load(
            v_ptr + b * stride_vb + h * stride_vh + (rows * stride_vs)[:, None] + offs_d[None, :],
            mask=valid,
            other=0.0,
        ).to(tl.float32)
        inv = tl.load(inv_ptr + (b * H + h) * D + offs_d)
        codes = _to_e4m3(tl.minimum(tl.maximum(v * inv[None, :], -_FP8_MAX), _FP8_MAX), EXACT_CAST)
        # Transposed: (B, H, D, S).
        tl.store(
            codes_ptr + (b * H + h) * D * S + offs_d[None, :] * S + rows[:, None],
            codes,
            mask=(rows < S)[:, None],
        )


@triton.jit
def _scores_to_float(s):
    """int32 scores (|s| <= 128 * 127^2 < 2^22) to float32, exactly, on the FP32 and INT32 pipes.

    The GPU's int-to-float cast runs at 16 per clock per SM on sm_90, the rate of exp2 (CUDA's
    throughput table), so one per score would cost as much as the softmax's exponentials (~27 ms at
    the Cosmos-7B shape, unoverlapped). 1.5 * 2^23 holds the integers of [-2^22, 2^22) in its mantissa:
    add the integer to its bit pattern, and subtract it as a float."""
    return (s + 0x4B400000).to(tl.float32, bitcast=True) - 12582912.0


@triton.jit
def _attention_8bit_block(
    acc, l_i, m_i, q, q_scale, k_ptr, ks_ptr, v_ptr, start_n, n_keys, stride_ks, stride_vs, stride_vd,
    offs_d, PV_FP8: tl.constexpr, EXACT_CAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr,
):  # fmt: skip
    """One key block of the online softmax; MASKED for the last block when it is partial."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    n_ok = offs_n < n_keys
    k_tile = k_ptr + (offs_n * stride_ks)[:, None] + offs_d[None, :]
    k = tl.load(k_tile, mask=n_ok[:, None], other=0) if MASKED else tl.load(k_tile)
    k_scale = tl.load(ks_ptr + start_n // BLOCK_N)
    s = _scores_to_float(tl.dot(q, tl.trans(k), out_dtype=tl.int32))
    scale = q_scale * k_scale
    if MASKED:
        s = tl.where(n_ok[None, :], s, float("-inf"))
    # The scales are positive, so max(s) * scale is the max of the scaled scores (rounding is monotonic)
    # and scaling and shifting is one FMA per score, as in attention.py's forward. Every block in the
    # loop has a valid key, so m_new is finite.
    m_new = tl.maximum(m_i, tl.max(s, axis=1) * scale)
    p_max = m_new
    if PV_FP8:
        # P 2^8 times larger for its e4m3 codes at no cost (the shift joins the max's); l carries the
        # same factor, which out = acc / l cancels.
        p_max = m_new - _P_LOG2_SCALE
    p = tl.exp2(s * scale[:, None] - p_max[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    # v (BLOCK_N, D) from its strides: (S, D) rows for v itself, (D, S) columns for FP8 codes.
    v_tile = v_ptr + (offs_n * stride_vs)[:, None] + (offs_d * stride_vd)[None, :]
    v = tl.load(v_tile, mask=n_ok[:, None], other=0.0) if MASKED else tl.load(v_tile)
    if PV_FP8:
        acc = tl.dot(_to_e4m3(p, EXACT_CAST), v, acc * alpha[:, None])
    else:
        acc = tl.dot(p.to(v_ptr.dtype.element_ty), v, acc * alpha[:, None], input_precision=PRECISION)
    return acc, l_i, m_new


@triton.jit
def _attention_8bit_kernel(
    q_ptr, k_ptr, v_ptr, qs_ptr, ks_ptr, vs_ptr, shift_ptr, klen_ptr, out_ptr, lse_ptr,
    stride_vb, stride_vh, stride_vs, stride_vd, stride_ob, stride_os, stride_oh,
    H, Sq, Sk,
    D: tl.constexpr, HAS_KLEN: tl.constexpr, PV_FP8: tl.constexpr, EXACT_CAST: tl.constexpr,
    SHIFT: tl.constexpr, PRECISION: tl.constexpr, QUERY_BLOCK: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    # The codes are contiguous BSHD; int64 bases, int32 offsets inside one (batch, head).
    q_ptr += (b.to(tl.int64) * Sq * H + h) * D
    k_ptr += (b.to(tl.int64) * Sk * H + h) * D
    v_ptr += b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    out_ptr += b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
    ks_ptr += bh.to(tl.int64) * tl.cdiv(Sk, BLOCK_N)
    n_keys = _num_valid(klen_ptr, b, Sk, HAS_KLEN)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < Sq
    offs_d = tl.arange(0, D)
    q = tl.load(q_ptr + (offs_m * H * D)[:, None] + offs_d[None, :], mask=m_ok[:, None], other=0)
    # One q scale per QUERY_BLOCK rows: a tile of BLOCK_M rows holds BLOCK_M // QUERY_BLOCK of them.
    # Rows past Sq get scale 1: their scores stay finite (zeros), never 0 * -inf.
    q_scale = tl.load(
        qs_ptr + bh.to(tl.int64) * tl.cdiv(Sq, QUERY_BLOCK) + offs_m // QUERY_BLOCK, mask=m_ok, other=1.0
    )

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    full_end = n_keys // BLOCK_N * BLOCK_N
    for start_n in range(0, full_end, BLOCK_N):
        acc, l_i, m_i = _attention_8bit_block(
            acc, l_i, m_i, q, q_scale, k_ptr, ks_ptr, v_ptr, start_n, n_keys, H * D, stride_vs, stride_vd,
            offs_d, PV_FP8, EXACT_CAST, PRECISION, BLOCK_N, MASKED=False,
        )  # fmt: skip
    for start_n in range(full_end, n_keys, BLOCK_N):
        acc, l_i, m_i = _attention_8bit_block(
            acc, l_i, m_i, q, q_scale, k_ptr, ks_ptr, v_ptr, start_n, n_keys, H * D, stride_vs, stride_vd,
            offs_d, PV_FP8, EXACT_CAST, PRECISION, BLOCK_N, MASKED=True,
        )  # fmt: skip

    # A row with no key (n_keys == 0) has l_i = 0: zeros out, lse -inf, as the emulation gives.
    has_keys = l_i > 0.0
    out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    if PV_FP8:
        out = out * tl.load(vs_ptr + bh.to(tl.int64) * D + offs_d)[None, :]
        m_i -= _P_LOG2_SCALE
    tl.store(
        out_ptr + (offs_m * stride_os)[:, None] + offs_d[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=m_ok[:, None],
    )
    lse = tl.where(has_keys, (m_i + tl.log2(tl.where(has_keys, l_i, 1.0))) * _LN2, float("-inf"))
    row = bh.to(tl.int64) * Sq + offs_m
    if SHIFT:
        lse += tl.load(shift_ptr + row, mask=m_ok, other=0.0)
    tl.store(lse_ptr + row, lse, mask=m_ok)


def _warps_and_stages(D: int) -> dict:
    # Compiled ahead of time for sm_90a with the JIT's specialization (pointers and sizes divisible by
    # 16; triton 3.9 here, the GPU image has 3.6: unchecked there): at 8 warps D = 128 takes 172-186
    # registers (one CTA per SM), D = 64 114-128 (two), no spill, 427-434 instructions per key block in
    # the hot loop at D = 128 (attention.py's forward, same tile and compiler: 370); at 4 warps D = 128
    # spills 8-48 bytes. 3 stages: 67 KB (FP8 PV) and 91 KB (bf16 PV) of shared memory.
    return {"num_warps": 8, "num_stages": 3}


def _tables(cos: torch.Tensor | None, sin: torch.Tensor | None, like: torch.Tensor) -> tuple:
    """(cos, sin, their row strides); ``like`` stands in for absent tables, never read then."""
    if cos is None:
        return like, like, 0, 0
    return cos, sin, cos.stride(0), sin.stride(0)


def attention_8bit(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_norm_weight: torch.Tensor | None,
    k_norm_weight: torch.Tensor | None,
    cos: torch.Tensor | None,
    sin: torch.Tensor | None,
    k_lengths: torch.Tensor | None,
    eps: float,
    softmax_scale: float,
    pv_fp8: bool,
    return_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, Sq, H, D) contiguous in q's dtype, lse (B, H, Sq) float32, natural log): the quantizing
    prologue's passes and the attention kernel."""
    B, Sq, H, D = q.shape
    Sk = k.shape[1]
    half = D // 2
    rope = cos is not None
    cos, sin, stride_cs, stride_ss = _tables(cos, sin, q)
    klen = k_lengths if k_lengths is not None else q
    has_klen = k_lengths is not None

    stats_grid = (triton.cdiv(Sk, _STATS_ROWS), B)
    ksum = torch.empty((B, stats_grid[0], H, D), dtype=torch.float32, device=q.device)
    vmax = torch.empty_like(ksum) if pv_fp8 else ksum
    _key_stats_kernel[stats_grid](
        k, k_norm_weight if k_norm_weight is not None else k, cos, sin, klen, v, ksum, vmax,
        *bshd_strides(k), *bshd_strides(v), stride_cs, stride_ss, H, Sk, eps,
        HALF=half, NORM=k_norm_weight is not None, ROPE=rope, HAS_KLEN=has_klen, V_AMAX=pv_fp8,
        BLOCK_S=_STATS_ROWS, num_warps=4,
    )  # fmt: skip
    count = (k_lengths.clamp(max=Sk) if has_klen else torch.full((B,), Sk, device=q.device)).clamp_min(1)
    mean = ksum.sum(1) / count.to(torch.float32)[:, None, None]  # (B, H, D)

    # Int8 has no NaN to poison with; a code the prologue failed to write would show in the output.
    q_codes = torch.empty(q.shape, dtype=torch.int8, device=q.device)
    k_codes = torch.empty(k.shape, dtype=torch.int8, device=q.device)
    q_scale = empty_output((B, H, triton.cdiv(Sq, QUERY_BLOCK)), q, torch.float32)
    k_scale = empty_output((B, H, triton.cdiv(Sk, KEY_BLOCK)), q, torch.float32)
    shift = empty_output((B, H, Sq), q, torch.float32) if return_lse else q_scale
    for x, weight, codes, scale, block, is_key in (
        (q, q_norm_weight, q_codes, q_scale, QUERY_BLOCK, False),
        (k, k_norm_weight, k_codes, k_scale, KEY_BLOCK, True),
    ):
        dequant = (1.0 if is_key else softmax_scale * LOG2E) / INT8_MAX
        _quantize_rows_kernel[(triton.cdiv(x.shape[1], block), B)](
            x, weight if weight is not None else x, cos, sin, mean, klen, codes, scale, shift,
            *bshd_strides(x), stride_cs, stride_ss, H, x.shape[1], eps, dequant, softmax_scale,
            HALF=half, NORM=weight is not None, ROPE=rope, CENTER=is_key,
            SHIFT=return_lse and not is_key, HAS_KLEN=has_klen and is_key, BLOCK_S=block, num_warps=8,
        )  # fmt: skip

    if pv_fp8:
        amax = vmax.amax(1)  # (B, H, D)
        v_scale = amax / FP8_MAX
        v_in = empty_output((B, H, D, Sk), q, torch.float8_e4m3fn)
        _quantize_v_kernel[(triton.cdiv(Sk, _STATS_ROWS), B)](
            v, FP8_MAX / amax.clamp_min(AMAX_FLOOR), klen, v_in, *bshd_strides(v), H, Sk,
            D=D, HAS_KLEN=has_klen, EXACT_CAST=_EXACT_CAST, BLOCK_S=_STATS_ROWS, num_warps=8,
        )  # fmt: skip
        v_strides = (H * D * Sk, D * Sk, 1, Sk)  # batch, head, sequence, channel
    else:
        v_in, v_scale = v, q_scale
        v_strides = (v.stride(0), v.stride(2), v.stride(1), 1)

    out = empty_output(q.shape, q)
    lse = empty_output((B, H, Sq), q, torch.float32)
    _attention_8bit_kernel[(triton.cdiv(Sq, _BLOCK_M), B * H)](
        q_codes, k_codes, v_in, q_scale, k_scale, v_scale, shift, klen, out, lse,
        *v_strides, *bshd_strides(out), H, Sq, Sk,
        D=D, HAS_KLEN=has_klen, PV_FP8=pv_fp8, EXACT_CAST=_EXACT_CAST, SHIFT=return_lse,
        PRECISION="ieee" if q.dtype == torch.float32 else None,
        QUERY_BLOCK=QUERY_BLOCK, BLOCK_M=_BLOCK_M, BLOCK_N=KEY_BLOCK, **_warps_and_stages(D),
    )  # fmt: skip
    return out, lse
