"""Launchers of the CUDA C++ kernels: ``csrc/`` compiled and bound by ``python/bindings.cpp`` into the
optional extension ``cosmos_kernels._C``.

The extension exists only when the package was built with a CUDA compiler (``COSMOS_KERNELS_BUILD_CUDA``),
so nothing here imports it at package import: :func:`is_built` tries once and :func:`import_error` says
why it failed. The launchers in :mod:`.adaln` and :mod:`.haar` take torch tensors, allocate their outputs
with torch and hand the kernels raw pointers, strides and torch's current stream; the ``ops`` layer
validates shapes before calling them, the launchers re-check what would otherwise fault on the GPU.
"""

import torch

from cosmos_kernels._extension import build_info, extension, import_error, is_built

__all__ = ["build_info", "extension", "import_error", "is_built"]

# The dtype codes of the C++ side (cosmos_kernels::DType).
_DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


# Helpers shared by the launchers.


def _check_tensor(name: str, t: torch.Tensor, like: torch.Tensor | None = None) -> None:
    """ValueError unless t is a CUDA tensor of a supported dtype (the dtype and device of `like`)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_cuda:
        raise ValueError(f"{name} must be a CUDA tensor, got device {t.device}")
    if t.dtype not in _DTYPE_CODES:
        raise ValueError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if like is not None and t.dtype != like.dtype:
        raise ValueError(f"{name} must have dtype {like.dtype} like the other inputs, got {t.dtype}")
    if like is not None and t.device != like.device:
        raise ValueError(f"{name} must be on {like.device} like the other inputs, got {t.device}")


def _dtype_code(t: torch.Tensor) -> int:
    return _DTYPE_CODES[t.dtype]


def _device(t: torch.Tensor) -> torch.cuda.device:
    """Makes t's device current around a launch. torch's guard restores the caller's device without
    creating a context there, which the extension's own guard (plain cudaSetDevice) would do for an
    unused device 0; with this in place that guard finds nothing to switch."""
    return torch.cuda.device(t.device)


def _stream(t: torch.Tensor) -> int:
    """The cudaStream_t of torch's current stream on t's device, as an integer."""
    return torch.cuda.current_stream(t.device).cuda_stream
