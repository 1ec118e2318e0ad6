"""Argument checks for every public function: each error names the function, the argument and what was
expected. Numbers: ``bool`` is an ``int`` to Python, never a count or a scale here."""

import math
from collections.abc import Sequence

import torch

FAST_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FLOAT_DTYPES = (*FAST_DTYPES, torch.float64)


def check_tensor(op: str, name: str, t: object, ndims: Sequence[int]) -> torch.Tensor:
    """A floating tensor with one of the allowed ranks."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32, float16, bfloat16 or float64, got {t.dtype}")
    if t.dim() not in ndims:
        shapes = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{op}: {name} must be {shapes}, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {tuple(t.shape)}")
    return t


def check_same_dtype_and_device(op: str, **tensors: torch.Tensor) -> None:
    (first_name, first), *rest = tensors.items()
    for name, t in rest:
        if t.dtype != first.dtype:
            raise TypeError(
                f"{op}: {name} must have the dtype of {first_name} ({first.dtype}), got {t.dtype}"
            )
        if t.device != first.device:
            raise ValueError(
                f"{op}: {name} must be on the device of {first_name} ({first.device}), got {t.device}"
            )


def check_int(op: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return value


def check_number(
    op: str,
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
) -> float:
    """A real number (int or float, not bool), finite, within the given bounds; returned as float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{op}: {name} must be finite, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{op}: {name} must be a positive number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{op}: {name} must be <= {maximum}, got {value!r}")
    return float(value)


def check_eps(op: str, eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
        raise ValueError(f"{op}: eps must be a positive number, got {eps!r}")
    return float(eps)


def fast_dtype_reason(t: torch.Tensor) -> str | None:
    if t.dtype not in FAST_DTYPES:
        return f"the fast kernels take float32, float16 and bfloat16, got {t.dtype}"
    return None


def last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The fast kernels take any batch/row strides but need unit stride along the last dim."""
    return t if t.stride(-1) == 1 else t.contiguous()
