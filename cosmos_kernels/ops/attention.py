"""Attention with fused per-head QK RMSNorm and 3D RoPE: the RoPE tables, checks, dispatch, autograd.

``attention(q, k, v, ...)`` takes q (B, Sq, H, D), k and v (B, Sk, H, D) in the BSHD layout a DiT's
projections produce, optionally RMS-normalizes q and/or k over the head dim with weights (D,) shared
by all heads, rotates both with RoPE tables (S, D/2) (self-attention only), and computes softmax
attention with keys at positions >= ``k_lengths[b]`` masked. ``qk_norm_rope`` is the norm+RoPE
prologue alone, for use with other attention implementations. ``rope3d_cos_sin`` builds the tables of
Cosmos-1.0's 3D RoPE (``VideoRopePosition3DEmb``) for a (T, H, W) token grid.

Backends: ``triton`` runs the prologue as one memory-bound pass per tensor
(``cosmos_kernels/triton/qk_norm_rope.py``) and then our flash attention
(``cosmos_kernels/triton/attention.py``) on q', k'; ``torch`` is the reference. ``auto`` on a GPU runs
the same prologue pass and then ``scaled_dot_product_attention`` wherever SDPA can do the same work
(half precision, no ``k_lengths``, no lse): on an H100, cuDNN's attention beat our Triton kernel at
every shape measured (benchmarks/RESULTS.md), so ``auto`` is never slower than the best SDPA backend
there. Fusing the prologue into the attention kernel's loads, the first design, recomputed k' for every
query block: 206 ms against 114.6 ms without the prologue at the Cosmos-7B shape, where the separate
pass costs about 1 ms.

Ring attention (``cosmos_kernels.distributed``) computes its blocks with ``_attention_block`` and its
backward, and merges them with ``_merge_attention_block``: under ``auto`` in half precision on PyTorch's
cuDNN (else flash) kernels, called by their aten names for the lse they return.
"""

import os
from types import ModuleType

import torch
import torch.nn.functional as F

from cosmos_kernels import reference
from cosmos_kernels._backend import ENV_VAR, resolve_backend, unavailable_reason
from cosmos_kernels.ops._checks import (
    check_eps,
    check_int,
    check_same_dtype_and_device,
    check_tensor,
    fast_dtype_reason,
    last_dim_contiguous,
)
from cosmos_kernels.ops.attention_8bit import attention_8bit, check_precision
from cosmos_kernels.reference.attention import attention_prologue

# The fast backends ``auto`` tries for ``attention``, fastest first. No CUDA C++ kernel: on an H100 our
# Triton flash attention runs at 81% of the speed of our prologue + cuDNN (100.9 vs 81.8 ms forward at
# the Cosmos-7B shape, 515 vs 635 TFLOP/s), and a kernel that beats cuDNN needs FlashAttention-3's
# warp-specialized wgmma/TMA pipelines, in CUDA C++ or in Triton extensions (Meta's TLX); triton's own
# Hopper warp specialization was reported to fail on pointer-based dot loops like ours
# (triton-lang/triton#9728, triton 3.4). Until one exists, ``auto`` hands the core to SDPA (cuDNN)
# where it can.
PREFERENCE: tuple[str, ...] = ("triton",)
# The standalone prologue is memory-bound; one Triton pass per tensor reads and writes each row once.
QK_NORM_ROPE_PREFERENCE: tuple[str, ...] = ("triton",)
Tensor = torch.Tensor


def _kernels() -> ModuleType:
    from cosmos_kernels.triton import attention

    return attention


def _prologue_kernels() -> ModuleType:
    from cosmos_kernels.triton import qk_norm_rope

    return qk_norm_rope


def _fast_input_reason(q: Tensor, rope_cos: Tensor | None) -> str | None:
    if (reason := fast_dtype_reason(q)) is not None:
        return reason
    if rope_cos is not None and rope_cos.dtype != torch.float32:
        return f"float32 RoPE tables, got {rope_cos.dtype}"
    if unavailable_reason("triton", q.device) is not None:
        return None  # no fast backend to ask; resolve_backend says why none is available
    if not _kernels().head_dim_supported(q.shape[-1]):
        return f"head dims that are multiples of 16 in [32, 256], got D = {q.shape[-1]}"
    return None


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
    return _attention_backward_torch(
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


def _attention_backward_torch(
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
) -> list[Tensor]:
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

    def prologue(q: Tensor, k: Tensor, *weights: Tensor) -> tuple[Tensor, Tensor]:
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
        kernels = _prologue_kernels()
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
        kernels = _prologue_kernels()
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


def _attention_prologue(
    q: Tensor,
    k: Tensor,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    norm_eps: float,
    rope_cos: Tensor | None,
    rope_sin: Tensor | None,
    backend: str,
) -> tuple[Tensor, Tensor]:
    """(q', k') in q's dtype on a resolved backend, differentiable; q, k themselves when there is no
    prologue. The inputs are checked by the caller."""
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


def _sdpa_may_do_the_work(requested: str, q: Tensor) -> bool:
    """Whether ``auto`` may hand the attention after the prologue to PyTorch's SDPA kernels: on CUDA, in
    half precision. Naming a backend (argument or $COSMOS_KERNELS_BACKEND) runs that backend."""
    asked_auto = requested == "auto" and os.environ.get(ENV_VAR, "auto") == "auto"
    return asked_auto and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)


def _sdpa_does_the_work(requested: str, q: Tensor, k_lengths: Tensor | None, return_lse: bool) -> bool:
    """Whether ``attention`` runs ``scaled_dot_product_attention`` after the prologue: where ``auto`` may,
    and SDPA can do the same work (it has no per-batch key lengths that give zero rows, and its public
    function returns no lse)."""
    return _sdpa_may_do_the_work(requested, q) and k_lengths is None and not return_lse


# Ring attention's blocks: plain attention of the local queries over one K/V block, returning the lse
# that merges blocks; the backward takes the whole ring's out and lse (the flash identity). PyTorch's
# cuDNN and flash SDPA kernels have exactly that contract under their private aten names (PyTorch's own
# context parallelism calls them so), and on an H100 at the block sizes of 2-8 GPU rings cuDNN's ran
# 1.2-1.3x faster than our Triton kernel forward and 1.4x backward (benchmarks/RESULTS.md).
_SDPA_BLOCK_KERNELS = ("cudnn", "flash")


def _attention_block_kernel(requested: str, q: Tensor, k: Tensor, v: Tensor, chosen: str) -> str:
    """The kernel for the blocks of a ring over q (B, S, H, D) and blocks like k, v: "cudnn" or "flash"
    where ``auto`` may use SDPA and PyTorch says that kernel takes these inputs, else ``chosen``."""
    if not _sdpa_may_do_the_work(requested, q):
        return chosen
    params = torch.backends.cuda.SDPAParams(*(t.transpose(1, 2) for t in (q, k, v)), None, 0.0, False, False)
    if torch.backends.cuda.can_use_cudnn_attention(params):
        return "cudnn"
    if torch.backends.cuda.can_use_flash_attention(params):
        return "flash"
    return chosen


def _attention_block(
    q: Tensor, k: Tensor, v: Tensor, softmax_scale: float, kernel: str
) -> tuple[Tensor, Tensor, tuple]:
    """(out (B, Sq, H, D) in q's dtype, lse (B, H, Sq) float32, what the backward needs of the kernel's
    other outputs) of plain attention of q over the block k, v; inputs contiguous, checked by the caller."""
    if kernel not in _SDPA_BLOCK_KERNELS:
        out, lse = _attention(q, k, v, None, None, None, None, None, 1e-6, softmax_scale, kernel)
        return out, lse, ()
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    if kernel == "cudnn":
        out, lse, cum_q, cum_k, _, _, seed, offset, _ = torch.ops.aten._scaled_dot_product_cudnn_attention(
            qt, kt, vt, None, True, scale=softmax_scale
        )
    else:
        out, lse, cum_q, cum_k, _, _, seed, offset, _ = torch.ops.aten._scaled_dot_product_flash_attention(
            qt, kt, vt, scale=softmax_scale
        )
    # cuDNN keeps a trailing unit dim on its lse; flash's is (B, H, Sq) already.
    batch, seq_q, heads, _ = q.shape
    return out.transpose(1, 2), lse.reshape(batch, heads, seq_q), (cum_q, cum_k, seed, offset)


def _merge_attention_block(
    out: Tensor, lse: Tensor, block_out: Tensor, block_lse: Tensor, backend: str
) -> Tensor:
    """Fold one block's attention (block_out, block_lse) into the running (out, lse) of the blocks before,
    ``out`` (B, S, H, D) in float32 (float64) in place; returns the lse (B, H, S) of the union of keys.
    Every block has a key, so all lse are finite."""
    if backend == "triton" and out.dtype == torch.float32 and out.is_contiguous() and lse.is_contiguous():
        _kernels().merge_block(out, lse, block_out.contiguous(), block_lse.contiguous())
        return lse
    # softmax over the union of keys: out <- out + (block_out - out) * w with
    # w = exp(block_lse - merged lse) = sigmoid(block_lse - lse).
    weight = torch.sigmoid(block_lse - lse).transpose(1, 2).unsqueeze(-1)  # (B, S, H, 1)
    out.lerp_(block_out.to(out.dtype), weight)
    return torch.logaddexp(lse, block_lse)


def _attention_block_backward(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    aux: tuple,
    softmax_scale: float,
    kernel: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv) of the block k, v's share of an attention whose out and lse (B, H, Sq) float32 are
    given (the whole ring's); ``aux`` is what ``_attention_block`` returned third for this kernel."""
    if kernel not in _SDPA_BLOCK_KERNELS:
        grad_lse = torch.zeros_like(lse)  # the ring's lse is not an output
        dq, dk, dv = _attention_backward(
            grad_out, grad_lse, q, k, v, out, lse, None, None, None, None, None, 1e-6, softmax_scale, kernel
        )
        return dq, dk, dv
    qt, kt, vt, ot, gt = (t.transpose(1, 2) for t in (q, k, v, out, grad_out))
    cum_q, cum_k, seed, offset = aux
    seq_q, seq_k = q.shape[1], k.shape[1]
    if kernel == "cudnn":
        grads = torch.ops.aten._scaled_dot_product_cudnn_attention_backward(
            gt, qt, kt, vt, ot, lse.unsqueeze(-1), seed, offset, None, cum_q, cum_k, seq_q, seq_k, 0.0, False,
            scale=softmax_scale,
        )  # fmt: skip
    else:
        grads = torch.ops.aten._scaled_dot_product_flash_attention_backward(
            gt, qt, kt, vt, ot, lse, cum_q, cum_k, seq_q, seq_k, 0.0, False, seed, offset, scale=softmax_scale
        )
    dq, dk, dv = (g.transpose(1, 2) for g in grads)
    return dq, dk, dv


def _check_norm_weight(op: str, name: str, weight: Tensor, dim: int) -> None:
    check_tensor(op, name, weight, (1,))
    if weight.shape != (dim,):
        raise ValueError(
            f"{op}: {name} must be of shape ({dim},), one weight per head-dim element, "
            f"got {tuple(weight.shape)}"
        )


def _check_rope(op: str, names: tuple[str, str], cos: Tensor, sin: Tensor, q: Tensor, seq_len: int) -> None:
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
            _check_norm_weight(op, name, w, dim)
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
        _check_rope(op, ("rope_cos", "rope_sin"), rope_cos, rope_sin, q, seq_q)
        rope_cos, rope_sin = last_dim_contiguous(rope_cos), last_dim_contiguous(rope_sin)
    if softmax_scale is None:
        softmax_scale = dim**-0.5
    elif (
        isinstance(softmax_scale, bool) or not isinstance(softmax_scale, int | float) or not softmax_scale > 0
    ):
        raise ValueError(f"{op}: softmax_scale must be a positive number or None, got {softmax_scale!r}")
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
    chosen = resolve_backend(
        backend, q.device, op=op, preference=PREFERENCE, input_reason=_fast_input_reason(q, rope_cos)
    )
    if chosen == "torch":
        # The reference applies the prologue itself, keeping q' and k' in float32.
        prologue = (q_norm_weight, k_norm_weight, rope_cos, rope_sin)
    else:
        q, k = _attention_prologue(q, k, q_norm_weight, k_norm_weight, norm_eps, rope_cos, rope_sin, chosen)
        prologue = (None, None, None, None)
        if _sdpa_does_the_work(backend, q, k_lengths, return_lse):
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=float(softmax_scale)
            )
            return out.transpose(1, 2)
    out, lse = _attention(
        last_dim_contiguous(q),
        last_dim_contiguous(k),
        last_dim_contiguous(v),
        *(w if w is None else w.contiguous() for w in prologue[:2]),
        *prologue[2:],
        k_lengths,
        norm_eps,
        float(softmax_scale),
        chosen,
    )
    return (out, lse) if return_lse else out


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
    _check_norm_weight(op, "q_norm_weight", q_norm_weight, dim)
    _check_norm_weight(op, "k_norm_weight", k_norm_weight, dim)
    check_same_dtype_and_device(op, q=q, k=k, q_norm_weight=q_norm_weight, k_norm_weight=k_norm_weight)
    _check_rope(op, ("cos", "sin"), cos, sin, q, q.shape[1])
    eps = check_eps(op, eps)
    chosen = resolve_backend(
        backend,
        q.device,
        op=op,
        preference=QK_NORM_ROPE_PREFERENCE,
        input_reason=_fast_input_reason(q, cos),
    )
    return _attention_prologue(
        q, k, q_norm_weight, k_norm_weight, eps, last_dim_contiguous(cos), last_dim_contiguous(sin), chosen
    )


def _axis_freqs(dim: int, theta: float, extrapolation: float, device: torch.device | None) -> Tensor:
    """The dim/2 frequencies of one axis's part of the head dim, as Cosmos computes them in float32."""
    # NTK-aware scaling: the base grows so that the lowest frequency stretches by the extrapolation
    # ratio while the highest stays put.
    axis_theta = theta * extrapolation ** (dim / (dim - 2))
    return 1.0 / axis_theta ** (torch.arange(0, dim, 2, device=device).float() / dim)


def _check_positive(op: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{op}: {name} must be a positive number, got {value!r}")
    return float(value)


def rope3d_cos_sin(
    t: int,
    h: int,
    w: int,
    head_dim: int,
    *,
    theta: float = 10000.0,
    t_extrapolation: float = 1.0,
    h_extrapolation: float = 1.0,
    w_extrapolation: float = 1.0,
    fps: float | None = None,
    base_fps: float = 24.0,
    offsets: tuple[int, int, int] = (0, 0, 0),
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """The RoPE tables of Cosmos-1.0's ``VideoRopePosition3DEmb`` for a (t, h, w) grid of tokens.

    The head dim splits into a height and a width part of ``head_dim // 6 * 2`` dims each and a
    temporal part of the rest (128 -> t 44, h 42, w 42). Each half of the rotated dims holds the
    axes' frequencies laid out [t | h | w] (22, 21, 21 for 128); Cosmos's angle vector over the full
    head dim is that half repeated twice, which rotate-half RoPE reads as one (D/2) table. Per axis of
    part size d, the base is ``theta * extrapolation ** (d / (d - 2))`` and the frequencies are
    ``base ** -(arange(0, d, 2) / d)``. Positions are integer grid indices plus ``offsets`` (t0, h0,
    w0), e.g. the first frame of a context-parallel shard; temporal positions are multiplied by
    ``base_fps / fps`` when ``fps`` is given (video), not when it is None (images).

    Returns:
        (cos, sin), each (t*h*w, head_dim // 2) float32, tokens in (t, h, w) row-major order.
    """
    op = "rope3d_cos_sin"
    for name, size in (("t", t), ("h", h), ("w", w)):
        check_int(op, name, size, 1)
    # Below 12 an axis part would have 2 dims or fewer and its NTK exponent d / (d - 2) is undefined.
    check_int(op, "head_dim", head_dim, 12)
    if head_dim % 2:
        raise ValueError(f"{op}: head_dim must be even for rotate-half RoPE, got {head_dim}")
    theta = _check_positive(op, "theta", theta)
    ratios = [
        _check_positive(op, name, value)
        for name, value in (
            ("t_extrapolation", t_extrapolation),
            ("h_extrapolation", h_extrapolation),
            ("w_extrapolation", w_extrapolation),
        )
    ]
    base_fps = _check_positive(op, "base_fps", base_fps)
    if fps is not None:
        fps = _check_positive(op, "fps", fps)
    if not isinstance(offsets, tuple | list) or len(offsets) != 3:
        raise ValueError(f"{op}: offsets must be a tuple of three ints (t0, h0, w0), got {offsets!r}")
    for name, offset in zip(("offsets[0]", "offsets[1]", "offsets[2]"), offsets, strict=True):
        check_int(op, name, offset, 0)

    dim_h = head_dim // 6 * 2
    dim_t = head_dim - 2 * dim_h
    positions = [
        torch.arange(size, device=device).float() + offset
        for size, offset in zip((t, h, w), offsets, strict=True)
    ]
    if fps is not None:
        # Divided by a float32 fps, then times base_fps, in that order, as Cosmos does.
        positions[0] = positions[0] / torch.tensor(fps, device=device) * base_fps
    angles = [
        torch.outer(pos, _axis_freqs(dim, theta, ratio, device))
        for pos, dim, ratio in zip(positions, (dim_t, dim_h, dim_h), ratios, strict=True)
    ]
    angles_t, angles_h, angles_w = angles
    grid = torch.cat(
        [
            angles_t[:, None, None, :].expand(t, h, w, -1),
            angles_h[None, :, None, :].expand(t, h, w, -1),
            angles_w[None, None, :, :].expand(t, h, w, -1),
        ],
        dim=-1,
    ).reshape(t * h * w, head_dim // 2)
    return grid.cos(), grid.sin()
