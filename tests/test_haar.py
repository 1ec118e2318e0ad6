"""3D and 2D Haar wavelet transforms: against the reference, Cosmos's own formulation, and their laws."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import DTYPES, assert_close, backend_params

from cosmos_kernels import ops, reference

# (shape, levels, causal): ragged sizes, T = 1 + k * 2**levels when causal.
CASES_3D = [
    ((1, 3, 5, 4, 6), 1, True),
    ((2, 2, 9, 8, 4), 2, True),
    ((1, 2, 1, 2, 2), 1, True),
    ((1, 3, 4, 6, 10), 1, False),
    ((1, 1, 8, 4, 4), 2, False),
]
CASES_2D = [((2, 3, 6, 10), 1), ((1, 2, 8, 4), 2)]


def _leaf(shape, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype).to(device).requires_grad_()


def _check_against_reference(op, ref_op, x, dtype, **kwargs):
    out = op(x, **kwargs)
    assert out.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    ref = ref_op(x64, **{k: v for k, v in kwargs.items() if k != "backend"})
    assert_close(out, ref, dtype, f"{op.__name__} forward {dtype}")
    grad = torch.randn_like(ref).to(dtype)  # rounded, so both sides see the same gradient
    out.backward(grad)
    ref.backward(grad.double())
    assert_close(x.grad, x64.grad, dtype, f"{op.__name__} backward {dtype}")


@pytest.mark.parametrize(("device", "backend"), backend_params())
@pytest.mark.parametrize(("shape", "levels", "causal"), CASES_3D, ids=str)
@pytest.mark.parametrize("rescale", [False, True], ids=["orthonormal", "rescale"])
def test_haar3d(device, backend, shape, levels, causal, rescale):
    kwargs = dict(levels=levels, causal=causal, rescale=rescale, backend=backend)
    for dtype in DTYPES:
        x = _leaf(shape, dtype, device)
        _check_against_reference(ops.haar3d_analysis, reference.haar3d_analysis, x, dtype, **kwargs)
        y = _leaf(reference.haar3d_analysis(x.detach(), levels, causal).shape, dtype, device, seed=1)
        _check_against_reference(ops.haar3d_synthesis, reference.haar3d_synthesis, y, dtype, **kwargs)


@pytest.mark.parametrize(("device", "backend"), backend_params())
@pytest.mark.parametrize(("shape", "levels"), CASES_2D, ids=str)
@pytest.mark.parametrize("rescale", [False, True], ids=["orthonormal", "rescale"])
def test_haar2d(device, backend, shape, levels, rescale):
    kwargs = dict(levels=levels, rescale=rescale, backend=backend)
    for dtype in DTYPES:
        x = _leaf(shape, dtype, device)
        _check_against_reference(ops.haar2d_analysis, reference.haar2d_analysis, x, dtype, **kwargs)
        y = _leaf(reference.haar2d_analysis(x.detach(), levels).shape, dtype, device, seed=1)
        _check_against_reference(ops.haar2d_synthesis, reference.haar2d_synthesis, y, dtype, **kwargs)


@pytest.mark.parametrize(("device", "backend"), backend_params())
def test_perfect_reconstruction_energy_and_causality(device, backend):
    x = torch.randn(1, 3, 9, 8, 8, dtype=torch.float32, device=device)
    for rescale in (False, True):
        y = ops.haar3d_analysis(x, levels=2, rescale=rescale, backend=backend)
        assert y.shape == (1, 192, 3, 2, 2)
        back = ops.haar3d_synthesis(y, levels=2, rescale=rescale, backend=backend)
        torch.testing.assert_close(back, x, rtol=1e-5, atol=1e-5)

    # Orthonormal and non-causal: the transform preserves energy.
    frames = x[:, :, 1:]
    y = ops.haar3d_analysis(frames, levels=2, causal=False, backend=backend)
    torch.testing.assert_close(y.square().sum(), frames.square().sum(), rtol=1e-5, atol=0)

    # Causal: changing the last input frame changes only the last output frame.
    y = ops.haar3d_analysis(x, levels=2, backend=backend)
    later = x.clone()
    later[:, :, -1] += 1.0
    y_later = ops.haar3d_analysis(later, levels=2, backend=backend)
    assert torch.equal(y_later[:, :, :-1], y[:, :, :-1])
    assert not torch.equal(y_later[:, :, -1], y[:, :, -1])

    image = torch.randn(2, 3, 8, 12, device=device)
    y = ops.haar2d_analysis(image, levels=2, backend=backend)
    torch.testing.assert_close(
        ops.haar2d_synthesis(y, levels=2, backend=backend), image, rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(y.square().sum(), image.square().sum(), rtol=1e-5, atol=0)


def _depthwise_haar(x, dim, high):
    """Cosmos's formulation: a strided depthwise convolution with the Haar filter along one axis."""
    taps = torch.tensor([1.0, -1.0] if high else [1.0, 1.0], dtype=x.dtype) / math.sqrt(2)
    shape = [1] * (x.dim() - 2)
    shape[dim - 2] = 2
    weight = taps.view(1, 1, *shape).repeat(x.shape[1], 1, *([1] * len(shape)))
    stride = [1] * len(shape)
    stride[dim - 2] = 2
    conv = F.conv3d if x.dim() == 5 else F.conv2d
    return conv(x, weight, stride=stride, groups=x.shape[1])


def _cosmos_patcher3d(x, patch_size):
    x = torch.cat([x[:, :, :1].repeat_interleave(patch_size, dim=2), x[:, :, 1:]], dim=2)
    for _ in range(int(math.log2(patch_size))):
        bands = [x]
        for dim in (2, 3, 4):  # time, then height, then width
            bands = [_depthwise_haar(b, dim, high) for b in bands for high in (False, True)]
        x = torch.cat(bands, dim=1) / (2 * math.sqrt(2))
    return x


def _cosmos_patcher2d(x, patch_size):
    for _ in range(int(math.log2(patch_size))):
        bands = [x]
        for dim in (3, 2):  # width, then height
            bands = [_depthwise_haar(b, dim, high) for b in bands for high in (False, True)]
        x = torch.cat(bands, dim=1) / 2
    return x


def test_matches_cosmos_patchers():
    """An independent slow formulation: Cosmos's depthwise-convolution patchers, patch size 4."""
    video = torch.randn(2, 3, 9, 8, 12, dtype=torch.float64)
    expected = _cosmos_patcher3d(video, 4)
    assert expected.shape == (2, 192, 3, 2, 3)
    torch.testing.assert_close(ops.haar3d_analysis(video, levels=2, causal=True, rescale=True), expected)
    image = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    expected = _cosmos_patcher2d(image, 4)
    assert expected.shape == (2, 48, 2, 3)
    torch.testing.assert_close(ops.haar2d_analysis(image, levels=2, rescale=True), expected)


def test_hand_computed_bands():
    """One 2x2x2 block, values by hand: rescaled LLL is the mean, LLH the width difference."""
    block = torch.arange(8, dtype=torch.float64).view(1, 1, 2, 2, 2)  # value = 4t + 2h + w
    y = ops.haar3d_analysis(block, levels=1, causal=False, rescale=True).flatten()
    # band (bt, bh, bw) = sum over the block of (-1)^(bt*t + bh*h + bw*w) * value / 8
    expected = torch.tensor([3.5, -0.5, -1.0, 0.0, -2.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(y, expected)
    orthonormal = ops.haar3d_analysis(block, levels=1, causal=False).flatten()
    torch.testing.assert_close(orthonormal, expected * 8 / (2 * math.sqrt(2)))
    # Causal: frame 0 repeated twice; one input frame -> one output frame, all time-high bands zero.
    frame = block[:, :, :1]
    y = ops.haar3d_analysis(frame, levels=1, rescale=True).flatten()
    torch.testing.assert_close(y[:4], torch.tensor([1.5, -0.5, -1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(y[4:], torch.zeros(4, dtype=torch.float64))
