"""Softmax attention with optional per-head QK RMSNorm and RoPE in the BSHD layout: the op and its plan.

``attention(q, k, v, ...)`` normalizes and rotates q and k (``qk_norm_rope``'s prologue), then runs the
attention core: our Triton flash attention (``cosmos_kernels/triton/attention.py``), the ``torch``
reference, or, under ``auto`` on a GPU in half precision, PyTorch's ``scaled_dot_product_attention``
wherever it can do the same work: cuDNN's kernel beat ours at every shape measured on an H100
(benchmarks/RESULTS.md). The prologue runs as its own pass, not inside the core's loads: fused there it
was recomputed for every query block. Ring and Ulysses attention take the same plan and the block
functions of ``ops.attention_blocks``.
"""

import os
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F

from cosmos_kernels import reference
from cosmos_kernels._backend import ENV_VAR, resolve_backend
from cosmos_kernels.checks import (
    check_eps,
    check_number,
    check_same_dtype_and_device,
    check_tensor,
    last_dim_contiguous,
)
from cosmos_kernels.ops.attention_8bit import attention_8bit, check_precision
from cosmos_kernels.ops.qk_norm_rope import apply_prologue, check_norm_weight, check_rope, fast_input_reason
from cosmos_kernels.ops.registry import OPS

Tensor = torch.Tensor


def _kernels() -> ModuleType:
    from cosmos_kernels.triton import attention

    return attention


@dataclass(frozen=True)
class AttentionPlan:
    """How one attention call runs, decided once: ``backend`` for the prologue and our kernels ("triton"
    or "torch"), and whether ``auto`` may hand the core to PyTorch's SDPA kernels (CUDA, half precision;
    a backend named by argument or $COSMOS_KERNELS_BACKEND runs that backend)."""

    backend: str
    sdpa: bool


def plan_attention(requested: str, q: Tensor, rope_cos: Tensor | None = None) -> AttentionPlan:
    """The plan of an attention over q (B, S, H, D) with these RoPE tables for ``backend=requested``."""
    chosen = resolve_backend(
        requested,
        q.device,
        op="attention",
        preference=OPS["attention"].preference,
        input_reason=fast_input_reason(q, rope_cos),
    )
    asked_auto = requested == "auto" and os.environ.get(ENV_VAR, "auto") == "auto"
    sdpa = asked_auto and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)
    return AttentionPlan(chosen, sdpa)


def sdpa(q: Tensor, k: Tensor, v: Tensor, softmax_scale: float) -> Tensor:
    """PyTorch's fastest fused attention for BSHD q, k, v (no mask, no lse)."""
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=softmax_scale
    )
    return out.transpose(1, 2)


def check_softmax_scale(op: str, softmax_scale: object, dim: int) -> float:
    """The scale of the scores: 1 / sqrt(D) for None, else a positive number."""
    if softmax_scale is None:
        return dim**-0.5
    return check_number(op, "softmax_scale", softmax_scale, positive=True)


def _lse_dtype(q: Tensor) -> torch.dtype:
    return torch.float64 if q.dtype == torch.float64 else torch.float32


@torch.library.custom_op("cosmos_kernels::attention", mutates_args=())
def _attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    rope_cos: Tensor | None,
    rope_sin: Tensor | None,
    k_lengths: Tensor | None,
    norm_eps: float,
    softmax_scale: float,
    backend: str,
) -> tuple[Tensor, Tensor]:
    """(out, lse): the lse is always computed, since the backward of a fast kernel needs it."""
    if backend == "triton":
        # ops.attention has already applied the prologue: the kernel computes plain attention.
        return _kernels().attention_forward(q, k, v, k_lengths, softmax_scale)
    out, lse = reference.attention(
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
        return_lse=True,
    )
    # The fake impl promises contiguous outputs; the reference's einsum leaves out in BHSD strides.
    return out.contiguous(), lse


@_attention.register_fake
def _(q, k, v, q_norm_weight, k_norm_weight, rope_cos, rope_sin, k_lengths, norm_eps, softmax_scale, backend):
    batch, seq_q, heads, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((batch, heads, seq_q), dtype=_lse_dtype(q))


@torch.library.custom_op("cosmos_kernels::attention_backward", mutates_args=())
def _attention_backward(
    grad_out: Tensor,
    grad_lse: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    rope_cos: Tensor | None,
    rope_sin: Tensor | None,
    k_lengths: Tensor | None,
    norm_eps: float,
    softmax_scale: float,
    backend: str,
) -> list[Tensor]:
    """[dq, dk, dv] followed by the gradients of the norm weights that were given, in order."""
    if backend == "triton":
        grads = _kernels().attention_backward(
            last_dim_contiguous(grad_out), q, k, v, out, lse, k_lengths, softmax_scale,
            grad_lse=grad_lse.contiguous(),
        )  # fmt: skip
        return list(grads)
    return reference.attention_backward_from_lse(
        grad_out,
        grad_lse,
        q,
        k,
        v,
        out,
        lse,
        q_norm_weight,
        k_norm_weight,
        rope_cos,
        rope_sin,
        k_lengths,
        norm_eps,
        softmax_scale,
    )


@_attention_backward.register_fake
def _(
    grad_out,
    grad_lse,
    q,
    k,
    v,
    out,
    lse,
    q_norm_weight,
    k_norm_weight,
    rope_cos,
    rope_sin,
    k_lengths,
    norm_eps,
    softmax_scale,
    backend,
):
    weights = [w.new_empty(w.shape) for w in (q_norm_weight, k_norm_weight) if w is not None]
    return [q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), *weights]


def _attention_setup_context(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    *tensors, ctx.norm_eps, ctx.softmax_scale, ctx.backend = inputs
    ctx.save_for_backward(*tensors, *output)


def _attention_backward_rule(ctx, grad_out: Tensor, grad_lse: Tensor):
    q, k, v, q_norm_weight, k_norm_weight, rope_cos, rope_sin, k_lengths, out, lse = ctx.saved_tensors
    grads = iter(
        _attention_backward(
            grad_out,
            grad_lse,
            q,
            k,
            v,
            out,
            lse,
            q_norm_weight,
            k_norm_weight,
            rope_cos,
            rope_sin,
            k_lengths,
            ctx.norm_eps,
            ctx.softmax_scale,
            ctx.backend,
        )
    )
    grad_q, grad_k, grad_v = next(grads), next(grads), next(grads)
    grad_q_norm = next(grads) if q_norm_weight is not None else None
    grad_k_norm = next(grads) if k_norm_weight is not None else None
    # The RoPE tables are constants of the token grid: no gradient flows into them.
    return grad_q, grad_k, grad_v, grad_q_norm, grad_k_norm, None, None, None, None, None, None


_attention.register_autograd(_attention_backward_rule, setup_context=_attention_setup_context)


def _check_k_lengths(op: str, k_lengths: object, batch: int, seq_k: int, device: torch.device) -> None:
    if not isinstance(k_lengths, torch.Tensor):
        raise TypeError(f"{op}: k_lengths must be a torch.Tensor, got {type(k_lengths).__name__}")
    if k_lengths.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{op}: k_lengths must be int32 or int64, got {k_lengths.dtype}")
    if k_lengths.shape != (batch,):
        raise ValueError(f"{op}: k_lengths must be of shape (B,) = ({batch},), got {tuple(k_lengths.shape)}")
    if k_lengths.device != device:
        raise ValueError(f"{op}: k_lengths must be on the device of q ({device}), got {k_lengths.device}")
    # Reading the values costs a device sync, and a traced graph cannot branch on them: under
    # torch.compile the check is skipped, and lengths outside [0, Sk] act as clamped to it.
    if not torch.compiler.is_compiling() and bool(((k_lengths < 0) | (k_lengths > seq_k)).any()):
        raise ValueError(f"{op}: k_lengths must lie in [0, Sk = {seq_k}], got {k_lengths.tolist()}")


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    q_norm_weight: Tensor | None = None,
    k_norm_weight: Tensor | None = None,
    norm_eps: float = 1e-6,
    rope_cos: Tensor | None = None,
    rope_sin: Tensor | None = None,
    softmax_scale: float | None = None,
    k_lengths: Tensor | None = None,
    return_lse: bool = False,
    backend: str = "auto",
    precision: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Softmax attention with optional per-head RMSNorm of q and k and RoPE, in the BSHD layout.

    Args:
        q: (B, Sq, H, D) queries.
        k, v: (B, Sk, H, D) keys and values; Sk may differ from Sq (cross-attention).
        q_norm_weight, k_norm_weight: (D,) RMSNorm weights shared by all heads, or None for no norm.
        norm_eps: added to the mean square in the RMSNorm.
        rope_cos, rope_sin: (Sq, D/2) rotate-half RoPE tables (see :func:`rope3d_cos_sin`), applied
            to q and k after the norm; self-attention only (Sq == Sk).
        softmax_scale: multiplies the scores; default 1 / sqrt(D).
        k_lengths: (B,) int32/int64; keys at positions >= k_lengths[b] are masked. A row with no
            key left gives zeros.
        return_lse: also return the log-sum-exp of each row's scaled scores, for merging partial
            attention results (ring attention); -inf for rows with no key.
        backend: "auto", "triton" or "torch".
        precision: None for exact attention; "qk-int8" or "qk-int8-pv-fp8" for 8-bit attention, an
            inference feature (no gradients) for head dims 32, 64 and 128 (ops/attention_8bit.py).
    Returns:
        out (B, Sq, H, D) in q's dtype, computed in float32; with ``return_lse`` also lse (B, H, Sq)
        in float32 (float64 for float64 input). Gradients flow to q, k, v and both norm weights
        (and from lse).
    """
    op = "attention"
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(op, name, t, (4,))
    batch, seq_q, heads, dim = q.shape
    seq_k = k.shape[1]
    for name, t in (("k", k), ("v", v)):
        if (t.shape[0], t.shape[2], t.shape[3]) != (batch, heads, dim):
            raise ValueError(
                f"{op}: {name} must be (B, Sk, H, D) with B = {batch}, H = {heads}, D = {dim} as in q of "
                f"shape {tuple(q.shape)}, got {tuple(t.shape)}"
            )
    if v.shape[1] != seq_k:
        raise ValueError(f"{op}: v must have the sequence length of k (Sk = {seq_k}), got {tuple(v.shape)}")
    weights = {}
    for name, w in (("q_norm_weight", q_norm_weight), ("k_norm_weight", k_norm_weight)):
        if w is not None:
            check_norm_weight(op, name, w, dim)
            weights[name] = w
    check_same_dtype_and_device(op, q=q, k=k, v=v, **weights)
    norm_eps = check_eps(op, norm_eps)
    if (rope_cos is None) != (rope_sin is None):
        raise ValueError(f"{op}: rope_cos and rope_sin must be given together (or neither)")
    if rope_cos is not None:
        if seq_q != seq_k:
            raise ValueError(
                f"{op}: rope_cos/rope_sin apply to self-attention only (Sq == Sk), got Sq = {seq_q} and "
                f"Sk = {seq_k}"
            )
        check_rope(op, ("rope_cos", "rope_sin"), rope_cos, rope_sin, q, seq_q)
        rope_cos, rope_sin = last_dim_contiguous(rope_cos), last_dim_contiguous(rope_sin)
    softmax_scale = check_softmax_scale(op, softmax_scale, dim)
    if k_lengths is not None:
        _check_k_lengths(op, k_lengths, batch, seq_k, q.device)
    if not isinstance(return_lse, bool):
        raise TypeError(f"{op}: return_lse must be a bool, got {type(return_lse).__name__}")
    if check_precision(op, precision) is not None:
        return attention_8bit(
            q, k, v, q_norm_weight=q_norm_weight, k_norm_weight=k_norm_weight, norm_eps=norm_eps,
            rope_cos=rope_cos, rope_sin=rope_sin, softmax_scale=softmax_scale, k_lengths=k_lengths,
            return_lse=return_lse, precision=precision, backend=backend,
        )  # fmt: skip
    plan = plan_attention(backend, q, rope_cos)
    if plan.backend == "torch":
        # The reference applies the prologue itself, keeping q' and k' in float32.
        prologue = (q_norm_weight, k_norm_weight, rope_cos, rope_sin)
    else:
        q, k = apply_prologue(q, k, q_norm_weight, k_norm_weight, norm_eps, rope_cos, rope_sin, plan.backend)
        prologue = (None, None, None, None)
        if plan.sdpa and k_lengths is None and not return_lse:
            # SDPA has no per-batch key lengths (which give zero rows) and its public function no lse.
            return sdpa(q, k, v, float(softmax_scale))
    out, lse = _attention(
        last_dim_contiguous(q),
        last_dim_contiguous(k),
        last_dim_contiguous(v),
        *(w if w is None else w.contiguous() for w in prologue[:2]),
        *prologue[2:],
        k_lengths,
        norm_eps,
        float(softmax_scale),
        plan.backend,
    )
    return (out, lse) if return_lse else out
