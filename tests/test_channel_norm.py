"""rms_norm_channels_silu (the Wan VAE's norm + SiLU) against its reference, and the reference against
diffusers' formula, forward and backward, on ragged shapes."""

import pytest
import torch
import torch.nn.functional as F
from conftest import TOLERANCE, backend_params

from cosmos_kernels import ops, reference


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def test_reference_is_diffusers_wan_rms_norm_then_silu():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 3, 5, 7, dtype=torch.float64)
    weight, bias = torch.randn(12, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    # diffusers' WanRMS_norm: F.normalize over dim 1 * dim**0.5 * gamma + bias, gamma (C, 1, 1, 1).
    expected = F.silu(F.normalize(x, dim=1) * 12**0.5 * weight.view(12, 1, 1, 1) + bias.view(12, 1, 1, 1))
    torch.testing.assert_close(reference.rms_norm_channels_silu(x, weight, bias), expected)


CASES = [
    ((2, 12, 3, 5, 7), True, True),  # ragged: 105 positions, channels not a multiple of the tile
    ((1, 40, 2, 9, 16), False, True),  # more channels than one tile, no bias
    ((3, 5, 4, 6), True, False),  # images, norm alone
]


@pytest.mark.parametrize("device, backend", backend_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape, with_bias, silu", CASES)
def test_matches_reference(device, backend, dtype, shape, with_bias, silu):
    if backend == "cuda":
        pytest.skip("no CUDA C++ kernel for this op (Triton only)")
    torch.manual_seed(1)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    weight = torch.randn(shape[1], device=device, dtype=dtype, requires_grad=True)
    bias = torch.randn(shape[1], device=device, dtype=dtype, requires_grad=True) if with_bias else None
    out = ops.rms_norm_channels_silu(x, weight, bias, silu=silu, backend=backend)
    leaves = [x, weight] + ([bias] if with_bias else [])
    exact = reference.rms_norm_channels_silu(
        *(t.detach().double().requires_grad_() for t in leaves[:2]),
        leaves[2].detach().double().requires_grad_() if with_bias else None,
        silu=silu,
    )
    assert out.dtype == dtype and out.shape == x.shape
    assert _relative(out, exact) < TOLERANCE[dtype]
    cotangent = torch.randn_like(exact)
    grads = torch.autograd.grad(out, leaves, cotangent.to(dtype))
    exact_leaves = [t.detach().double().requires_grad_() for t in leaves]
    exact_out = reference.rms_norm_channels_silu(
        exact_leaves[0], exact_leaves[1], exact_leaves[2] if with_bias else None, silu=silu
    )
    exact_grads = torch.autograd.grad(exact_out, exact_leaves, cotangent)
    for name, got, want in zip(("x", "weight", "bias"), grads, exact_grads, strict=False):
        assert _relative(got, want) < 10 * TOLERANCE[dtype], name


def test_zero_positions_stay_finite():
    x = torch.zeros(1, 4, 3, 3)
    out = ops.rms_norm_channels_silu(x, torch.ones(4), torch.ones(4))
    torch.testing.assert_close(out, F.silu(torch.ones_like(x)))


def test_bad_input():
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match=r"weight must be \(4,\)"):
        ops.rms_norm_channels_silu(x, torch.ones(3))
    with pytest.raises(TypeError, match="bias must have the dtype of x"):
        ops.rms_norm_channels_silu(x, torch.ones(4), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="x must be"):
        ops.rms_norm_channels_silu(torch.randn(4), torch.ones(4))
    with pytest.raises(ValueError, match="eps"):
        ops.rms_norm_channels_silu(x, torch.ones(4), eps=0.0)
