"""Tensor layouts the Triton launchers share."""

import torch


def bshd_strides(t: torch.Tensor) -> tuple[int, int, int]:
    """(batch, sequence, head) strides of a BSHD tensor, checked to keep the int32 in-head offsets."""
    if (t.shape[1] - 1) * t.stride(1) + t.shape[3] >= 2**31:
        raise ValueError(
            f"attention: one (batch, head) of a tensor of shape {tuple(t.shape)} and strides {t.stride()} "
            "spans 2^31 elements or more, past the int32 offsets of the Triton kernels"
        )
    return t.stride(0), t.stride(1), t.stride(2)
