"""torch.compile(fullgraph=True) sees each op as one opaque node and matches eager."""

import pytest
import torch
from conftest import HAS_CUDA

from cosmos_kernels import ops
from cosmos_kernels.ops import adaln, haar


def block_step(x, y, gate, shift, scale, video):
    h, modulated = ops.gated_residual_adaln(x, y, gate, shift, scale)
    bands = ops.haar3d_analysis(video, levels=1, rescale=True)
    image_bands = ops.haar2d_analysis(video[:, :, 0], levels=1)
    return (
        ops.adaln_modulate(h, shift, scale),
        modulated,
        ops.haar3d_synthesis(bands, levels=1, rescale=True),
        ops.haar2d_synthesis(image_bands, levels=1),
    )


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU")]),
    ],
)
def test_compile_fullgraph_matches_eager(device):
    torch.manual_seed(0)
    args = [torch.randn(2, 6, 16), torch.randn(2, 6, 16)] + [torch.randn(2, 16) for _ in range(3)]
    args.append(torch.randn(1, 3, 5, 4, 4))
    args = [a.to(device).requires_grad_() for a in args]
    compiled = torch.compile(block_step, fullgraph=True)
    eager_out = block_step(*args)
    eager_grads = torch.autograd.grad(sum(o.square().sum() for o in eager_out), args)
    compiled_out = compiled(*args)
    compiled_grads = torch.autograd.grad(sum(o.square().sum() for o in compiled_out), args)
    for ours, theirs in zip(compiled_out + compiled_grads, eager_out + eager_grads, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_opcheck_custom_ops():
    """torch.library.opcheck: schema, fake impl, autograd registration agree with the real kernels."""
    x = torch.randn(2, 6, 8, requires_grad=True)
    mods = [torch.randn(2, 3, 8, requires_grad=True) for _ in range(3)]
    torch.library.opcheck(adaln._adaln_modulate, (x, *mods[:2], 1e-6, "torch"))
    torch.library.opcheck(adaln._gated_residual_adaln, (x, x.detach().clone(), *mods, 1e-6, "torch"))
    video = torch.randn(1, 2, 5, 4, 4, requires_grad=True)
    bands = torch.randn(1, 16, 3, 2, 2, requires_grad=True)
    for inverse in (False, True):
        for adjoint in (False, True):
            inp = bands if inverse else video
            torch.library.opcheck(haar._haar_transform, (inp, 1, True, True, inverse, adjoint, "torch"))
