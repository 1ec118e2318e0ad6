"""adaln_modulate and gated_residual_adaln against the float64 reference, forward and backward."""

import pytest
import torch
from conftest import DTYPES, assert_close, backend_params, triton_device_params

from cosmos_kernels import ops, reference

# (B, S, D, T): T = 0 means per-batch (B, D) modulation. Ragged D and S on purpose.
SHAPES = [
    (2, 6, 1000, 0),
    (2, 6, 1000, 3),
    (1, 5, 64, 1),
    (3, 8, 130, 4),
    (1, 3, 1, 0),
    (2, 4, 33, 2),
]


def make_inputs(batch, seq, dim, frames, dtype, device, gated, seed=0):
    """Activations plus modulation rows; modulation comes from chunking one projection, as in a DiT."""
    gen = torch.Generator().manual_seed(seed)
    n_mod = 3 if gated else 2
    mod_shape = (batch, dim * n_mod) if frames == 0 else (batch, frames, dim * n_mod)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype).to(device)

    # x is a slice of a wider buffer: its rows are strided, as views out of a fused projection are.
    x = rand(batch, seq, dim + 7)[..., :dim] + 0.5
    mods = rand(*mod_shape, scale=0.5).chunk(n_mod, dim=-1)
    return x, rand(batch, seq, dim), mods


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


@pytest.mark.parametrize(("device", "backend"), backend_params())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_adaln_modulate(device, backend, shape):
    for dtype in DTYPES:
        x, _, (shift, scale) = make_inputs(*shape, dtype, device, gated=False)
        x, shift, scale = leaves(x, shift, scale)
        out = ops.adaln_modulate(x, shift, scale, backend=backend)
        assert out.dtype == dtype and out.shape == x.shape

        x64, shift64, scale64 = leaves(x.double(), shift.double(), scale.double())
        ref = reference.adaln_modulate(x64, shift64, scale64)
        assert_close(out, ref, dtype, f"forward {dtype}")

        grad_out = torch.randn_like(ref).to(dtype)  # rounded, so both sides see the same gradient
        out.backward(grad_out)
        ref.backward(grad_out.double())
        for name, ours, theirs in (("x", x, x64), ("shift", shift, shift64), ("scale", scale, scale64)):
            assert ours.grad.dtype == dtype
            assert_close(ours.grad, theirs.grad, dtype, f"grad {name} {dtype}")


@pytest.mark.parametrize(("device", "backend"), backend_params())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gated_residual_adaln(device, backend, shape):
    for dtype in DTYPES:
        x, y, (gate, shift, scale) = make_inputs(*shape, dtype, device, gated=True)
        inputs = leaves(x, y, gate, shift, scale)
        h, out = ops.gated_residual_adaln(*inputs, backend=backend)

        inputs64 = leaves(*(t.double() for t in inputs))
        h_ref, out_ref = reference.gated_residual_adaln(*inputs64)
        assert_close(h, h_ref, dtype, f"h {dtype}")
        assert_close(out, out_ref, dtype, f"modulated {dtype}")

        grad_h, grad_out = torch.randn_like(h_ref).to(dtype), torch.randn_like(out_ref).to(dtype)
        torch.autograd.backward((h, out), (grad_h, grad_out))
        torch.autograd.backward((h_ref, out_ref), (grad_h.double(), grad_out.double()))
        for name, ours, theirs in zip(("x", "y", "gate", "shift", "scale"), inputs, inputs64, strict=True):
            assert_close(ours.grad, theirs.grad, dtype, f"grad {name} {dtype}")


@pytest.mark.parametrize(("device", "backend"), backend_params())
def test_gated_residual_adaln_with_only_modulated_output_used(device, backend):
    """When h is not used downstream, its gradient arrives as nothing; the result must not change."""
    x, y, mods = make_inputs(2, 4, 48, 2, torch.float32, device, gated=True)
    inputs = leaves(x, y, *mods)
    _, out = ops.gated_residual_adaln(*inputs, backend=backend)
    out.square().sum().backward()
    inputs64 = leaves(*(t.double() for t in inputs))
    reference.gated_residual_adaln(*inputs64)[1].square().sum().backward()
    for ours, theirs in zip(inputs, inputs64, strict=True):
        assert_close(ours.grad, theirs.grad, torch.float32)


@pytest.mark.parametrize(("device", "backend"), backend_params())
def test_mixed_per_batch_and_per_frame_modulation(device, backend):
    x, y, (gate, shift, scale) = make_inputs(2, 6, 40, 3, torch.float32, device, gated=True)
    gate = gate[:, 0]  # one gate per sample, shift/scale per frame
    inputs = leaves(x, y, gate, shift, scale)
    h, out = ops.gated_residual_adaln(*inputs, backend=backend)
    (h.sum() + out.square().sum()).backward()
    inputs64 = leaves(*(t.double() for t in inputs))
    h64, out64 = reference.gated_residual_adaln(*inputs64)
    (h64.sum() + out64.square().sum()).backward()
    assert_close(out, out64, torch.float32)
    assert inputs[2].grad.shape == gate.shape
    for ours, theirs in zip(inputs, inputs64, strict=True):
        assert_close(ours.grad, theirs.grad, torch.float32)


def test_reference_matches_cosmos_formula():
    """Cosmos's DiT sub-block: LayerNorm(eps 1e-6, no affine)(x) * (1 + scale) + shift, scale per sample."""
    torch.manual_seed(0)
    x, shift, scale = torch.randn(2, 5, 16), torch.randn(2, 16), torch.randn(2, 16)
    norm = torch.nn.LayerNorm(16, elementwise_affine=False, eps=1e-6)
    expected = norm(x) * (1 + scale[:, None]) + shift[:, None]
    torch.testing.assert_close(ops.adaln_modulate(x, shift, scale), expected)
    gate, y = torch.randn(2, 16), torch.randn(2, 5, 16)
    h, out = ops.gated_residual_adaln(x, y, gate, shift, scale)
    torch.testing.assert_close(h, x + gate[:, None] * y)
    torch.testing.assert_close(out, norm(h) * (1 + scale[:, None]) + shift[:, None])


def test_wide_rows_go_to_torch_under_auto():
    x = torch.randn(1, 2, 16385)
    shift = torch.zeros(1, 16385)
    out = ops.adaln_modulate(x, shift, shift)
    torch.testing.assert_close(out, torch.nn.functional.layer_norm(x, (16385,), eps=1e-6))


@pytest.mark.parametrize("device", triton_device_params())
def test_triton_backward_sums_frames_over_several_chunks(monkeypatch, device):
    """Long frames are split across programs whose partial sums are added afterwards."""
    from cosmos_kernels.triton import adaln as triton_adaln

    monkeypatch.setattr(triton_adaln, "_MIN_ROWS_PER_CHUNK", 2)
    x, y, mods = make_inputs(2, 14, 24, 2, torch.float32, device, gated=True)  # 7 rows per frame
    inputs = leaves(x, y, *mods)
    h, out = ops.gated_residual_adaln(*inputs, backend="triton")
    (h.sin().sum() + out.square().sum()).backward()
    inputs64 = leaves(*(t.double() for t in inputs))
    h64, out64 = reference.gated_residual_adaln(*inputs64)
    (h64.sin().sum() + out64.square().sum()).backward()
    for ours, theirs in zip(inputs, inputs64, strict=True):
        assert_close(ours.grad, theirs.grad, torch.float32)


@pytest.mark.parametrize(("device", "backend"), backend_params())
def test_modulate_with_per_frame_shift_and_per_batch_scale(device, backend):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 24, device=device)
    shift, scale = torch.randn(2, 3, 24, device=device), torch.randn(2, 24, device=device)
    x_hat = torch.nn.functional.layer_norm(x, (24,), eps=1e-6)
    expected = x_hat * (1 + scale[:, None]) + shift.repeat_interleave(2, dim=1)
    torch.testing.assert_close(ops.adaln_modulate(x, shift, scale, backend=backend), expected)


def test_gated_residual_adaln_float64_backward_is_float64():
    """The torch backward keeps float64 input in float64, the gate's gradient included."""
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(2, 6, 5, generator=gen, dtype=torch.float64) for _ in range(2)]
    inputs += [torch.randn(2, 5, generator=gen, dtype=torch.float64) for _ in range(3)]
    ours = [t.clone().requires_grad_() for t in inputs]
    theirs = [t.clone().requires_grad_() for t in inputs]
    grads = [torch.randn(2, 6, 5, generator=gen, dtype=torch.float64) for _ in range(2)]
    torch.autograd.backward(ops.gated_residual_adaln(*ours, backend="torch"), grads)
    h = theirs[0] + theirs[2][:, None] * theirs[1]
    torch.autograd.backward((h, reference.adaln_modulate(h, theirs[3], theirs[4], 1e-6)), grads)
    for name, a, b in zip(("x", "y", "gate", "shift", "scale"), ours, theirs, strict=True):
        assert_close(a.grad, b.grad, torch.float64, f"grad {name}")
