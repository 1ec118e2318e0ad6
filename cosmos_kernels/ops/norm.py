"""GroupNorm + affine + SiLU of the video tokenizer's residual blocks: checks, dispatch, autograd.

``group_norm_silu(x, weight, bias)`` is ``silu(GroupNorm(x) * weight + bias)``. For video x
(B, C, T, H, W) the statistics are per (sample, frame, group) over (C/G, H, W): each frame is
normalized alone, which keeps the causal tokenizer causal, without the ``(b t) c h w`` copy in and
out that ``nn.GroupNorm`` needs. For images (B, C, H, W) it is ``nn.GroupNorm`` then SiLU. Math is
float32; the output has x's dtype.

The Triton kernels read contiguous x in place; any other layout (channels-last, slices) goes to the
torch backend under ``auto`` and is refused, with the reason, when a fast backend is named.
"""

import torch

from cosmos_kernels import reference
from cosmos_kernels._backend import resolve_backend
from cosmos_kernels.checks import (
    check_eps,
    check_int,
    check_same_dtype_and_device,
    check_tensor,
    fast_dtype_reason,
)
from cosmos_kernels.ops.registry import OPS

# The Triton elementwise passes launch one program per 1024 elements of a plane along a grid axis that
# CUDA caps at 65,535 programs: larger H*W (beyond 8k x 8k) goes to the torch backend.
MAX_FAST_PLANE = 65535 * 1024
Tensor = torch.Tensor


# The torch backend differentiates the reference itself: its backward is right by construction.
def _reference_vjp(
    grad_out: Tensor, x: Tensor, weight: Tensor, bias: Tensor, num_groups: int, eps: float, silu: bool
) -> tuple[Tensor, Tensor, Tensor]:
    def fn(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return reference.group_norm_silu(x, weight, bias, num_groups, eps, silu)

    _, vjp = torch.func.vjp(fn, x, weight, bias)
    return vjp(grad_out)


def _stats_shape(x: Tensor, num_groups: int, backend: str) -> tuple[int, ...]:
    """Shape of the saved statistics: one per (b, group, t). The torch backend's backward
    differentiates the reference, which recomputes them, so it keeps none."""
    if backend == "torch":
        return (0,)
    return (x.shape[0], num_groups, x.shape[2] if x.dim() == 5 else 1)


@torch.library.custom_op("cosmos_kernels::group_norm_silu", mutates_args=())
def _group_norm_silu(
    x: Tensor, weight: Tensor, bias: Tensor, num_groups: int, eps: float, silu: bool, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    """(out, mean, rstd): the group statistics (float32) go to the backward, which then reads x
    twice instead of three times."""
    if backend == "torch":
        # Contiguous whatever x's layout, as the fake impl promises.
        out = reference.group_norm_silu(x, weight, bias, num_groups, eps, silu).contiguous()
        return out, x.new_empty(0, dtype=torch.float32), x.new_empty(0, dtype=torch.float32)
    from cosmos_kernels.triton import norm

    return norm.group_norm_silu_forward(x, weight, bias, num_groups, eps, silu)


@_group_norm_silu.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, num_groups: int, eps: float, silu: bool, backend: str):
    stats = _stats_shape(x, num_groups, backend)
    return (
        x.new_empty(x.shape),
        x.new_empty(stats, dtype=torch.float32),
        x.new_empty(stats, dtype=torch.float32),
    )


@torch.library.custom_op("cosmos_kernels::group_norm_silu_backward", mutates_args=())
def _group_norm_silu_backward(
    grad_out: Tensor,
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    mean: Tensor,
    rstd: Tensor,
    num_groups: int,
    eps: float,
    silu: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor]:
    if backend == "torch":
        grads = _reference_vjp(grad_out, x, weight, bias, num_groups, eps, silu)
        return tuple(g.contiguous().clone() for g in grads)
    from cosmos_kernels.triton import norm

    # Gradients arrive in any layout (expanded from a sum, transposed); the kernels read them in x's.
    return norm.group_norm_silu_backward(grad_out.contiguous(), x, weight, bias, mean, rstd, silu)


@_group_norm_silu_backward.register_fake
def _(grad_out, x, weight, bias, mean, rstd, num_groups, eps, silu, backend):
    return x.new_empty(x.shape), weight.new_empty(weight.shape), bias.new_empty(bias.shape)


def _setup_context(ctx, inputs: tuple, output: tuple[Tensor, Tensor, Tensor]) -> None:
    x, weight, bias, ctx.num_groups, ctx.eps, ctx.silu, ctx.backend = inputs
    _, mean, rstd = output
    ctx.mark_non_differentiable(mean, rstd)
    ctx.save_for_backward(x, weight, bias, mean, rstd)


def _backward(ctx, grad_out: Tensor, _grad_mean: Tensor, _grad_rstd: Tensor):
    grads = _group_norm_silu_backward(
        grad_out, *ctx.saved_tensors, ctx.num_groups, ctx.eps, ctx.silu, ctx.backend
    )
    return (*grads, None, None, None, None)


_group_norm_silu.register_autograd(_backward, setup_context=_setup_context)


def _fast_input_reason(x: Tensor) -> str | None:
    if not x.is_contiguous():
        return (
            f"x in the contiguous {'(B, C, T, H, W)' if x.dim() == 5 else '(B, C, H, W)'} memory "
            f"layout, got strides {x.stride()} (channels-last or a slice; call .contiguous())"
        )
    if x.shape[-2] * x.shape[-1] > MAX_FAST_PLANE:
        return f"planes of at most {MAX_FAST_PLANE} elements, got H * W = {x.shape[-2] * x.shape[-1]}"
    return fast_dtype_reason(x)


def group_norm_silu(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    *,
    num_groups: int = 1,
    eps: float = 1e-6,
    silu: bool = True,
    backend: str = "auto",
) -> Tensor:
    """GroupNorm with a per-channel affine, then SiLU; video frames are normalized one by one.

    Args:
        x: (B, C, T, H, W) video, statistics per (b, t, group) over (C/G, H, W), or (B, C, H, W)
            images, statistics per (b, group) over (C/G, H, W).
        weight, bias: (C,) affine, applied per channel after normalizing.
        num_groups: G, which must divide C; the video tokenizers use 1, the image tokenizers 32.
        eps: added to the variance.
        silu: apply SiLU to the affine output (False: plain GroupNorm).
        backend: "auto", "triton" or "torch".
    Returns:
        x's shape and dtype, contiguous, computed in float32.
    """
    op = "group_norm_silu"
    check_tensor(op, "x", x, (4, 5))
    channels = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        check_tensor(op, name, t, (1,))
        if t.shape[0] != channels:
            raise ValueError(
                f"{op}: {name} must be ({channels},), one value per channel of x of shape "
                f"{tuple(x.shape)}, got {tuple(t.shape)}"
            )
    check_same_dtype_and_device(op, x=x, weight=weight, bias=bias)
    num_groups = check_int(op, "num_groups", num_groups, 1)
    if channels % num_groups:
        raise ValueError(f"{op}: num_groups ({num_groups}) must divide the channel count C = {channels} of x")
    eps = check_eps(op, eps)
    if not isinstance(silu, bool):
        raise TypeError(f"{op}: silu must be a bool, got {type(silu).__name__}")
    chosen = resolve_backend(
        backend, x.device, op=op, preference=OPS[op].preference, input_reason=_fast_input_reason(x)
    )
    out, _, _ = _group_norm_silu(x, weight.contiguous(), bias.contiguous(), num_groups, eps, silu, chosen)
    return out
