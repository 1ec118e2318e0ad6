"""Per-head RMSNorm then rotate-half RoPE of q and k: the prologue of ``attention``, also an op alone.

``qk_norm_rope`` is the public op; ``apply_prologue`` runs it on an already resolved backend for
``attention`` and for ring / Ulysses attention, which apply it to each rank's shard. Backends:
``triton`` (one memory-bound pass per tensor, ``cosmos_kernels/triton/qk_norm_rope.py``) and ``torch``
(the reference).
"""

from types import ModuleType

import torch

from cosmos_kernels._backend import resolve_backend, unavailable_reason
from cosmos_kernels.checks import (
    check_eps,
    check_same_dtype_and_device,
    check_tensor,
    fast_dtype_reason,
    last_dim_contiguous,
)
from cosmos_kernels.ops.registry import OPS
from cosmos_kernels.reference.attention import attention_prologue

Tensor = torch.Tensor


def _kernels() -> ModuleType:
    from cosmos_kernels.triton import qk_norm_rope

    return qk_norm_rope


def fast_input_reason(q: Tensor, rope_cos: Tensor | None) -> str | None:
    """Why the Triton kernels cannot take q (B, S, H, D) with these tables, or None. Head dims follow
    the attention kernel's (multiples of 16 in [32, 256]), so that ``auto`` runs the prologue and the
    attention after it on the same backend."""
    if (reason := fast_dtype_reason(q)) is not None:
        return reason
    if rope_cos is not None and rope_cos.dtype != torch.float32:
        return f"float32 RoPE tables, got {rope_cos.dtype}"
    if unavailable_reason("triton", q.device) is not None:
        return None  # no fast backend to ask; resolve_backend says why none is available
    from cosmos_kernels.triton.attention import head_dim_supported

    if not head_dim_supported(q.shape[-1]):
        return f"head dims that are multiples of 16 in [32, 256], got D = {q.shape[-1]}"
    return None


@torch.library.custom_op("cosmos_kernels::qk_norm_rope", mutates_args=())
def _qk_norm_rope(
    q: Tensor,
    k: Tensor,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    cos: Tensor | None,
    sin: Tensor | None,
    eps: float,
    backend: str,
) -> tuple[Tensor, Tensor]:
    """The optional RMSNorms, then the optional RoPE, of q and k, in their dtype (computed in fp32)."""
    if backend == "triton":
        kernels = _kernels()
        return (
            kernels.prologue_forward(q, q_norm_weight, cos, sin, eps),
            kernels.prologue_forward(k, k_norm_weight, cos, sin, eps),
        )
    return _reference_prologue(q, k, q_norm_weight, k_norm_weight, cos, sin, eps)


def _reference_prologue(
    q: Tensor,
    k: Tensor,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    cos: Tensor | None,
    sin: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """The reference's prologue rounded to the inputs' dtype, as the kernels round it; always new,
    contiguous tensors: one the prologue leaves alone would otherwise come back as the input itself,
    and a custom op's output must not alias its input."""
    weights = {"q_norm_weight": q_norm_weight, "k_norm_weight": k_norm_weight}
    qf, kf = attention_prologue(q, k, **weights, norm_eps=eps, rope_cos=cos, rope_sin=sin)
    layout = torch.contiguous_format
    return qf.to(q.dtype, memory_format=layout, copy=True), kf.to(k.dtype, memory_format=layout, copy=True)


@_qk_norm_rope.register_fake
def _(q, k, q_norm_weight, k_norm_weight, cos, sin, eps, backend):
    return q.new_empty(q.shape), k.new_empty(k.shape)


@torch.library.custom_op("cosmos_kernels::qk_norm_rope_backward", mutates_args=())
def _qk_norm_rope_backward(
    grad_q: Tensor,
    grad_k: Tensor,
    q: Tensor,
    k: Tensor,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    cos: Tensor | None,
    sin: Tensor | None,
    eps: float,
    backend: str,
) -> list[Tensor]:
    """[grad_q, grad_k] followed by the gradients of the norm weights that were given, in order."""
    if backend == "triton":
        kernels = _kernels()
        grad_q, grad_qw = kernels.prologue_backward(
            last_dim_contiguous(grad_q), q, q_norm_weight, cos, sin, eps
        )
        grad_k, grad_kw = kernels.prologue_backward(
            last_dim_contiguous(grad_k), k, k_norm_weight, cos, sin, eps
        )
        return [g for g in (grad_q, grad_k, grad_qw, grad_kw) if g is not None]
    weights = [w for w in (q_norm_weight, k_norm_weight) if w is not None]

    def fn(q: Tensor, k: Tensor, *given: Tensor) -> tuple[Tensor, Tensor]:
        present = iter(given)
        qw = next(present) if q_norm_weight is not None else None
        kw = next(present) if k_norm_weight is not None else None
        return _reference_prologue(q, k, qw, kw, cos, sin, eps)

    _, vjp = torch.func.vjp(fn, q, k, *weights)
    # Copies, as in the forward: the gradient of an untouched tensor is the incoming one itself.
    return [g.clone(memory_format=torch.contiguous_format) for g in vjp((grad_q, grad_k))]


@_qk_norm_rope_backward.register_fake
def _(grad_q, grad_k, q, k, q_norm_weight, k_norm_weight, cos, sin, eps, backend):
    return [t.new_empty(t.shape) for t in (q, k, q_norm_weight, k_norm_weight) if t is not None]


def _qk_norm_rope_setup_context(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    *tensors, ctx.eps, ctx.backend = inputs
    ctx.save_for_backward(*tensors)


def _qk_norm_rope_backward_rule(ctx, grad_q: Tensor, grad_k: Tensor):
    q, k, q_norm_weight, k_norm_weight, cos, sin = ctx.saved_tensors
    grads = iter(
        _qk_norm_rope_backward(
            grad_q, grad_k, q, k, q_norm_weight, k_norm_weight, cos, sin, ctx.eps, ctx.backend
        )
    )
    grad_q, grad_k = next(grads), next(grads)
    grad_qw = next(grads) if q_norm_weight is not None else None
    grad_kw = next(grads) if k_norm_weight is not None else None
    # The RoPE tables are constants of the token grid: no gradient flows into them.
    return grad_q, grad_k, grad_qw, grad_kw, None, None, None, None


_qk_norm_rope.register_autograd(_qk_norm_rope_backward_rule, setup_context=_qk_norm_rope_setup_context)


def apply_prologue(
    q: Tensor,
    k: Tensor,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    norm_eps: float,
    rope_cos: Tensor | None,
    rope_sin: Tensor | None,
    backend: str,
) -> tuple[Tensor, Tensor]:
    """(q', k') in q's dtype on an already resolved backend, differentiable; q, k themselves when there
    is no prologue. The inputs are checked by the caller (``attention``, ring and Ulysses attention)."""
    if q_norm_weight is None and k_norm_weight is None and rope_cos is None:
        return q, k
    return _qk_norm_rope(
        last_dim_contiguous(q),
        last_dim_contiguous(k),
        *(w if w is None else w.contiguous() for w in (q_norm_weight, k_norm_weight)),
        rope_cos,
        rope_sin,
        norm_eps,
        backend,
    )


def check_norm_weight(op: str, name: str, weight: Tensor, dim: int) -> None:
    check_tensor(op, name, weight, (1,))
    if weight.shape != (dim,):
        raise ValueError(
            f"{op}: {name} must be of shape ({dim},), one weight per head-dim element, "
            f"got {tuple(weight.shape)}"
        )


def check_rope(op: str, names: tuple[str, str], cos: Tensor, sin: Tensor, q: Tensor, seq_len: int) -> None:
    for name, table in zip(names, (cos, sin), strict=True):
        check_tensor(op, name, table, (2,))
        if q.shape[-1] % 2:
            raise ValueError(
                f"{op}: {name} needs an even head dim D for rotate-half RoPE, got D = {q.shape[-1]}"
            )
        if table.shape != (seq_len, q.shape[-1] // 2):
            raise ValueError(
                f"{op}: {name} must be of shape (S, D/2) = ({seq_len}, {q.shape[-1] // 2}), "
                f"got {tuple(table.shape)}"
            )
        if table.device != q.device:
            raise ValueError(f"{op}: {name} must be on the device of q ({q.device}), got {table.device}")
    if sin.dtype != cos.dtype:
        raise TypeError(f"{op}: {names[1]} must have the dtype of {names[0]} ({cos.dtype}), got {sin.dtype}")


def qk_norm_rope(
    q: Tensor,
    k: Tensor,
    q_norm_weight: Tensor,
    k_norm_weight: Tensor,
    cos: Tensor,
    sin: Tensor,
    *,
    eps: float = 1e-6,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Per-head RMSNorm then rotate-half RoPE on q and k: the prologue of :func:`attention` alone.

    Args:
        q, k: (B, S, H, D), of one shape.
        q_norm_weight, k_norm_weight: (D,) RMSNorm weights shared by all heads.
        cos, sin: (S, D/2) RoPE tables (see :func:`rope3d_cos_sin`).
        eps: added to the mean square in the RMSNorm.
        backend: "auto", "triton" or "torch".
    Returns:
        (q', k') in the inputs' dtype, computed in float32. Gradients flow to q, k and both weights.
    """
    op = "qk_norm_rope"
    check_tensor(op, "q", q, (4,))
    check_tensor(op, "k", k, (4,))
    if k.shape != q.shape:
        raise ValueError(f"{op}: k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    dim = q.shape[-1]
    check_norm_weight(op, "q_norm_weight", q_norm_weight, dim)
    check_norm_weight(op, "k_norm_weight", k_norm_weight, dim)
    check_same_dtype_and_device(op, q=q, k=k, q_norm_weight=q_norm_weight, k_norm_weight=k_norm_weight)
    check_rope(op, ("cos", "sin"), cos, sin, q, q.shape[1])
    eps = check_eps(op, eps)
    chosen = resolve_backend(
        backend,
        q.device,
        op=op,
        preference=OPS[op].preference,
        input_reason=fast_input_reason(q, cos),
    )
    return apply_prologue(
        q, k, q_norm_weight, k_norm_weight, eps, last_dim_contiguous(cos), last_dim_contiguous(sin), chosen
    )
