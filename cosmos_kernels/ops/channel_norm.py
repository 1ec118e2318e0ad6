"""RMS norm over channels + per-channel affine + SiLU (the Wan VAE's norm): checks, dispatch, autograd.

``rms_norm_channels_silu(x, weight, bias)`` is ``silu(x / max(||x||_C, eps) * sqrt(C) * weight + bias)``
for channel-first x (B, C, *positions): diffusers' ``WanRMS_norm`` followed by SiLU, the norm of the
Wan VAE that Cosmos Predict2/2.5 use, in one pass that reads x twice and writes once (diffusers' eager
norm makes ~6 passes: a float32 copy, the norm, the division, the cast back, two products and a sum).
Math is float32; the output has x's dtype.

The backward differentiates the reference (a recomputation in PyTorch) on every backend: the Wan VAE
is run for inference; a fused backward pays only once someone trains it.
"""

import torch

from cosmos_kernels import reference
from cosmos_kernels._backend import resolve_backend
from cosmos_kernels.checks import check_eps, check_same_dtype_and_device, check_tensor, fast_dtype_reason
from cosmos_kernels.ops.registry import OPS

# The kernel's grid puts samples on its second axis, which CUDA caps at 65,535.
MAX_FAST_BATCH = 65535
Tensor = torch.Tensor


def _reference_vjp(
    grad_out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None, eps: float, silu: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    if bias is None:
        _, vjp = torch.func.vjp(
            lambda x, w: reference.rms_norm_channels_silu(x, w, None, eps, silu), x, weight
        )
        return (*vjp(grad_out), None)
    _, vjp = torch.func.vjp(
        lambda x, w, b: reference.rms_norm_channels_silu(x, w, b, eps, silu), x, weight, bias
    )
    return vjp(grad_out)


@torch.library.custom_op("cosmos_kernels::rms_norm_channels_silu", mutates_args=())
def _rms_norm_channels_silu(
    x: Tensor, weight: Tensor, bias: Tensor | None, eps: float, silu: bool, backend: str
) -> Tensor:
    if backend == "torch":
        return reference.rms_norm_channels_silu(x, weight, bias, eps, silu).contiguous()
    from cosmos_kernels.triton import channel_norm

    return channel_norm.rms_norm_channels_silu_forward(x, weight, bias, eps, silu)


@_rms_norm_channels_silu.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor | None, eps: float, silu: bool, backend: str) -> Tensor:
    return x.new_empty(x.shape)


@torch.library.custom_op("cosmos_kernels::rms_norm_channels_silu_backward", mutates_args=())
def _rms_norm_channels_silu_backward(
    grad_out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None, eps: float, silu: bool
) -> tuple[Tensor, Tensor, Tensor]:
    grad_x, grad_weight, grad_bias = _reference_vjp(grad_out, x, weight, bias, eps, silu)
    # A custom op returns tensors only: an empty gradient stands for "no bias".
    return (
        grad_x.clone(),
        grad_weight.clone(),
        weight.new_empty(0) if grad_bias is None else grad_bias.clone(),
    )


@_rms_norm_channels_silu_backward.register_fake
def _(grad_out, x, weight, bias, eps, silu):
    return (
        x.new_empty(x.shape),
        weight.new_empty(weight.shape),
        weight.new_empty(0 if bias is None else bias.shape),
    )


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    x, weight, bias, ctx.eps, ctx.silu, _ = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, weight, bias)


def _backward(ctx, grad_out: Tensor):
    x, weight, bias = ctx.saved_tensors
    grad_x, grad_weight, grad_bias = _rms_norm_channels_silu_backward(
        grad_out.contiguous(), x, weight, bias if ctx.has_bias else None, ctx.eps, ctx.silu
    )
    return grad_x, grad_weight, grad_bias if ctx.has_bias else None, None, None, None


_rms_norm_channels_silu.register_autograd(_backward, setup_context=_setup_context)


def _fast_input_reason(x: Tensor) -> str | None:
    if not x.is_contiguous():
        return f"x in the contiguous channel-first layout, got strides {x.stride()} (call .contiguous())"
    if x.shape[0] > MAX_FAST_BATCH:
        return f"at most {MAX_FAST_BATCH} samples, got B = {x.shape[0]}"
    return fast_dtype_reason(x)


def rms_norm_channels_silu(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    eps: float = 1e-12,
    silu: bool = True,
    backend: str = "auto",
) -> Tensor:
    """RMS norm over the channels of each position, per-channel affine, then SiLU.

    Args:
        x: (B, C, *positions) channel-first activations, e.g. video (B, C, T, H, W).
        weight, bias: (C,) affine applied after normalizing; bias may be None.
        eps: floor of each position's L2 norm over C (``F.normalize``'s eps; diffusers' 1e-12).
        silu: apply SiLU to the affine output (False: the norm alone, as ``WanRMS_norm``).
        backend: "auto", "triton" or "torch".
    Returns:
        x's shape and dtype, contiguous, computed in float32.
    """
    op = "rms_norm_channels_silu"
    check_tensor(op, "x", x, tuple(range(2, 9)))
    channels = x.shape[1]
    tensors = {"x": x, "weight": weight}
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None and name == "bias":
            continue
        check_tensor(op, name, t, (1,))
        if t.shape[0] != channels:
            raise ValueError(
                f"{op}: {name} must be ({channels},), one value per channel of x of shape "
                f"{tuple(x.shape)}, got {tuple(t.shape)}"
            )
        tensors[name] = t
    check_same_dtype_and_device(op, **tensors)
    eps = check_eps(op, eps)
    if not isinstance(silu, bool):
        raise TypeError(f"{op}: silu must be a bool, got {type(silu).__name__}")
    chosen = resolve_backend(
        backend, x.device, op=op, preference=OPS[op].preference, input_reason=_fast_input_reason(x)
    )
    return _rms_norm_channels_silu(
        x, weight.contiguous(), None if bias is None else bias.contiguous(), eps, silu, chosen
    )
