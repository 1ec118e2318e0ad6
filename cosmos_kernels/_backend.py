"""Which implementations of an op can run on a given device, and which one ``backend="auto"`` picks.

Backends: ``cuda`` (our CUDA C++ extension ``cosmos_kernels._C``), ``triton`` and ``torch`` (the plain
PyTorch reference, always present). ``auto`` takes the first backend of the op's preference order that
is available for the tensor's device and accepts the input; the environment variable
``COSMOS_KERNELS_BACKEND`` replaces ``auto``. Naming a backend that cannot run is an error that says
what is missing, never a silent fallback.
"""

import functools
import importlib.util
import os

import torch

from cosmos_kernels._extension import import_error, is_built

BACKENDS = ("cuda", "triton", "torch")
ENV_VAR = "COSMOS_KERNELS_BACKEND"


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run this input here."""


def triton_interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def _triton_import_error() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "the `triton` package is not installed (pip install 'cosmos-kernels[triton]')"
    return None


def _cuda_extension_error() -> str | None:
    if is_built():
        return None
    return f"the CUDA extension cosmos_kernels._C is not available ({import_error()})"


# torch.compile calls this at trace time and keeps the answer (what is installed does not change
# during a run), instead of tracing the import machinery inside, which Dynamo refuses.
@torch.compiler.assume_constant_result
def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """Why ``backend`` cannot run on ``device``, or None when it can."""
    if backend == "torch":
        return None
    if backend == "triton":
        if (reason := _triton_import_error()) is not None:
            return reason
        if device.type == "cuda":
            return None
        if device.type == "cpu":
            if triton_interpreter_enabled():
                return None
            return (
                "Triton runs on CPU tensors only under the interpreter (set TRITON_INTERPRET=1 before import)"
            )
        return f"Triton does not run on {device.type} tensors"
    if backend == "cuda":
        if device.type != "cuda":
            return f"the cuda backend needs CUDA tensors, got a {device.type} tensor"
        return _cuda_extension_error()
    raise ValueError(f"backend must be one of {('auto', *BACKENDS)}, got {backend!r}")


def available_backends(device: torch.device | str) -> list[str]:
    """The backends that can run on ``device``, in no particular order of speed."""
    device = torch.device(device)
    return [b for b in BACKENDS if unavailable_reason(b, device) is None]


def resolve_backend(
    requested: str,
    device: torch.device,
    *,
    op: str,
    preference: tuple[str, ...],
    input_reason: str | None = None,
) -> str:
    """The concrete backend for one call of ``op``.

    ``preference`` lists the fast backends in the order ``auto`` tries them (``torch`` is implied last);
    ``input_reason`` says why the fast backends cannot take this particular input (dtype, size), if so.
    """
    if not isinstance(requested, str):
        raise TypeError(f"{op}: backend must be a string, got {type(requested).__name__}")
    source = "backend"
    if requested == "auto" and os.environ.get(ENV_VAR, "auto") != "auto":
        requested, source = os.environ[ENV_VAR], f"${ENV_VAR}"
    if requested != "auto" and requested not in BACKENDS:
        raise ValueError(f"{op}: {source} must be one of {('auto', *BACKENDS)}, got {requested!r}")

    if requested == "auto":
        # The interpreter is a test vehicle, far slower than eager PyTorch: auto never picks it on CPU.
        if device.type != "cuda" or input_reason is not None:
            return "torch"
        return next((b for b in preference if unavailable_reason(b, device) is None), "torch")

    if requested == "torch":
        return "torch"
    if requested not in preference:
        raise BackendUnavailableError(
            f"{op}: has no {requested} implementation (has {(*preference, 'torch')})"
        )
    if (reason := unavailable_reason(requested, device)) is not None:
        raise BackendUnavailableError(f"{op}: {source}={requested!r} is not available: {reason}")
    if input_reason is not None:
        raise BackendUnavailableError(f"{op}: {source}={requested!r} cannot take this input: {input_reason}")
    return requested
