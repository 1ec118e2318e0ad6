"""Every op rejects bad input with a TypeError/ValueError that names the argument."""

import pytest
import torch

from cosmos_kernels import BackendUnavailableError, ops

x = torch.randn(2, 6, 8)
mod = torch.randn(2, 8)
video = torch.randn(1, 3, 5, 4, 4)
image = torch.randn(1, 3, 4, 4)

BAD = [
    # (call, error type, words the message must contain)
    (lambda: ops.adaln_modulate(x[0], mod, mod), ValueError, ["x", "3-D"]),
    (lambda: ops.adaln_modulate(x, torch.randn(3, 8), mod), ValueError, ["shift", "(2, 8)"]),
    (lambda: ops.adaln_modulate(x, mod, torch.randn(2, 7)), ValueError, ["scale", "(2, 8)"]),
    (
        lambda: ops.adaln_modulate(x, torch.randn(2, 4, 8), torch.randn(2, 4, 8)),
        ValueError,
        ["divisible", "T"],
    ),
    (lambda: ops.adaln_modulate(x.long(), mod, mod), TypeError, ["x", "float"]),
    (lambda: ops.adaln_modulate(x, mod.half(), mod), TypeError, ["shift", "dtype"]),
    (lambda: ops.adaln_modulate(x, mod, mod, eps=-1.0), ValueError, ["eps"]),
    (lambda: ops.adaln_modulate(x, mod, mod, backend="fast"), ValueError, ["backend", "fast"]),
    (lambda: ops.adaln_modulate(x, mod.to("meta"), mod), ValueError, ["shift", "device"]),
    (lambda: ops.adaln_modulate(x.numpy(), mod, mod), TypeError, ["x", "Tensor"]),
    (
        lambda: ops.adaln_modulate(x, torch.randn(2, 3, 8), torch.randn(2, 2, 8)),
        ValueError,
        ["frame count"],
    ),
    (lambda: ops.gated_residual_adaln(x, x[:, :3], mod, mod, mod), ValueError, ["y", "shape"]),
    (lambda: ops.gated_residual_adaln(x, x, mod.int(), mod, mod), TypeError, ["gate"]),
    (lambda: ops.gated_residual_adaln(x, x.double(), mod, mod, mod), TypeError, ["y", "dtype"]),
    (lambda: ops.haar3d_analysis(video, levels=3), ValueError, ["T = 1 + k * 8", "T = 5"]),
    (lambda: ops.haar3d_analysis(video, levels=1, causal=False), ValueError, ["T", "divisible"]),
    (lambda: ops.haar3d_analysis(torch.randn(1, 3, 5, 6, 4), levels=2), ValueError, ["H", "divisible by"]),
    (lambda: ops.haar3d_analysis(torch.randn(1, 3, 5, 4, 3)), ValueError, ["W", "divisible by"]),
    (lambda: ops.haar3d_analysis(video, levels=0), ValueError, ["levels", ">= 1"]),
    (lambda: ops.haar3d_analysis(video, levels=1.0), TypeError, ["levels", "int"]),
    (lambda: ops.haar3d_analysis(image), ValueError, ["x", "5-D"]),
    (lambda: ops.haar3d_analysis(video.int()), TypeError, ["x", "float"]),
    (lambda: ops.haar3d_analysis(video, causal="yes"), TypeError, ["causal", "bool"]),
    (lambda: ops.haar3d_synthesis(torch.randn(1, 12, 2, 2, 2)), ValueError, ["channels", "8**levels"]),
    (lambda: ops.haar3d_synthesis(torch.randn(1, 64, 2, 2, 2), levels=3), ValueError, ["channels", "512"]),
    (lambda: ops.haar2d_analysis(video), ValueError, ["x", "4-D"]),
    (lambda: ops.haar2d_analysis(torch.randn(1, 3, 6, 4), levels=2), ValueError, ["H", "divisible by"]),
    (lambda: ops.haar2d_synthesis(torch.randn(1, 6, 2, 2)), ValueError, ["channels", "4**levels"]),
    (lambda: ops.haar2d_analysis(torch.randn(1, 3, 0, 4)), ValueError, ["x", "empty"]),
    (lambda: ops.group_norm_silu(video, torch.randn(4), torch.randn(3)), ValueError, ["weight", "(3,)"]),
    (lambda: ops.group_norm_silu(video, torch.randn(3), torch.randn(1, 3)), ValueError, ["bias", "1-D"]),
    (
        lambda: ops.group_norm_silu(video, *torch.randn(2, 3), num_groups=2),
        ValueError,
        ["num_groups", "divide"],
    ),
    (
        lambda: ops.group_norm_silu(video, *torch.randn(2, 3), num_groups=0),
        ValueError,
        ["num_groups", ">= 1"],
    ),
    (lambda: ops.group_norm_silu(video[0, 0], *torch.randn(2, 5)), ValueError, ["x", "4-D or 5-D"]),
    (
        lambda: ops.group_norm_silu(video, torch.randn(3).half(), torch.randn(3)),
        TypeError,
        ["weight", "dtype"],
    ),
    (
        lambda: ops.group_norm_silu(image, torch.randn(3), torch.randn(3, device="meta")),
        ValueError,
        ["bias", "device"],
    ),
    (lambda: ops.group_norm_silu(video.int(), *torch.randn(2, 3)), TypeError, ["x", "float"]),
    (lambda: ops.group_norm_silu(video, *torch.randn(2, 3), silu=1), TypeError, ["silu", "bool"]),
    (lambda: ops.group_norm_silu(video, *torch.randn(2, 3), eps=0.0), ValueError, ["eps"]),
]


@pytest.mark.parametrize(("call", "error", "words"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_is_rejected_clearly(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_unavailable_backend_names_what_is_missing(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailableError, match="cuda backend needs CUDA tensors"):
        ops.adaln_modulate(x, mod, mod, backend="cuda")
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET"):
        ops.haar3d_analysis(video, backend="triton")


def test_fast_backend_refuses_float64_by_name(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(BackendUnavailableError, match="float64"):
        ops.haar3d_analysis(video.double(), backend="triton")


def test_non_contiguous_inputs_are_read_correctly():
    wide = torch.randn(2, 8, 6).transpose(1, 2)  # last dim strided
    expected = ops.adaln_modulate(wide.contiguous(), mod, mod)
    torch.testing.assert_close(ops.adaln_modulate(wide, mod, mod), expected)
    strided_video = torch.randn(1, 3, 5, 4, 8)[..., ::2]
    torch.testing.assert_close(
        ops.haar3d_analysis(strided_video), ops.haar3d_analysis(strided_video.contiguous())
    )
