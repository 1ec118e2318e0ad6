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


def attention_backward_from_lse(
    grad_out: torch.Tensor,
    grad_lse: torch.Tensor,
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
) -> list[torch.Tensor]:
    """The flash-attention backward in plain PyTorch, from the given out and lse, not from a recompute.

    The probabilities are rebuilt as exp(scores - lse) from the lse the caller passes, and the softmax
    gradient uses delta = rowsum(dO * out) - grad_lse with the caller's out (the flash identity). For
    the out and lse of this very call that is the exact gradient; given the out and lse of a larger
    attention (all key blocks of a ring) it gives this key block's share of that attention's gradient,
    which is what ring attention's backward needs. The norm/RoPE prologue is differentiated by a vjp
    of the reference.
    """
    given = {
        name: w
        for name, w in (("q_norm_weight", q_norm_weight), ("k_norm_weight", k_norm_weight))
        if w is not None
    }

    def prologue(
        q: torch.Tensor, k: torch.Tensor, *weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return attention_prologue(
            q,
            k,
            **dict(zip(given, weights, strict=True)),
            norm_eps=norm_eps,
            rope_cos=rope_cos,
            rope_sin=rope_sin,
        )

    (qf, kf), prologue_vjp = torch.func.vjp(prologue, q, k, *given.values())
    ct = qf.dtype
    scores = torch.einsum("bqhd,bkhd->bhqk", qf, kf) * softmax_scale
    if k_lengths is not None:
        keep = torch.arange(k.shape[1], device=k.device) < k_lengths.unsqueeze(1)  # (B, Sk)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    # Rows with no key have lse = -inf: subtracting 0 there keeps their probabilities exp(-inf) = 0.
    lse = lse.to(ct)
    probs = torch.exp(scores - torch.where(lse.isfinite(), lse, 0.0).unsqueeze(-1))
    grad_out_f, v_f = grad_out.to(ct), v.to(ct)
    grad_v = torch.einsum("bhqk,bqhd->bkhd", probs, grad_out_f)
    grad_probs = torch.einsum("bqhd,bkhd->bhqk", grad_out_f, v_f)
    # d out / d score_j = p_j (v_j - out) and d lse / d score_j = p_j: both folded into one delta per row,
    # delta = rowsum(dO * out) - grad_lse. It is summed as this block's sum_j p_j dP_j plus
    # dO . (out - this block's part of out): the same number, but when out is this block's own output
    # the difference is exactly 0 and delta rounds as the reference's softmax gradient does, which
    # matters in near one-hot rows, where dP_j - delta cancels.
    block_out = torch.einsum("bhqk,bkhd->bqhd", probs, v_f)
    delta = (
        (probs * grad_probs).sum(-1)
        + torch.einsum("bqhd,bqhd->bhq", grad_out_f, out.to(ct) - block_out)
        - grad_lse.to(ct)
    )
    grad_scores = (probs * grad_probs - probs * delta.unsqueeze(-1)) * softmax_scale
    grad_qf = torch.einsum("bhqk,bkhd->bqhd", grad_scores, kf)
    grad_kf = torch.einsum("bhqk,bqhd->bkhd", grad_scores, qf)
    grads = [*prologue_vjp((grad_qf, grad_kf))]
    grads.insert(2, grad_v.to(v.dtype))
    # Contiguous, as the fake impl promises (einsum's results come out in its own strides).
    return [g.contiguous() for g in grads]
