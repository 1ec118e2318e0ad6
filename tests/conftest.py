"""Shared test setup: the Triton interpreter on machines without a GPU, devices and backends to test.

TRITON_INTERPRET must be set before any Triton kernel is defined, so it is set here, before the
package is imported. On a GPU machine the same tests run compiled kernels; `pytest -m gpu` selects
the tests that need one. The CUDA kernels also run on CPU, emulated (tests/cuda_emulator).
"""

import contextlib
import importlib.util
import os

import torch

os.environ.setdefault("COSMOS_KERNELS_POISON", "1")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
from cuda_emulator import build as cuda_emulator

HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None
# Without a GPU the CUDA kernels still run, slowly, as host C++ (tests/cuda_emulator); where they
# cannot be built (no g++, no CUDA headers, no pybind11) their cases stay in the run as skips.
EMULATOR_MISSING = cuda_emulator.missing_tools()

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# ||out - ref|| / ||ref|| against a float64 reference (docs/DESIGN.md).
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
    if not HAS_CUDA:
        params.append(
            pytest.param(
                "cpu",
                "cuda",
                id="cpu-cuda-emulated",
                marks=pytest.mark.skipif(
                    EMULATOR_MISSING is not None,
                    reason=f"CUDA kernels not emulated on CPU: {EMULATOR_MISSING}",
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


def triton_device_params() -> list:
    """The devices a Triton-kernel test runs on: the CPU under the interpreter where there is no GPU,
    else the GPU (marked gpu, so that ``pytest -m gpu`` runs it)."""
    return [
        pytest.param(
            "cpu",
            id="cpu-interpreted",
            marks=pytest.mark.skipif(
                not HAS_TRITON or HAS_CUDA,
                reason="triton not installed"
                if not HAS_TRITON
                else "the interpreter runs where there is no GPU",
            ),
        ),
        pytest.param(
            "cuda",
            id="cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not HAS_CUDA or not HAS_TRITON, reason="needs a CUDA device"),
            ],
        ),
    ]


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    out64, ref64 = out.double(), ref.double()
    assert torch.isfinite(out64).all(), "non-finite values in the output"
    return ((out64 - ref64).norm() / ref64.norm().clamp_min(1e-30)).item()


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, what: str = "output") -> None:
    err = rel_error(out, ref)
    assert err < TOLERANCE[dtype], f"{what}: relative error {err:.3g} >= {TOLERANCE[dtype]:g} ({dtype})"


@pytest.fixture
def one_thread():
    """One torch thread for tests that run many tiny steps: two OpenMP threads slow down 10x or more
    whenever another process holds a core of a small machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def emulated_extension(tmp_path_factory):
    """The CUDA kernels compiled as host C++ (see tests/cuda_emulator/build.py), as a module."""
    package = cuda_emulator.build(tmp_path_factory.mktemp("cuda_emulator"))
    spec = importlib.util.spec_from_file_location("_C", next(package.glob("_C*")))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_dtype_only(name, t, like=None):
    """The launchers' tensor check without its device test: emulated kernels read CPU memory."""
    from cosmos_kernels.cuda import _DTYPE_CODES

    if t.dtype not in _DTYPE_CODES or (like is not None and t.dtype != like.dtype):
        raise ValueError(f"{name}: unexpected dtype {t.dtype}")


@pytest.fixture(autouse=True)
def _route_cuda_backend_to_the_emulator(request, monkeypatch):
    """For (device="cpu", backend="cuda") tests: the cuda backend takes CPU tensors, run emulated."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or (callspec.params.get("device"), callspec.params.get("backend")) != ("cpu", "cuda"):
        return
    module = request.getfixturevalue("emulated_extension")
    from cosmos_kernels import _backend
    from cosmos_kernels.cuda import adaln, haar

    real_reason = _backend.unavailable_reason
    monkeypatch.setattr(
        _backend, "unavailable_reason", lambda b, d: None if b == "cuda" else real_reason(b, d)
    )
    for launchers in (adaln, haar):
        monkeypatch.setattr(launchers, "extension", lambda: module)
        monkeypatch.setattr(launchers, "_stream", lambda t: 0)
        monkeypatch.setattr(launchers, "_device", lambda t: contextlib.nullcontext())
        monkeypatch.setattr(launchers, "_check_tensor", _check_dtype_only)
