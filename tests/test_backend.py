"""Backend selection: auto, the environment override, and what each device offers."""

import pytest
import torch
from conftest import HAS_TRITON

from cosmos_kernels import BackendUnavailableError, available_backends, ops
from cosmos_kernels._backend import resolve_backend


def test_torch_is_always_available():
    assert "torch" in available_backends("cpu")
    assert "cuda" not in available_backends("cpu")


def test_auto_never_picks_the_interpreter_on_cpu(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    chosen = resolve_backend("auto", torch.device("cpu"), op="t", preference=("triton", "cuda"))
    assert chosen == "torch"


@pytest.mark.skipif(not HAS_TRITON, reason="triton not installed")
def test_environment_override_replaces_auto(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("COSMOS_KERNELS_BACKEND", "triton")
    assert resolve_backend("auto", torch.device("cpu"), op="t", preference=("triton",)) == "triton"
    # An explicit argument wins over the environment.
    assert resolve_backend("torch", torch.device("cpu"), op="t", preference=("triton",)) == "torch"


def test_environment_override_to_an_unavailable_backend_is_an_error(monkeypatch):
    monkeypatch.setenv("COSMOS_KERNELS_BACKEND", "cuda")
    with pytest.raises(BackendUnavailableError, match=r"\$COSMOS_KERNELS_BACKEND='cuda'"):
        ops.adaln_modulate(torch.randn(1, 2, 4), torch.randn(1, 4), torch.randn(1, 4))
    monkeypatch.setenv("COSMOS_KERNELS_BACKEND", "nope")
    with pytest.raises(ValueError, match="COSMOS_KERNELS_BACKEND"):
        ops.adaln_modulate(torch.randn(1, 2, 4), torch.randn(1, 4), torch.randn(1, 4))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_picks_a_fast_backend_on_gpu():
    chosen = resolve_backend("auto", torch.device("cuda"), op="t", preference=("triton", "cuda"))
    assert chosen in ("triton", "cuda")
