"""AdaLN modulation and the gated residual between DiT sub-blocks: checks, dispatch, autograd.

``adaln_modulate(x, shift, scale)`` is LayerNorm without affine followed by ``x_hat * (1 + scale) +
shift``; ``gated_residual_adaln(x, y, gate, shift, scale)`` adds a sub-block's gated output to the
residual stream and modulates the sum for the next sub-block, in one pass over memory. ``x``/``y`` are
(B, S, D); ``shift``/``scale``/``gate`` are (B, D) or, per frame, (B, T, D) with S divisible by T and
each frame's S/T tokens contiguous. Math is float32; outputs have x's dtype.

The fast kernels read every tensor through its strides as long as the last dim is contiguous, so
``mod.chunk(3, dim=-1)`` of a modulation projection goes in without a copy.
"""

from types import ModuleType

import torch

from cosmos_kernels import reference
from cosmos_kernels._backend import resolve_backend
from cosmos_kernels.checks import (
    check_eps,
    check_same_dtype_and_device,
    check_tensor,
    fast_dtype_reason,
    last_dim_contiguous,
)
from cosmos_kernels.ops.registry import OPS

# Both fast backends hold a whole row in registers; wider rows than any DiT's go to the torch backend.
MAX_FAST_DIM = 16384
Tensor = torch.Tensor


def _kernels(backend: str) -> ModuleType:
    if backend == "triton":
        from cosmos_kernels.triton import adaln
    else:
        from cosmos_kernels.cuda import adaln
    return adaln


def _frame_sum(t: Tensor, frames: int) -> Tensor:
    """(B, S, D) -> (B, T, D): the sum over each frame's tokens."""
    return t.unflatten(1, (frames, -1)).sum(2)


def _per_token(mod: Tensor, seq_len: int) -> Tensor:
    return mod.repeat_interleave(seq_len // mod.shape[1], dim=1)


# The torch backend differentiates the reference itself: its backward is right by construction.
def _reference_modulate_vjp(
    grad_out: Tensor, x: Tensor, shift: Tensor, scale: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    def fn(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
        return reference.adaln_modulate(x, shift, scale, eps)

    _, vjp = torch.func.vjp(fn, x, shift, scale)
    return vjp(grad_out)


@torch.library.custom_op("cosmos_kernels::adaln_modulate", mutates_args=())
def _adaln_modulate(x: Tensor, shift: Tensor, scale: Tensor, eps: float, backend: str) -> Tensor:
    if backend == "torch":
        return reference.adaln_modulate(x, shift, scale, eps)
    return _kernels(backend).adaln_modulate_forward(x, shift, scale, eps)


@_adaln_modulate.register_fake
def _(x: Tensor, shift: Tensor, scale: Tensor, eps: float, backend: str) -> Tensor:
    return x.new_empty(x.shape)


@torch.library.custom_op("cosmos_kernels::adaln_modulate_backward", mutates_args=())
def _adaln_modulate_backward(
    grad_out: Tensor, x: Tensor, shift: Tensor, scale: Tensor, eps: float, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    grad_out = last_dim_contiguous(grad_out)
    if backend == "torch":
        return tuple(g.clone() for g in _reference_modulate_vjp(grad_out, x, shift, scale, eps))
    return _kernels(backend).adaln_modulate_backward(grad_out, x, scale, eps)


@_adaln_modulate_backward.register_fake
def _(grad_out: Tensor, x: Tensor, shift: Tensor, scale: Tensor, eps: float, backend: str):
    return x.new_empty(x.shape), shift.new_empty(shift.shape), scale.new_empty(scale.shape)


def _modulate_setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    x, shift, scale, ctx.eps, ctx.backend = inputs
    ctx.save_for_backward(x, shift, scale)


def _modulate_backward(ctx, grad_out: Tensor):
    x, shift, scale = ctx.saved_tensors
    grads = _adaln_modulate_backward(grad_out, x, shift, scale, ctx.eps, ctx.backend)
    return (*grads, None, None)


_adaln_modulate.register_autograd(_modulate_backward, setup_context=_modulate_setup_context)


@torch.library.custom_op("cosmos_kernels::gated_residual_adaln", mutates_args=())
def _gated_residual_adaln(
    x: Tensor, y: Tensor, gate: Tensor, shift: Tensor, scale: Tensor, eps: float, backend: str
) -> tuple[Tensor, Tensor]:
    if backend == "torch":
        return reference.gated_residual_adaln(x, y, gate, shift, scale, eps)
    return _kernels(backend).gated_residual_adaln_forward(x, y, gate, shift, scale, eps)


@_gated_residual_adaln.register_fake
def _(x: Tensor, y: Tensor, gate: Tensor, shift: Tensor, scale: Tensor, eps: float, backend: str):
    return x.new_empty(x.shape), x.new_empty(x.shape)


@torch.library.custom_op("cosmos_kernels::gated_residual_adaln_backward", mutates_args=())
def _gated_residual_adaln_backward(
    grad_h: Tensor,
    grad_out: Tensor,
    h: Tensor,
    y: Tensor,
    gate: Tensor,
    shift: Tensor,
    scale: Tensor,
    eps: float,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    grad_h, grad_out = last_dim_contiguous(grad_h), last_dim_contiguous(grad_out)
    if backend != "torch":
        return _kernels(backend).gated_residual_adaln_backward(grad_h, grad_out, h, y, gate, scale, eps)
    grad_h_total, grad_shift, grad_scale = _reference_modulate_vjp(grad_out, h, shift, scale, eps)
    # float32 math for low-precision inputs, float64 kept for float64 ones.
    compute = torch.promote_types(h.dtype, torch.float32)
    grad_h_total = grad_h_total.to(compute) + grad_h.to(compute)
    frames = gate.shape[1]
    grad_y = grad_h_total * _per_token(gate.to(compute), y.shape[1])
    grad_gate = _frame_sum(grad_h_total * y.to(compute), frames)
    return (
        grad_h_total.to(h.dtype),
        grad_y.to(y.dtype),
        grad_gate.to(gate.dtype),
        grad_shift.clone(),
        grad_scale.clone(),
    )


@_gated_residual_adaln_backward.register_fake
def _(grad_h, grad_out, h, y, gate, shift, scale, eps, backend):
    return (
        h.new_empty(h.shape),
        y.new_empty(y.shape),
        gate.new_empty(gate.shape),
        shift.new_empty(shift.shape),
        scale.new_empty(scale.shape),
    )


def _gated_setup_context(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    _, y, gate, shift, scale, ctx.eps, ctx.backend = inputs
    ctx.save_for_backward(output[0], y, gate, shift, scale)


def _gated_backward(ctx, grad_h: Tensor, grad_out: Tensor):
    h, y, gate, shift, scale = ctx.saved_tensors
    grads = _gated_residual_adaln_backward(grad_h, grad_out, h, y, gate, shift, scale, ctx.eps, ctx.backend)
    return (*grads, None, None)


_gated_residual_adaln.register_autograd(_gated_backward, setup_context=_gated_setup_context)


def _check_modulation(op: str, x: Tensor, **mods: Tensor) -> dict[str, Tensor]:
    """(B, D) or (B, T, D) modulation tensors -> (B, T, D) views sharing one T."""
    batch, seq_len, dim = x.shape
    out = {}
    for name, mod in mods.items():
        check_tensor(op, name, mod, (2, 3))
        if mod.shape[0] != batch or mod.shape[-1] != dim:
            raise ValueError(
                f"{op}: {name} must be ({batch}, {dim}) or ({batch}, T, {dim}) to match x of shape "
                f"{tuple(x.shape)}, got {tuple(mod.shape)}"
            )
        out[name] = mod.unsqueeze(1) if mod.dim() == 2 else mod
    frames = max(t.shape[1] for t in out.values())
    if any(t.shape[1] not in (1, frames) for t in out.values()):
        shapes = ", ".join(f"{name} {tuple(mods[name].shape)}" for name in mods)
        raise ValueError(
            f"{op}: {', '.join(mods)} must share one frame count T (or be per-batch), got {shapes}"
        )
    # A per-batch row read through a zero stride serves every frame; autograd sums its gradient back.
    out = {name: t.expand(batch, frames, dim) for name, t in out.items()}
    if seq_len % frames:
        raise ValueError(
            f"{op}: the sequence length of x ({seq_len}) must be divisible by the frame count T of the "
            f"modulation ({frames}), so that each frame's tokens are contiguous"
        )
    return {name: last_dim_contiguous(t) for name, t in out.items()}


def _fast_input_reason(x: Tensor) -> str | None:
    if x.shape[-1] > MAX_FAST_DIM:
        return f"rows of at most {MAX_FAST_DIM} elements, got D = {x.shape[-1]}"
    return fast_dtype_reason(x)


def adaln_modulate(
    x: Tensor, shift: Tensor, scale: Tensor, *, eps: float = 1e-6, backend: str = "auto"
) -> Tensor:
    """LayerNorm(x) over the last dim, without affine, then ``* (1 + scale) + shift``.

    Args:
        x: (B, S, D) activations.
        shift, scale: (B, D), shared by all tokens, or (B, T, D), one row per frame of S/T tokens.
        eps: added to the variance.
        backend: "auto", "cuda", "triton" or "torch".
    Returns:
        (B, S, D) in x's dtype, computed in float32.
    """
    op = "adaln_modulate"
    check_tensor(op, "x", x, (3,))
    mods = _check_modulation(op, x, shift=shift, scale=scale)
    check_same_dtype_and_device(op, x=x, **mods)
    eps = check_eps(op, eps)
    chosen = resolve_backend(
        backend, x.device, op=op, preference=OPS[op].preference, input_reason=_fast_input_reason(x)
    )
    return _adaln_modulate(last_dim_contiguous(x), mods["shift"], mods["scale"], eps, chosen)


def gated_residual_adaln(
    x: Tensor,
    y: Tensor,
    gate: Tensor,
    shift: Tensor,
    scale: Tensor,
    *,
    eps: float = 1e-6,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """``h = x + gate * y`` and ``adaln_modulate(h, shift, scale)`` in one pass over memory.

    Args:
        x: (B, S, D) residual stream.
        y: (B, S, D) output of the previous sub-block.
        gate, shift, scale: (B, D) or (B, T, D), as in :func:`adaln_modulate`.
    Returns:
        (h, modulated h), both (B, S, D) in x's dtype.
    """
    op = "gated_residual_adaln"
    check_tensor(op, "x", x, (3,))
    check_tensor(op, "y", y, (3,))
    if y.shape != x.shape:
        raise ValueError(f"{op}: y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
    mods = _check_modulation(op, x, gate=gate, shift=shift, scale=scale)
    check_same_dtype_and_device(op, x=x, y=y, **mods)
    eps = check_eps(op, eps)
    chosen = resolve_backend(
        backend, x.device, op=op, preference=OPS[op].preference, input_reason=_fast_input_reason(x)
    )
    return _gated_residual_adaln(
        last_dim_contiguous(x),
        last_dim_contiguous(y),
        mods["gate"],
        mods["shift"],
        mods["scale"],
        eps,
        chosen,
    )
