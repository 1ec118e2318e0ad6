"""3D and 2D Haar wavelet packet transforms of the Cosmos tokenizer: checks, dispatch, autograd.

See ``reference/haar.py`` for the definition (band order, causal frame repeat, rescaling). Every
variant is one custom op, ``haar_transform``, parametrized by direction (``inverse``) and by
``adjoint``: the backward of a transform is its adjoint, which has the other direction's structure,
so the backward of ``(inverse, adjoint)`` is ``(not inverse, not adjoint)`` and autograd works to any
order. The fast kernels compute one level at a time; the causal frame repeat (and its adjoint, a sum
over the repeated frames) happens inside the first analysis / last synthesis level.
"""

from types import ModuleType

import torch

from cosmos_kernels import reference
from cosmos_kernels._backend import resolve_backend
from cosmos_kernels.checks import check_int, check_tensor, fast_dtype_reason
from cosmos_kernels.ops.registry import OPS

Tensor = torch.Tensor


def _kernels(backend: str) -> ModuleType:
    if backend == "triton":
        from cosmos_kernels.triton import haar
    else:
        from cosmos_kernels.cuda import haar
    return haar


def _front(levels: int, causal: bool) -> int:
    """Frames the causal transform adds in front: the first frame appears 2**levels times."""
    return 2**levels - 1 if causal else 0


def _output_shape(shape: torch.Size, levels: int, causal: bool, inverse: bool) -> list[int]:
    is_video = len(shape) == 5
    bands, factor = (8 if is_video else 4) ** levels, 2**levels
    front = _front(levels, causal) if is_video else 0
    batch, channels, *sizes = shape
    if inverse:
        sizes = [n * factor for n in sizes]
        sizes[0] -= front
        return [batch, channels // bands, *sizes]
    sizes[0] += front
    return [batch, channels * bands, *(n // factor for n in sizes)]


def _reference_transform(
    x: Tensor, levels: int, causal: bool, rescale: bool, inverse: bool, adjoint: bool
) -> Tensor:
    """The torch backend: the reference, and for adjoints three facts about it.

    The non-causal orthonormal transform is orthogonal, so its adjoint is its inverse; rescaling
    multiplies analysis by gain**-levels (its adjoint too) and synthesis by gain**levels; the adjoint
    of repeating the first frame sums the repeated frames, and that of dropping frames pads zeros.
    """
    is_video = x.dim() == 5
    if not adjoint:
        if is_video:
            fn = reference.haar3d_synthesis if inverse else reference.haar3d_analysis
            out = fn(x, levels, causal, rescale)
        else:
            fn = reference.haar2d_synthesis if inverse else reference.haar2d_analysis
            out = fn(x, levels, rescale)
        # Causal synthesis slices off the repeated frames: the op promises a fresh contiguous tensor.
        return out.contiguous()

    gain = (2 ** ((x.dim() - 2) / 2)) ** levels if rescale else 1.0
    front = _front(levels, causal) if is_video else 0
    if inverse:  # the adjoint of analysis
        if is_video:
            out = reference.haar3d_synthesis(x, levels, False, False)
            out = torch.cat([out[:, :, : front + 1].sum(2, keepdim=True), out[:, :, front + 1 :]], dim=2)
        else:
            out = reference.haar2d_synthesis(x, levels, False)
        return out / gain
    # the adjoint of synthesis
    if is_video:
        padded = torch.cat([x.new_zeros((*x.shape[:2], front, *x.shape[3:])), x], dim=2)
        return reference.haar3d_analysis(padded, levels, False, False) * gain
    return reference.haar2d_analysis(x, levels, False) * gain


def _fast_transform(
    kernels: ModuleType, x: Tensor, levels: int, causal: bool, rescale: bool, inverse: bool, adjoint: bool
) -> Tensor:
    # Orthonormal levels scale each signed sum by (1/sqrt2) per axis, both ways. Rescaled analysis
    # divides by that gain once more per level, so rescaled synthesis needs no scaling at all.
    axes = x.dim() - 2
    level_gain = 2 ** (axes / 2)
    if not rescale:
        coeff = 1 / level_gain
    elif inverse == adjoint:  # analysis, or the adjoint of synthesis: the analysis coefficient
        coeff = 1 / level_gain**2
    else:
        coeff = 1.0
    front = _front(levels, causal)
    out = x.contiguous()
    for level in range(levels):
        if axes == 2:
            fn = kernels.haar2d_synthesis_level if inverse else kernels.haar2d_analysis_level
            out = fn(out, coeff)
        elif inverse:
            last = level == levels - 1
            out = kernels.haar3d_synthesis_level(out, coeff, front if last else 0, adjoint)
        else:
            out = kernels.haar3d_analysis_level(out, coeff, front if level == 0 else 0, adjoint)
    return out


@torch.library.custom_op("cosmos_kernels::haar_transform", mutates_args=())
def _haar_transform(
    x: Tensor, levels: int, causal: bool, rescale: bool, inverse: bool, adjoint: bool, backend: str
) -> Tensor:
    if backend == "torch":
        return _reference_transform(x, levels, causal, rescale, inverse, adjoint)
    return _fast_transform(_kernels(backend), x, levels, causal, rescale, inverse, adjoint)


@_haar_transform.register_fake
def _(x: Tensor, levels: int, causal: bool, rescale: bool, inverse: bool, adjoint: bool, backend: str):
    return x.new_empty(_output_shape(x.shape, levels, causal, inverse))


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    _, ctx.levels, ctx.causal, ctx.rescale, ctx.inverse, ctx.adjoint, ctx.backend = inputs


def _backward(ctx, grad: Tensor):
    grad_x = _haar_transform(
        grad, ctx.levels, ctx.causal, ctx.rescale, not ctx.inverse, not ctx.adjoint, ctx.backend
    )
    return grad_x, None, None, None, None, None, None


_haar_transform.register_autograd(_backward, setup_context=_setup_context)


def _check_common(op: str, x: Tensor, ndim: int, levels: int, rescale: bool) -> None:
    check_tensor(op, "x", x, (ndim,))
    check_int(op, "levels", levels, 1)
    if not isinstance(rescale, bool):
        raise TypeError(f"{op}: rescale must be a bool, got {type(rescale).__name__}")


def _check_analysis_sizes(op: str, x: Tensor, levels: int, causal: bool) -> None:
    factor = 2**levels
    names = ("T", "H", "W") if x.dim() == 5 else ("H", "W")
    for name, size in zip(names, x.shape[2:], strict=True):
        if name == "T" and causal:
            if (size - 1) % factor:
                valid = ", ".join(str(1 + k * factor) for k in range(4))
                raise ValueError(
                    f"{op}: causal with levels={levels} needs T = 1 + k * {factor} frames "
                    f"({valid}, ...), got T = {size}"
                )
        elif size % factor:
            raise ValueError(
                f"{op}: {name} must be divisible by 2**levels = {factor}, got {name} = {size} "
                f"(x of shape {tuple(x.shape)})"
            )


def _check_synthesis_channels(op: str, y: Tensor, levels: int, bands: int) -> None:
    if y.shape[1] % bands**levels:
        raise ValueError(
            f"{op}: the channels of y must be divisible by {bands}**levels = {bands**levels}, "
            f"got {y.shape[1]} (y of shape {tuple(y.shape)})"
        )


def _dispatch(
    op: str, x: Tensor, levels: int, causal: bool, rescale: bool, inverse: bool, backend: str
) -> Tensor:
    chosen = resolve_backend(
        backend, x.device, op=op, preference=OPS[op].preference, input_reason=fast_dtype_reason(x)
    )
    return _haar_transform(x, levels, causal, rescale, inverse, False, chosen)


def _check_causal(op: str, causal: bool) -> None:
    if not isinstance(causal, bool):
        raise TypeError(f"{op}: causal must be a bool, got {type(causal).__name__}")


def haar3d_analysis(
    x: Tensor, *, levels: int = 1, causal: bool = True, rescale: bool = False, backend: str = "auto"
) -> Tensor:
    """3D Haar wavelet packet analysis, as the Cosmos tokenizer's Patcher3D.

    Args:
        x: (B, C, T, H, W) video. H and W divisible by 2**levels; T = 1 + k * 2**levels when causal,
            else divisible by 2**levels.
        levels: transform levels; channels multiply by 8 per level.
        causal: repeat the first frame 2**levels times, so that no output frame sees later input.
        rescale: divide each level by 2*sqrt2 (Cosmos's tokenizer) instead of staying orthonormal.
    Returns:
        (B, C * 8**levels, T', H / 2**levels, W / 2**levels), T' = 1 + k when causal.
    """
    op = "haar3d_analysis"
    _check_common(op, x, 5, levels, rescale)
    _check_causal(op, causal)
    _check_analysis_sizes(op, x, levels, causal)
    return _dispatch(op, x, levels, causal, rescale, False, backend)


def haar3d_synthesis(
    y: Tensor, *, levels: int = 1, causal: bool = True, rescale: bool = False, backend: str = "auto"
) -> Tensor:
    """Inverse of :func:`haar3d_analysis` with the same arguments: (B, C * 8**levels, T', h, w) -> video."""
    op = "haar3d_synthesis"
    _check_common(op, y, 5, levels, rescale)
    _check_causal(op, causal)
    _check_synthesis_channels(op, y, levels, 8)
    return _dispatch(op, y, levels, causal, rescale, True, backend)


def haar2d_analysis(x: Tensor, *, levels: int = 1, rescale: bool = False, backend: str = "auto") -> Tensor:
    """2D Haar wavelet packet analysis of images, as Cosmos's 2D Patcher.

    Args:
        x: (B, C, H, W), H and W divisible by 2**levels.
        rescale: divide each level by 2 (Cosmos's image tokenizer) instead of staying orthonormal.
    Returns:
        (B, C * 4**levels, H / 2**levels, W / 2**levels), bands LL, LH, HL, HH (width letter first).
    """
    op = "haar2d_analysis"
    _check_common(op, x, 4, levels, rescale)
    _check_analysis_sizes(op, x, levels, False)
    return _dispatch(op, x, levels, False, rescale, False, backend)


def haar2d_synthesis(y: Tensor, *, levels: int = 1, rescale: bool = False, backend: str = "auto") -> Tensor:
    """Inverse of :func:`haar2d_analysis` with the same arguments."""
    op = "haar2d_synthesis"
    _check_common(op, y, 4, levels, rescale)
    _check_synthesis_channels(op, y, levels, 4)
    return _dispatch(op, y, levels, False, rescale, True, backend)


__all__ = ["haar2d_analysis", "haar2d_synthesis", "haar3d_analysis", "haar3d_synthesis"]
