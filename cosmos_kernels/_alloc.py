"""Output allocation for the fast kernels.

With ``COSMOS_KERNELS_POISON=1`` (the test suite sets it) outputs start as NaN instead of whatever
memory held, so an element a kernel forgets to write fails the tests instead of passing by luck.
"""

import os

import torch


def empty_output(
    shape: tuple[int, ...] | torch.Size, like: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype or like.dtype, device=like.device)
    if os.environ.get("COSMOS_KERNELS_POISON", "0") == "1":
        out.fill_(float("nan"))
    return out
