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


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. Also a ValueError: the model layers raised ValueError for every bad
    number before these checks were shared, and callers such as the training-config loader catch
    ValueError to name the file and field of the bad value."""


def is_int(value: object) -> bool:
    """An int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _got(value: object) -> str:
    return repr(value) if isinstance(value, int | float | str | None) else type(value).__name__


def _expected(kind: str, low: float | None, high: float | None, *, open_low: bool = False) -> str:
    """E.g. "an int >= 1", "a finite number in [0, 1]", "a finite number > 0"."""
    if low is not None and high is not None:
        return f"{kind} in {'(' if open_low else '['}{low}, {high}]"
    if low is not None:
        return f"{kind} {'>' if open_low else '>='} {low}"
    return kind if high is None else f"{kind} <= {high}"


def _check_int(
    op: str, name: str, value: object, minimum: int | None, maximum: int | None, expected: str
) -> int:
    if not is_int(value):
        raise ArgumentTypeError(f"{op}: {name} must be {expected}, got {_got(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{op}: {name} must be {expected}, got {value!r}")
    return value


def check_int(
    op: str, name: str, value: object, minimum: int | None = None, *, maximum: int | None = None
) -> int:
    """An int (not bool) within the given bounds, both inclusive."""
    return _check_int(op, name, value, minimum, maximum, _expected("an int", minimum, maximum))


def check_optional_int(op: str, name: str, value: object, minimum: int | None = None) -> int | None:
    """None, or an int >= ``minimum``."""
    if value is None:
        return None
    return _check_int(op, name, value, minimum, None, _expected("an int", minimum, None) + " or None")


def check_power_of_two(op: str, name: str, value: object, minimum: int) -> int:
    """An int power of two >= ``minimum``."""
    if not is_int(value):
        raise ArgumentTypeError(f"{op}: {name} must be a power of two >= {minimum}, got {_got(value)}")
    if value < minimum or value & (value - 1):
        raise ValueError(f"{op}: {name} must be a power of two >= {minimum}, got {value!r}")
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
    """A real number (int or float, not bool), finite, within the given bounds (``positive``: > 0, in
    place of a ``minimum``; ``minimum`` and ``maximum`` inclusive); returned as float."""
    low = 0 if positive else minimum
    expected = _expected("a finite number", low, maximum, open_low=positive)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentTypeError(f"{op}: {name} must be {expected}, got {_got(value)}")
    if (
        not -math.inf < value < math.inf  # not math.isfinite: comparisons trace under torch.compile
        or (positive and not value > 0)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise ValueError(f"{op}: {name} must be {expected}, got {value!r}")
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
