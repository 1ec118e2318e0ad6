"""cosmos_kernels: fused GPU kernels and a thin PyTorch layer for Cosmos-style video diffusion models."""

from cosmos_kernels import ops
from cosmos_kernels._backend import BACKENDS, BackendUnavailableError, available_backends

__version__ = "0.1.0"
__all__ = ["BACKENDS", "BackendUnavailableError", "__version__", "available_backends", "ops"]
