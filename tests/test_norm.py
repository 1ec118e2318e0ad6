"""group_norm_silu against the float64 reference, forward and backward, on video and images."""

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DTYPES,
    HAS_TRITON,
    TOLERANCE,
    assert_close,
    backend_params,
    rel_error,
    triton_device_params,
)

from cosmos_kernels import BackendUnavailableError, ops, reference
from cosmos_kernels.ops import norm

# No CUDA C++ kernel for this op (see cosmos_kernels/ops/norm.py): the cuda backend params are dropped.
BACKENDS = [p for p in backend_params() if p.values[1] != "cuda"]

# (shape, num_groups): odd H*W, C not a power of two, T = 1, one and several groups, 5-D and 4-D.
CASES = [
    ((2, 6, 3, 5, 7), 1),
    ((1, 12, 1, 9, 11), 4),
    ((2, 8, 2, 3, 5), 4),
    ((2, 12, 5, 7), 4),
    ((3, 5, 4, 6), 1),
]


def make_inputs(shape, dtype, device, seed=0):
    """x with a nonzero mean (a zero-mean input would hide a wrong mean), and a non-trivial affine."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*size, scale=1.0, offset=0.0):
        t = torch.randn(*size, generator=gen, dtype=torch.float64) * scale + offset
        return t.to(dtype).to(device).requires_grad_()

    channels = shape[1]
    return (
        rand(*shape, scale=1.5, offset=0.7),
        rand(channels, scale=0.3, offset=1.0),
        rand(channels, scale=0.2),
    )


def check_against_reference(shape, groups, dtype, device, backend, silu=True):
    x, weight, bias = make_inputs(shape, dtype, device)
    out = ops.group_norm_silu(x, weight, bias, num_groups=groups, silu=silu, backend=backend)
    assert out.dtype == dtype and out.shape == x.shape

    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, weight, bias))
    ref = reference.group_norm_silu(x64, w64, b64, groups, 1e-6, silu)
    assert_close(out, ref, dtype, f"forward {dtype}")

    grad_out = torch.randn_like(ref).to(dtype)  # rounded, so both sides see the same gradient
    out.backward(grad_out)
    ref.backward(grad_out.double())
    for name, ours, theirs in (("x", x, x64), ("weight", weight, w64), ("bias", bias, b64)):
        assert ours.grad.dtype == dtype
        assert_close(ours.grad, theirs.grad, dtype, f"grad {name} {dtype}")


@pytest.mark.parametrize(("device", "backend"), BACKENDS)
@pytest.mark.parametrize(
    ("shape", "groups"), CASES, ids=lambda c: "x".join(map(str, c)) if isinstance(c, tuple) else f"g{c}"
)
def test_group_norm_silu(device, backend, shape, groups):
    for dtype in DTYPES:
        check_against_reference(shape, groups, dtype, device, backend)


@pytest.mark.parametrize(("device", "backend"), BACKENDS)
def test_without_silu(device, backend):
    check_against_reference((2, 6, 3, 5, 7), 2, torch.float32, device, backend, silu=False)


@pytest.mark.parametrize(("device", "backend"), BACKENDS)
def test_frames_do_not_mix(device, backend):
    """Changing frame 1 changes frame 1's output only: the norm keeps the tokenizer causal."""
    x, weight, bias = (t.detach() for t in make_inputs((2, 4, 3, 5, 6), torch.float32, device))
    out = ops.group_norm_silu(x, weight, bias, backend=backend)
    changed = x.clone()
    # Not an affine change (x * a + b), which a per-frame norm all but cancels (on a GPU, to allclose).
    changed[:, :, 1] = torch.randn_like(changed[:, :, 1])
    out_changed = ops.group_norm_silu(changed, weight, bias, backend=backend)
    assert torch.equal(out[:, :, 0], out_changed[:, :, 0])
    assert torch.equal(out[:, :, 2], out_changed[:, :, 2])
    assert not torch.allclose(out[:, :, 1], out_changed[:, :, 1])


def test_reference_matches_the_tokenizer_formula():
    """Cosmos: GroupNorm on each frame as an image, ``(b t) c h w``, then SiLU; images: GroupNorm, SiLU."""
    x, weight, bias = (t.detach() for t in make_inputs((2, 8, 3, 4, 5), torch.float64, "cpu"))
    frames = x.transpose(1, 2).flatten(0, 1)
    expected = F.silu(F.group_norm(frames, 2, weight, bias, 1e-6)).unflatten(0, (2, 3)).transpose(1, 2)
    torch.testing.assert_close(reference.group_norm_silu(x, weight, bias, 2), expected)
    image = x[:, :, 0]
    torch.testing.assert_close(
        reference.group_norm_silu(image, weight, bias, 4, silu=False),
        F.group_norm(image, 4, weight, bias, 1e-6),
    )


@pytest.mark.parametrize("device", triton_device_params())
def test_triton_loops_over_planes_in_blocks(monkeypatch, device):
    """720p planes take many loop steps and blocks; tiny blocks reproduce that, with a ragged tail."""
    from cosmos_kernels.triton import norm as triton_norm

    monkeypatch.setattr(triton_norm, "_REDUCE_BLOCK", 16)
    monkeypatch.setattr(triton_norm, "_APPLY_BLOCK", 8)
    check_against_reference((2, 6, 2, 5, 7), 2, torch.float32, device, "triton")


# Under the interpreter, numpy warns on exp overflow in the sigmoid of masked-off lanes (never stored).
@pytest.mark.filterwarnings("ignore:overflow encountered in exp")
@pytest.mark.parametrize(("device", "backend"), BACKENDS)
def test_large_mean_is_stable(device, backend):
    """A mean 300 standard deviations from 0: the plane and group merges (Chan's formula) keep the
    variance accurate where E[x^2] - E[x]^2 in float32 would lose it."""
    x, weight, bias = (t.detach() for t in make_inputs((1, 4, 2, 9, 13), torch.float32, device))
    x = x + 300
    out = ops.group_norm_silu(x, weight, bias, backend=backend)
    ref = reference.group_norm_silu(x.double(), weight.double(), bias.double())
    assert rel_error(out, ref) < 1e-4


@pytest.mark.parametrize(("device", "backend"), BACKENDS)
def test_opcheck(device, backend):
    """torch.library.opcheck: schema, fake impl and autograd registration agree with the real kernels."""
    for shape, groups in ((2, 4, 3, 3, 5), 2), ((2, 4, 3, 5), 4):
        x, weight, bias = make_inputs(shape, torch.float32, device)
        for silu in (True, False):
            torch.library.opcheck(norm._group_norm_silu, (x, weight, bias, groups, 1e-6, silu, backend))


def test_compile_fullgraph_matches_eager():
    x, weight, bias = make_inputs((2, 4, 3, 5, 6), torch.float32, "cpu")

    def step(x, weight, bias):
        h = ops.group_norm_silu(x, weight, bias, num_groups=2, backend="torch")
        return ops.group_norm_silu(h[:, :, 0], weight, bias, num_groups=4, silu=False, backend="torch")

    compiled = torch.compile(step, fullgraph=True)
    eager_out = step(x, weight, bias)
    eager_grads = torch.autograd.grad(eager_out.square().sum(), (x, weight, bias))
    compiled_out = compiled(x, weight, bias)
    compiled_grads = torch.autograd.grad(compiled_out.square().sum(), (x, weight, bias))
    for ours, theirs in zip((compiled_out, *compiled_grads), (eager_out, *eager_grads), strict=True):
        torch.testing.assert_close(ours, theirs)


def test_other_layouts_fall_back_to_torch_or_are_refused_by_name(monkeypatch):
    x, weight, bias = (t.detach() for t in make_inputs((2, 4, 6, 5), torch.float32, "cpu"))
    channels_last = x.to(memory_format=torch.channels_last)
    expected = reference.group_norm_silu(x, weight, bias)
    torch.testing.assert_close(ops.group_norm_silu(channels_last, weight, bias), expected)
    torch.testing.assert_close(
        ops.group_norm_silu(x[..., ::2], weight, bias), reference.group_norm_silu(x[..., ::2], weight, bias)
    )
    if HAS_TRITON:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        with pytest.raises(BackendUnavailableError, match="contiguous"):
            ops.group_norm_silu(channels_last, weight, bias, backend="triton")
        monkeypatch.setattr(norm, "MAX_FAST_PLANE", 29)
        with pytest.raises(BackendUnavailableError, match="H \\* W = 30"):
            ops.group_norm_silu(x, weight, bias, backend="triton")
    with pytest.raises(BackendUnavailableError, match="no cuda implementation"):
        ops.group_norm_silu(x, weight, bias, backend="cuda")


@pytest.mark.parametrize(("device", "backend"), BACKENDS)
def test_non_contiguous_gradient(device, backend):
    """A gradient expanded from a sum (stride 0) is read correctly."""
    x, weight, bias = make_inputs((1, 4, 2, 3, 5), torch.float32, device)
    ops.group_norm_silu(x, weight, bias, num_groups=2, backend=backend).sum().backward()
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, weight, bias))
    reference.group_norm_silu(x64, w64, b64, 2).sum().backward()
    for ours, theirs in ((x, x64), (weight, w64), (bias, b64)):
        assert rel_error(ours.grad, theirs.grad) < TOLERANCE[torch.float32]
