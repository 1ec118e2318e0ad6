"""Shared test setup: the Triton interpreter on machines without a GPU, devices and backends to test.

TRITON_INTERPRET must be set before any Triton kernel is defined, so it is set here, before the
package is imported. On a GPU machine the same tests run compiled kernels; `pytest -m gpu` selects
the tests that need one.
"""

import importlib.util
import os

import torch

os.environ.setdefault("COSMOS_KERNELS_POISON", "1")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None

# ||out - ref|| / ||ref|| against a float64 reference (DESIGN.md).
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float64: 1e-12}


def cuda_extension_built() -> bool:
    from cosmos_kernels import cuda

    return cuda.is_built()


def backend_params() -> list:
    """(device, backend) pairs this machine can run; GPU pairs carry the gpu mark."""
    params = [pytest.param("cpu", "torch", id="cpu-torch")]
    if HAS_TRITON:
        params.append(
            pytest.param(
                "cpu",
                "triton",
                id="cpu-triton",
                marks=pytest.mark.skipif(
                    HAS_CUDA, reason="the interpreter is only enabled on machines without a GPU"
                ),
            )
        )
    gpu = [pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")]
    params.append(pytest.param("cuda", "torch", id="cuda-torch", marks=gpu))
    params.append(pytest.param("cuda", "triton", id="cuda-triton", marks=gpu))
    params.append(
        pytest.param(
            "cuda",
            "cuda",
            id="cuda-cuda",
            marks=[*gpu, pytest.mark.skipif(not cuda_extension_built(), reason="CUDA extension not built")],
        )
    )
    return params


def dtypes_for(device: str, backend: str) -> list[torch.dtype]:
    """bfloat16 on the CPU interpreter is emulated bit by bit and slow; it is tested on GPUs."""
    if device == "cpu" and backend == "triton":
        return [torch.float32, torch.float16]
    return [torch.float32, torch.float16, torch.bfloat16]


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    out64, ref64 = out.double(), ref.double()
    assert torch.isfinite(out64).all(), "non-finite values in the output"
    return ((out64 - ref64).norm() / ref64.norm().clamp_min(1e-30)).item()


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, what: str = "output") -> None:
    err = rel_error(out, ref)
    assert err < TOLERANCE[dtype], f"{what}: relative error {err:.3g} >= {TOLERANCE[dtype]:g} ({dtype})"
