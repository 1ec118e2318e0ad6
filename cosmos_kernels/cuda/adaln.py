"""Launchers of the AdaLN kernels (``csrc/adaln_forward.cu``, ``csrc/adaln_backward.cu``).

Token rows ``x``, ``y``, ``h`` and the gradients are (B, S, D) and modulation rows ``shift``, ``scale``,
``gate`` are (B, T, D): each with a contiguous last dim and any other strides (views such as
``mod.chunk(3, -1)`` need no copy). Token s of batch b uses modulation row (b, s // (S // T)). The
kernels compute in fp32 and return new contiguous tensors of the input dtype; the references are
:func:`cosmos_kernels.reference.adaln_modulate` and :func:`cosmos_kernels.reference.gated_residual_adaln`.
"""

import torch

from cosmos_kernels._alloc import empty_output
from cosmos_kernels.cuda import _check_tensor, _device, _dtype_code, _stream, extension

__all__ = [
    "adaln_modulate_backward",
    "adaln_modulate_forward",
    "gated_residual_adaln_backward",
    "gated_residual_adaln_forward",
]

_MAX_DIM = 16384  # kAdalnMaxDim of the kernels: the longest row they keep in registers


def _check_tokens(name: str, t: torch.Tensor, like: torch.Tensor) -> None:
    _check_tensor(name, t, like)
    if t.shape != like.shape:
        raise ValueError(f"{name} must have shape {tuple(like.shape)}, got {tuple(t.shape)}")
    if t.stride(-1) != 1:
        raise ValueError(f"{name} must be contiguous in its last dim, got strides {t.stride()}")


def _check_modulation(name: str, t: torch.Tensor, x: torch.Tensor) -> None:
    _check_tensor(name, t, x)
    batch, seq, dim = x.shape
    if t.dim() != 3 or t.shape[0] != batch or t.shape[2] != dim or t.shape[1] < 1 or seq % t.shape[1]:
        raise ValueError(
            f"{name} must be (B, T, D) = ({batch}, T, {dim}) with S = {seq} a multiple of T, "
            f"got {tuple(t.shape)}"
        )
    if t.stride(-1) != 1:
        raise ValueError(f"{name} must be contiguous in its last dim, got strides {t.stride()}")


def _check_x(name: str, x: torch.Tensor) -> None:
    _check_tensor(name, x)
    if x.dim() != 3:
        raise ValueError(f"{name} must be (B, S, D), got shape {tuple(x.shape)}")
    if not 1 <= x.shape[2] <= _MAX_DIM:
        raise ValueError(f"{name} must have 1 <= D <= {_MAX_DIM}, got D = {x.shape[2]}")
    if x.stride(-1) != 1:
        raise ValueError(f"{name} must be contiguous in its last dim, got strides {x.stride()}")


def _sizes(x: torch.Tensor, modulation: torch.Tensor) -> tuple[int, int, int, int]:
    batch, seq, dim = x.shape
    return batch, seq, modulation.shape[1], dim


def _rows(t: torch.Tensor) -> tuple[int, int, int]:
    return t.data_ptr(), t.stride(0), t.stride(1)


def _forward(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, out: torch.Tensor, eps: float, **gated: object
) -> None:
    """Shared by both forward launchers; ``gated`` holds y, gate and h_out for the gated form."""
    with _device(x):
        extension().adaln_forward(
            dtype=_dtype_code(x),
            sizes=_sizes(x, shift),
            x=_rows(x),
            shift=_rows(shift),
            scale=_rows(scale),
            out=out.data_ptr(),
            eps=float(eps),
            device=x.get_device(),
            stream=_stream(x),
            **gated,
        )


def adaln_modulate_forward(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float
) -> torch.Tensor:
    """``LN(x) * (1 + scale) + shift``, LN over D without affine."""
    _check_x("x", x)
    _check_modulation("shift", shift, x)
    _check_modulation("scale", scale, x)
    if shift.shape != scale.shape:
        raise ValueError(f"shift {tuple(shift.shape)} and scale {tuple(scale.shape)} must have one shape")
    out = empty_output(x.shape, x)
    _forward(x, shift, scale, out, eps)
    return out


def gated_residual_adaln_forward(
    x: torch.Tensor,
    y: torch.Tensor,
    gate: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``h = x + gate * y`` and ``LN(h) * (1 + scale) + shift`` of the fp32 h; returns (h, out)."""
    _check_x("x", x)
    _check_tokens("y", y, x)
    for name, t in (("gate", gate), ("shift", shift), ("scale", scale)):
        _check_modulation(name, t, x)
        if t.shape != gate.shape:
            raise ValueError(f"{name} must have the shape of gate {tuple(gate.shape)}, got {tuple(t.shape)}")
    h, out = empty_output(x.shape, x), empty_output(x.shape, x)
    _forward(x, shift, scale, out, eps, y=_rows(y), gate=_rows(gate), h_out=h.data_ptr())
    return h, out


def _backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    scale: torch.Tensor,
    eps: float,
    gated: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, ...]:
    """Shared by both backward launchers; `gated` is (grad_h, y, gate) with x the stored h."""
    ext = extension()
    code, sizes = _dtype_code(x), _sizes(x, scale)
    batch, _, frames, dim = sizes

    def new(*shape: int, dtype: torch.dtype = x.dtype) -> torch.Tensor:
        return empty_output(shape, x, dtype)

    grad_x = new(*x.shape)
    frame_grads = [new(batch, frames, dim) for _ in range(3 if gated else 2)]  # shift, scale, gate
    # fp32 frame sums per chunk of tokens, added up in a fixed order by the kernels' second pass.
    with _device(x):
        pieces = ext.adaln_backward_pieces(code, sizes, gated is not None, x.get_device())
        workspace = new(len(frame_grads), pieces, batch * frames, dim, dtype=torch.float32)
        gated_args = {}
        if gated is not None:
            grad_h, y, gate = gated
            grad_y = new(*x.shape)
            gated_args = {
                "grad_h": _rows(grad_h),
                "y": _rows(y),
                "gate": _rows(gate),
                "grad_y": grad_y.data_ptr(),
                "grad_gate": frame_grads[2].data_ptr(),
            }
        ext.adaln_backward(
            dtype=code,
            sizes=sizes,
            grad_out=_rows(grad_out),
            x=_rows(x),
            scale=_rows(scale),
            grad_x=grad_x.data_ptr(),
            grad_shift=frame_grads[0].data_ptr(),
            grad_scale=frame_grads[1].data_ptr(),
            workspace=workspace.data_ptr(),
            pieces=pieces,
            eps=float(eps),
            device=x.get_device(),
            stream=_stream(x),
            **gated_args,
        )
    if gated is None:
        return grad_x, frame_grads[0], frame_grads[1]
    return grad_x, grad_y, frame_grads[2], frame_grads[0], frame_grads[1]


def adaln_modulate_backward(
    grad_out: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`adaln_modulate_forward`: (grad_x, grad_shift, grad_scale).

    The row statistics are recomputed from x; grad_shift and grad_scale sum over each frame's tokens
    in fp32, deterministically.
    """
    _check_x("x", x)
    _check_tokens("grad_out", grad_out, x)
    _check_modulation("scale", scale, x)
    return _backward(grad_out, x, scale, eps, None)


def gated_residual_adaln_backward(
    grad_h: torch.Tensor,
    grad_out: torch.Tensor,
    h: torch.Tensor,
    y: torch.Tensor,
    gate: torch.Tensor,
    scale: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`gated_residual_adaln_forward` from the stored h:
    (grad_x, grad_y, grad_gate, grad_shift, grad_scale).

    With g = grad_h + (the modulation's input gradient of grad_out at h): grad_x = g, grad_y = g * gate,
    grad_gate = frame sum of g * y, grad_shift = frame sum of grad_out, grad_scale = frame sum of
    grad_out * h_hat.
    """
    _check_x("h", h)
    _check_tokens("grad_h", grad_h, h)
    _check_tokens("grad_out", grad_out, h)
    _check_tokens("y", y, h)
    _check_modulation("gate", gate, h)
    _check_modulation("scale", scale, h)
    if gate.shape != scale.shape:
        raise ValueError(f"gate {tuple(gate.shape)} and scale {tuple(scale.shape)} must have one shape")
    grad_x, grad_y, grad_gate, grad_shift, grad_scale = _backward(grad_out, h, scale, eps, (grad_h, y, gate))
    return grad_x, grad_y, grad_gate, grad_shift, grad_scale
