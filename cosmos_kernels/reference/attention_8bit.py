"""8-bit attention in plain PyTorch: the exact emulation of what the Triton kernels quantize and compute.

Not an approximation of the kernels but the same arithmetic, step for step (DESIGN.md, "Approximate
modes"): the same blocks, scales, rounding and online softmax, so a CPU gives the kernels' numbers and
the kernels' tests have a reference. What it approximates is exact attention
(``cosmos_kernels.reference.attention``); how far, is measured in tests/test_attention_8bit.py.

The quantization (SageAttention's, Zhang et al. 2024, with its FP8 PV from SageAttention2):
- q' and k' are the prologue's outputs (RMSNorm, RoPE) in float32. The keys' mean over the valid
  tokens of each (batch, head) is subtracted from k': softmax is invariant to it (it shifts every score
  of a row by the same q'.mean), and it removes the component all keys share, which would otherwise use
  up INT8's range. Keys past ``k_lengths[b]`` become zeros.
- q' and k' become INT8 with one float32 scale per block of ``query_block`` (``key_block``) rows per
  (batch, head), 64 each (the attention kernel's key tile, half its query tile): scale = amax / 127,
  code = x * (127 / amax) rounded half away from zero (Triton's float-to-int cast truncates; +-0.5
  first). q's stored scale also carries
  softmax_scale * log2(e), so the kernel's scores are in the log2 domain of exp2.
- ``qk-int8``: P (float32) is rounded to v's dtype and multiplied by v (float32 accumulation).
  ``qk-int8-pv-fp8``: v becomes FP8 e4m3 with one scale per channel per (batch, head),
  amax over the valid tokens / 448 (round to nearest even, as Triton's and torch's casts do); P is
  computed 2^8 times larger, exp2(s - (max - 8)) (P <= 1, so its e4m3 codes stay normal down to
  P = 2^-14; its row sum carries the same factor, cancelled by the division), cast to e4m3,
  and the FP8 products accumulate in float32.
- The scores are int32 dots times (q scale * k scale); the softmax runs online over key blocks with
  float32 running max and sum, as the kernel does, so P is rounded relative to the same running max.
  With ``return_lse`` the log-sum-exp gets softmax_scale * q'.mean back: it is that of the scores
  before the mean was subtracted, as ring attention's merges need.
"""

from typing import NamedTuple

import torch

from cosmos_kernels.reference.attention import attention_prologue

PRECISIONS = ("qk-int8", "qk-int8-pv-fp8")
# Cosmos-7B/14B use 128; 32 is the shipped tiny world model's (its end-to-end figures need it).
HEAD_DIMS = (32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# One scale per block of this many query (key) rows per (batch, head): the key block is the attention
# kernel's key tile; its query tile of 128 rows holds two query blocks, which costs it nothing (a
# per-row vector of scales) and keeps the prologue's tile at 64 rows.
QUERY_BLOCK = 64
KEY_BLOCK = 64
INT8_MAX = 127.0
FP8_MAX = 448.0
# P in [0, 1] times 2^8 (exp2 of 8 more): its e4m3 codes stay normal (>= 2^-6) down to P = 2^-14.
P_LOG2_SCALE = 8.0
LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
# amax floor: an all-zero block (padding, masked keys) gets codes 0 and a tiny scale, never 0 / 0.
AMAX_FLOOR = 1e-30


class QuantizedQKV(NamedTuple):
    """The prologue's outputs, as the attention kernel reads them (BSHD codes, (B, H, blocks) scales)."""

    q: torch.Tensor  # int8 (B, Sq, H, D)
    q_scale: torch.Tensor  # float32 (B, H, ceil(Sq / query_block)), softmax_scale * log2(e) folded in
    k: torch.Tensor  # int8 (B, Sk, H, D), mean-subtracted, zeros past k_lengths
    k_scale: torch.Tensor  # float32 (B, H, ceil(Sk / key_block))
    v: torch.Tensor  # v itself (qk-int8) or float8_e4m3fn codes (qk-int8-pv-fp8), zeros past k_lengths
    v_scale: torch.Tensor | None  # float32 (B, H, D) per-channel scales for FP8 v, else None
    lse_shift: torch.Tensor | None  # float32 (B, H, Sq): softmax_scale * q'.mean, with return_lse


def round_half_away(y: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, ties away from zero, as the kernels do: +-0.5, then truncate."""
    return torch.trunc(y + torch.where(y >= 0, 0.5, -0.5))


def quantize_int8_blocks(x: torch.Tensor, block: int, dequant: float) -> tuple[torch.Tensor, torch.Tensor]:
    """INT8 codes (B, S, H, D) of x (B, S, H, D) float32 and the scales (B, H, ceil(S / block)),
    amax * ``dequant`` rounded to float32, one per block of ``block`` rows of each (batch, head)."""
    batch, seq, heads, dim = x.shape
    blocks = -(-seq // block)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, blocks * block - seq))
    amax = padded.view(batch, blocks, block, heads, dim).abs().amax(dim=(2, 4)).clamp_min(AMAX_FLOOR)
    inv = (INT8_MAX / amax).repeat_interleave(block, dim=1)[:, :seq]  # (B, S, H)
    codes = round_half_away(x * inv.unsqueeze(-1)).to(torch.int8)
    scale = amax * torch.tensor(dequant, dtype=torch.float32)
    return codes, scale.transpose(1, 2).contiguous()


def key_mask(k_lengths: torch.Tensor | None, batch: int, seq_k: int, device: torch.device) -> torch.Tensor:
    """(B, Sk) bool: the keys attention may see."""
    positions = torch.arange(seq_k, device=device)
    if k_lengths is None:
        return torch.ones((batch, seq_k), dtype=torch.bool, device=device)
    return positions < k_lengths.to(device).unsqueeze(1)


def quantize_fp8_channels(v: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8_e4m3fn codes (B, S, H, D), zeros past the valid keys; scales (B, H, D) float32)."""
    vf = torch.where(keep[:, :, None, None], v.float(), 0.0)
    amax = vf.abs().amax(dim=1)  # (B, H, D)
    inv = FP8_MAX / amax.clamp_min(AMAX_FLOOR)
    codes = (vf * inv.unsqueeze(1)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return codes, amax / FP8_MAX


def quantize_qkv(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    q_norm_weight: torch.Tensor | None = None,
    k_norm_weight: torch.Tensor | None = None,
    norm_eps: float = 1e-6,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    k_lengths: torch.Tensor | None = None,
    precision: str = "qk-int8",
    return_lse: bool = False,
    query_block: int = QUERY_BLOCK,
    key_block: int = KEY_BLOCK,
) -> QuantizedQKV:
    """The quantizing prologue: RMSNorm and RoPE of q and k in float32, k's mean subtracted, INT8
    codes and block scales; for ``qk-int8-pv-fp8`` also v in FP8 e4m3 with per-channel scales."""
    batch, seq_k = k.shape[:2]
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
    qf, kf = attention_prologue(
        q.float(),
        k.float(),
        q_norm_weight=q_norm_weight,
        k_norm_weight=k_norm_weight,
        norm_eps=norm_eps,
        rope_cos=rope_cos,
        rope_sin=rope_sin,
    )
    keep = key_mask(k_lengths, batch, seq_k, k.device)
    valid = keep[:, :, None, None]
    count = keep.sum(1).clamp_min(1).to(torch.float32)[:, None, None]  # (B, 1, 1)
    mean = torch.where(valid, kf, 0.0).sum(1) / count  # (B, H, D)
    k_centered = torch.where(valid, kf - mean.unsqueeze(1), 0.0)
    q_codes, q_scale = quantize_int8_blocks(qf, query_block, scale * LOG2E / INT8_MAX)
    k_codes, k_scale = quantize_int8_blocks(k_centered, key_block, 1.0 / INT8_MAX)
    lse_shift = None
    if return_lse:
        lse_shift = (
            torch.einsum("bshd,bhd->bhs", qf, mean) * torch.tensor(scale, dtype=torch.float32)
        ).float()
    if precision == "qk-int8-pv-fp8":
        v_codes, v_scale = quantize_fp8_channels(v, keep)
    else:
        v_codes, v_scale = torch.where(valid, v, 0.0).to(v.dtype), None
    return QuantizedQKV(q_codes, q_scale, k_codes, k_scale, v_codes, v_scale, lse_shift)


def _rows(scale: torch.Tensor, block: int, seq: int) -> torch.Tensor:
    """Per-block scales (B, H, blocks) repeated onto their rows: (B, H, S)."""
    return scale.repeat_interleave(block, dim=2)[:, :, :seq]


def attention_from_quantized(
    quantized: QuantizedQKV,
    *,
    k_lengths: torch.Tensor | None,
    out_dtype: torch.dtype,
    query_block: int = QUERY_BLOCK,
    key_block: int = KEY_BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, Sq, H, D) in ``out_dtype``, lse (B, H, Sq) float32) from the prologue's outputs: INT8
    scores dequantized by the block scales, online softmax over key blocks of ``key_block``."""
    qc, q_scale, kc, k_scale, v, v_scale, lse_shift = quantized
    batch, seq_q, heads, dim = qc.shape
    seq_k = kc.shape[1]
    # Integer products summed in float32 are exact: |sum| <= 128 * 127^2 < 2^24.
    scores_int = torch.einsum("bqhd,bkhd->bhqk", qc.float(), kc.float())
    scores = scores_int * (
        _rows(q_scale, query_block, seq_q)[..., :, None] * _rows(k_scale, key_block, seq_k)[..., None, :]
    )
    keep = key_mask(k_lengths, batch, seq_k, qc.device)[:, None, None, :]
    fp8 = v_scale is not None
    vh = v.transpose(1, 2).float()  # (B, H, Sk, D)
    m = torch.full((batch, heads, seq_q), float("-inf"), device=qc.device)
    total = torch.zeros_like(m)
    acc = torch.zeros((batch, heads, seq_q, dim), device=qc.device)
    for start in range(0, seq_k, key_block):
        end = min(start + key_block, seq_k)
        block = scores[..., start:end].masked_fill(~keep[..., start:end], float("-inf"))
        m_new = torch.maximum(m, block.amax(-1))
        # A row with no key so far keeps m = -inf; the kernel never runs such a block (n_keys == 0).
        m_ref = torch.where(torch.isinf(m_new), 0.0, m_new)
        # FP8 PV: P and its sum 2^8 times larger, exp2(s - (m - 8)); out = acc / sum cancels it.
        p = torch.exp2(block - (m_ref - P_LOG2_SCALE if fp8 else m_ref).unsqueeze(-1))
        alpha = torch.exp2(m - m_ref)
        total = total * alpha + p.sum(-1)
        if fp8:
            p_q = p.to(torch.float8_e4m3fn).float()
        else:
            p_q = p.to(v.dtype).float()
        acc = acc * alpha.unsqueeze(-1) + p_q @ vh[:, :, start:end]
        m = m_new
    has_keys = total > 0
    out = acc / torch.where(has_keys, total, 1.0).unsqueeze(-1)
    if fp8:
        out = out * v_scale.unsqueeze(2)
        m = m - P_LOG2_SCALE
    lse = torch.where(has_keys, (m + torch.log2(torch.where(has_keys, total, 1.0))) * LN2, float("-inf"))
    if lse_shift is not None:
        lse = lse + lse_shift
    return out.transpose(1, 2).to(out_dtype), lse


def attention_8bit(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    q_norm_weight: torch.Tensor | None = None,
    k_norm_weight: torch.Tensor | None = None,
    norm_eps: float = 1e-6,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    k_lengths: torch.Tensor | None = None,
    return_lse: bool = False,
    precision: str = "qk-int8",
    query_block: int = QUERY_BLOCK,
    key_block: int = KEY_BLOCK,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention as the 8-bit kernels compute it; arguments and results as in
    :func:`cosmos_kernels.reference.attention`, plus ``precision`` and the quantization blocks."""
    if precision not in PRECISIONS:
        raise ValueError(f"attention_8bit: precision must be one of {PRECISIONS}, got {precision!r}")
    quantized = quantize_qkv(
        q,
        k,
        v,
        q_norm_weight=q_norm_weight,
        k_norm_weight=k_norm_weight,
        norm_eps=norm_eps,
        rope_cos=rope_cos,
        rope_sin=rope_sin,
        softmax_scale=softmax_scale,
        k_lengths=k_lengths,
        precision=precision,
        return_lse=return_lse,
        query_block=query_block,
        key_block=key_block,
    )
    out, lse = attention_from_quantized(
        quantized, k_lengths=k_lengths, out_dtype=q.dtype, query_block=query_block, key_block=key_block
    )
    return (out, lse) if return_lse else out
