"""8-bit attention: ``attention(..., precision="qk-int8" | "qk-int8-pv-fp8")``'s checks and dispatch.

An inference feature (no backward): the quantizing QK-norm + RoPE prologue and INT8 QKᵀ attention, with
PV in v's dtype (``qk-int8``) or in FP8 e4m3 (``qk-int8-pv-fp8``); see
``cosmos_kernels/reference/attention_8bit.py`` for the quantization, which its ``torch`` backend
emulates exactly, and ``cosmos_kernels/triton/attention_8bit.py`` for the kernels. ``ops.attention``
checks the arguments it shares with the exact path and hands calls with a ``precision`` to
:func:`attention_8bit`, which checks what only the 8-bit path needs.

Backends: ``triton`` (CUDA, or CPU under the interpreter) and ``torch`` (the emulation, on any device);
``auto`` takes ``triton`` on CUDA and ``torch`` elsewhere.
"""

from types import ModuleType

import torch

from cosmos_kernels._backend import resolve_backend
from cosmos_kernels.checks import last_dim_contiguous
from cosmos_kernels.ops.registry import OPS
from cosmos_kernels.reference.attention_8bit import DTYPES, HEAD_DIMS, PRECISIONS
from cosmos_kernels.reference.attention_8bit import attention_8bit as emulation

Tensor = torch.Tensor


def _kernels() -> ModuleType:
    from cosmos_kernels.triton import attention_8bit

    return attention_8bit


def check_precision(op: str, precision: object, name: str = "precision") -> str | None:
    """``precision`` itself when it names an attention precision (None: exact), else ValueError."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"{op}: {name} must be None (exact) or one of {PRECISIONS}, got {precision!r}")
    return precision


@torch.library.custom_op("cosmos_kernels::attention_8bit", mutates_args=())
def _attention_8bit(
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
    precision: str,
    return_lse: bool,
    backend: str,
) -> tuple[Tensor, Tensor]:
    """(out, lse); the lse is only filled in with ``return_lse`` (the kernel skips its shift otherwise)."""
    if backend == "triton":
        return _kernels().attention_8bit(
            q, k, v, q_norm_weight, k_norm_weight, rope_cos, rope_sin, k_lengths, norm_eps, softmax_scale,
            precision == "qk-int8-pv-fp8", return_lse,
        )  # fmt: skip
    out, lse = emulation(
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
        precision=precision,
    )
    return out.contiguous(), lse


@_attention_8bit.register_fake
def _(q, k, v, q_norm_weight, k_norm_weight, rope_cos, rope_sin, k_lengths, norm_eps, softmax_scale,
      precision, return_lse, backend):  # fmt: skip
    batch, seq_q, heads, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((batch, heads, seq_q), dtype=torch.float32)


def _input_reason(q: Tensor) -> str | None:
    """Why the 8-bit path cannot take q's dtype or head dim on any backend, or None."""
    if q.dtype not in DTYPES:
        return f"float16, bfloat16 or float32 inputs, got {q.dtype}"
    if q.shape[-1] not in HEAD_DIMS:
        return f"head dims {HEAD_DIMS}, got D = {q.shape[-1]}"
    return None


def attention_8bit(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    q_norm_weight: Tensor | None,
    k_norm_weight: Tensor | None,
    norm_eps: float,
    rope_cos: Tensor | None,
    rope_sin: Tensor | None,
    softmax_scale: float,
    k_lengths: Tensor | None,
    return_lse: bool,
    precision: str,
    backend: str,
) -> Tensor | tuple[Tensor, Tensor]:
    """``ops.attention`` with a ``precision``, on arguments it has checked (shapes, dtypes, devices,
    tables, lengths, scale); returns what it returns. Raises ValueError for what the 8-bit path cannot
    take (head dim, dtype), RuntimeError for inputs that require grad, BackendUnavailableError for a
    backend it has not."""
    op = "attention"
    check_precision(op, precision)
    tensors = (q, k, v, q_norm_weight, k_norm_weight)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        raise RuntimeError(
            f"{op}: precision={precision!r} is for inference and has no backward; call it under "
            "torch.no_grad() or torch.inference_mode(), or with precision=None for training"
        )
    if (reason := _input_reason(q)) is not None:
        raise ValueError(f"{op}: precision={precision!r} takes {reason}")
    chosen = resolve_backend(backend, q.device, op=op, preference=OPS["attention"].preference)
    # The kernels read float32 RoPE tables, as the emulation computes with them.
    tables = [None if t is None else last_dim_contiguous(t.float()) for t in (rope_cos, rope_sin)]
    out, lse = _attention_8bit(
        last_dim_contiguous(q),
        last_dim_contiguous(k),
        last_dim_contiguous(v),
        None if q_norm_weight is None else q_norm_weight.contiguous(),
        None if k_norm_weight is None else k_norm_weight.contiguous(),
        *tables,
        k_lengths,
        float(norm_eps),
        float(softmax_scale),
        precision,
        return_lse,
        chosen,
    )
    return (out, lse) if return_lse else out
