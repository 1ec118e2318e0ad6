"""Attention with per-head QK RMSNorm and rotary embeddings, in plain PyTorch.

Layout BSHD: ``q`` is (B, Sq, H, D), ``k`` and ``v`` are (B, Sk, H, D). RoPE is rotate-half: dim ``i``
pairs with dim ``i + D/2``, and the tables ``cos``/``sin`` are (S, D/2), one row per token.
"""

import torch


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def rms_norm_per_head(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last (head) dim of (..., H, D) with one weight (D,) shared by every head."""
    ct = _compute_dtype(x)
    xf = x.to(ct)
    out = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps) * weight.to(ct)
    return out.to(x.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on (B, S, H, D) with tables (S, D/2): (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)."""
    ct = _compute_dtype(x)
    x1, x2 = x.to(ct).chunk(2, dim=-1)
    # (S, D/2) -> (S, 1, D/2): one row per token, shared by every head and batch entry.
    c, s = cos.to(ct).unsqueeze(1), sin.to(ct).unsqueeze(1)
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)


def qk_norm_rope(
    q: torch.Tensor,
    k: torch.Tensor,
    q_norm_weight: torch.Tensor,
    k_norm_weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm then RoPE on q and k, rounded to the input dtype once, at the end."""
    ct = _compute_dtype(q)
    q_out = apply_rope(rms_norm_per_head(q.to(ct), q_norm_weight, eps), cos, sin)
    k_out = apply_rope(rms_norm_per_head(k.to(ct), k_norm_weight, eps), cos, sin)
    return q_out.to(q.dtype), k_out.to(k.dtype)


def attention_prologue(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    q_norm_weight: torch.Tensor | None = None,
    k_norm_weight: torch.Tensor | None = None,
    norm_eps: float = 1e-6,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The optional RMSNorm, then the optional RoPE, of q and k as :func:`attention` applies them.

    Returns (q', k') in the compute dtype (float32, float64 for float64 input), not rounded back:
    the attention that follows reads them at that precision.
    """
    ct = _compute_dtype(q)
    qf, kf = q.to(ct), k.to(ct)
    if q_norm_weight is not None:
        qf = rms_norm_per_head(qf, q_norm_weight, norm_eps)
    if k_norm_weight is not None:
        kf = rms_norm_per_head(kf, k_norm_weight, norm_eps)
    if rope_cos is not None:
        qf, kf = apply_rope(qf, rope_cos, rope_sin), apply_rope(kf, rope_cos, rope_sin)
    return qf, kf


def attention(
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
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(norm+rope(q) · norm+rope(k)ᵀ * scale) v, keys at positions >= k_lengths[b] masked.

    Returns out (B, Sq, H, D) in q's dtype and, with ``return_lse``, the log-sum-exp of each row's
    scaled scores (B, H, Sq) in float32 (float64 for float64 input). A row whose keys are all masked
    gives zeros and an lse of -inf.
    """
    qf, kf = attention_prologue(
        q,
        k,
        q_norm_weight=q_norm_weight,
        k_norm_weight=k_norm_weight,
        norm_eps=norm_eps,
        rope_cos=rope_cos,
        rope_sin=rope_sin,
    )
    vf = v.to(qf.dtype)
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
    scores = torch.einsum("bqhd,bkhd->bhqk", qf, kf) * scale
    if k_lengths is not None:
        keep = torch.arange(k.shape[1], device=k.device) < k_lengths.unsqueeze(1)  # (B, Sk)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    # Subtracting 0 instead of -inf in fully masked rows keeps their probabilities exp(-inf) = 0,
    # not NaN, in the forward and in the gradient.
    probs = torch.exp(scores - torch.where(lse.isfinite(), lse, 0.0).unsqueeze(-1))
    out = torch.einsum("bhqk,bkhd->bqhd", probs, vf).to(q.dtype)
    return (out, lse) if return_lse else out
