"""Launchers of the single-level Haar kernels (``csrc/haar.cu``); the ``ops`` layer loops over levels.

Inputs are contiguous (B, C, T, H, W) signals or (B, 8C, T2, H2, W2) coefficients in 3D, (B, C, H, W)
or (B, 4C, H2, W2) in 2D; outputs are new contiguous tensors of the input dtype, computed in fp32.
Bands are the outer channel index (channel = band * C + c), ordered time, height, width letter in 3D
and width, height letter in 2D as in :mod:`cosmos_kernels.reference.haar`. ``coeff`` scales each level
(``2 ** -1.5`` for the orthonormal 3D transform, 0.5 in 2D, times the rescale factor).
"""

from collections.abc import Callable

import torch

from cosmos_kernels._alloc import empty_output
from cosmos_kernels.cuda import _check_tensor, _device, _dtype_code, _stream, extension

__all__ = [
    "haar2d_analysis_level",
    "haar2d_synthesis_level",
    "haar3d_analysis_level",
    "haar3d_synthesis_level",
]


def _check_contiguous(name: str, t: torch.Tensor, dims: int) -> None:
    _check_tensor(name, t)
    if t.dim() != dims:
        raise ValueError(f"{name} must have {dims} dims, got shape {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous, got strides {t.stride()} for shape {tuple(t.shape)}")


def _check_even(name: str, **sizes: int) -> None:
    odd = {key: value for key, value in sizes.items() if value % 2}
    if odd:
        raise ValueError(f"{name} needs even sizes, got {odd}")


def _run(kernel: Callable[..., None], coeffs: torch.Tensor, **args: object) -> None:
    """Calls _C.haar_analysis or _C.haar_synthesis; the sizes not in `args` come from the coefficients."""
    with _device(coeffs):
        kernel(
            dtype=_dtype_code(coeffs),
            batch=coeffs.shape[0],
            half_height=coeffs.shape[-2],
            half_width=coeffs.shape[-1],
            device=coeffs.get_device(),
            stream=_stream(coeffs),
            **args,
        )


def haar3d_analysis_level(x: torch.Tensor, coeff: float, front: int, zero_front: bool) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, 8C, (T + front) / 2, H / 2, W / 2), band = 4*bt + 2*bh + bw.

    The signal is seen behind `front` virtual frames: copies of frame 0, or zeros with `zero_front`.
    """
    _check_contiguous("x", x, 5)
    batch, channels, frames, height, width = x.shape
    if front < 0:
        raise ValueError(f"front must be >= 0, got {front}")
    _check_even("x", frames_plus_front=frames + front, height=height, width=width)
    if front > 0 and frames == 0 and not zero_front:
        raise ValueError("x needs a frame to repeat in front, got T = 0")
    half_frames = (frames + front) // 2
    y = empty_output((batch, 8 * channels, half_frames, height // 2, width // 2), x)
    _run(
        extension().haar_analysis,
        y,
        channels=channels,
        half_frames=half_frames,
        front=front,
        has_time=True,
        x=x.data_ptr(),
        y=y.data_ptr(),
        coeff=float(coeff),
        zero_front=bool(zero_front),
    )
    return y


def haar3d_synthesis_level(y: torch.Tensor, coeff: float, front: int, sum_front: bool) -> torch.Tensor:
    """(B, 8C, T2, H2, W2) -> (B, C, 2 * T2 - front, 2 * H2, 2 * W2), the transpose of the analysis.

    The first `front` virtual frames are dropped, or with `sum_front` added into output frame 0 (the
    adjoint of repeating frame 0).
    """
    _check_contiguous("y", y, 5)
    batch, bands_channels, half_frames, half_height, half_width = y.shape
    if bands_channels % 8:
        raise ValueError(f"y must have 8 * C channels, got {bands_channels}")
    if front < 0 or (front >= 2 * half_frames and half_frames > 0) or (half_frames == 0 and front > 0):
        raise ValueError(f"front must be in [0, 2 * T2) = [0, {2 * half_frames}), got {front}")
    channels = bands_channels // 8
    x = empty_output((batch, channels, 2 * half_frames - front, 2 * half_height, 2 * half_width), y)
    _run(
        extension().haar_synthesis,
        y,
        channels=channels,
        half_frames=half_frames,
        front=front,
        has_time=True,
        y=y.data_ptr(),
        x=x.data_ptr(),
        coeff=float(coeff),
        sum_front=bool(sum_front),
    )
    return x


def haar2d_analysis_level(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H / 2, W / 2), band = 2*bw + bh (width letter first)."""
    _check_contiguous("x", x, 4)
    batch, channels, height, width = x.shape
    _check_even("x", height=height, width=width)
    y = empty_output((batch, 4 * channels, height // 2, width // 2), x)
    _run(
        extension().haar_analysis,
        y,
        channels=channels,
        half_frames=1,
        front=0,
        has_time=False,
        x=x.data_ptr(),
        y=y.data_ptr(),
        coeff=float(coeff),
        zero_front=False,
    )
    return y


def haar2d_synthesis_level(y: torch.Tensor, coeff: float) -> torch.Tensor:
    """(B, 4C, H2, W2) -> (B, C, 2 * H2, 2 * W2), the transpose of the analysis."""
    _check_contiguous("y", y, 4)
    batch, bands_channels, half_height, half_width = y.shape
    if bands_channels % 4:
        raise ValueError(f"y must have 4 * C channels, got {bands_channels}")
    channels = bands_channels // 4
    x = empty_output((batch, channels, 2 * half_height, 2 * half_width), y)
    _run(
        extension().haar_synthesis,
        y,
        channels=channels,
        half_frames=1,
        front=0,
        has_time=False,
        y=y.data_ptr(),
        x=x.data_ptr(),
        coeff=float(coeff),
        sum_front=False,
    )
    return x
