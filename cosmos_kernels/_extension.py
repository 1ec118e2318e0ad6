"""Loading the optional CUDA extension ``cosmos_kernels._C``: once, on first use, never at package import.

Below every layer, so that backend resolution (``_backend``) can ask whether the extension exists
without importing the launchers in ``cosmos_kernels.cuda``, which re-export these functions.
"""

import functools
import importlib
from types import ModuleType


@functools.cache
def _load() -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module("cosmos_kernels._C"), None
    except Exception as error:  # a missing build, or a broken one: either way the CUDA backend is off
        return None, f"{type(error).__name__}: {error}"


def is_built() -> bool:
    """Whether the CUDA extension ``cosmos_kernels._C`` imports (it does without a GPU too)."""
    return _load()[0] is not None


def import_error() -> str | None:
    """Why ``cosmos_kernels._C`` does not import, or None when it does."""
    return _load()[1]


def extension() -> ModuleType:
    """The extension module; RuntimeError naming the import error when it is not available."""
    module, error = _load()
    if module is None:
        raise RuntimeError(
            f"the CUDA extension cosmos_kernels._C is not available ({error}); reinstall with a CUDA "
            "compiler present (COSMOS_KERNELS_BUILD_CUDA=1 pip install -e .) or use another backend"
        )
    return module


def build_info() -> dict[str, object] | None:
    """CUDA compiler and runtime versions and target architectures of the build; None when not built."""
    module = _load()[0]
    return None if module is None else dict(module.build_info())
