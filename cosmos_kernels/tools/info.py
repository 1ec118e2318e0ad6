"""``cosmos-kernels info``: versions, the extension's build, GPUs (NVML) and what ``auto`` picks per op."""

import argparse
import importlib.metadata
import json
import platform

import torch
from rich.table import Table

from cosmos_kernels import __version__, cuda
from cosmos_kernels._backend import resolve_backend
from cosmos_kernels.ops.registry import OPS
from cosmos_kernels.tools.common import (
    make_console,
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _gpus() -> list[dict[str, object]]:
    """Name and memory of each GPU: from NVML when nvidia-ml-py is installed, else from torch."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no nvidia-ml-py, or no driver: fall back to what torch sees
        return [
            {"name": torch.cuda.get_device_name(i), "memory_gib": _gib(torch.cuda.mem_get_info(i)[1])}
            for i in range(torch.cuda.device_count())
        ]
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(
                {
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_gib": _gib(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    "driver": pynvml.nvmlSystemGetDriverVersion(),
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _gib(nbytes: int) -> float:
    return round(nbytes / 2**30, 1)


def collect_info() -> dict[str, object]:
    """Everything ``cosmos-kernels info`` reports, as plain data."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    auto = {}
    for name, spec in OPS.items():
        chosen = resolve_backend("auto", device, op=name, preference=spec.preference)
        auto[name] = f"{chosen} {spec.auto_note}" if spec.auto_note and chosen != "torch" else chosen
    return {
        "cosmos_kernels": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _version("triton"),
        "extension": cuda.build_info() if cuda.is_built() else f"not built: {cuda.import_error()}",
        "gpus": _gpus(),
        "device": str(device),
        "auto_backend": auto,
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    console = make_console()
    table = Table(title=f"cosmos_kernels {info['cosmos_kernels']}", show_header=False)
    for key in ("python", "torch", "torch_cuda", "triton"):
        table.add_row(key, str(info[key]))
    ext = info["extension"]
    if isinstance(ext, dict):
        ext = f"built with CUDA {ext['cuda_compiler_version']} for sm {', '.join(ext['cuda_archs'])}"
    table.add_row("extension _C", ext)
    for i, gpu in enumerate(info["gpus"]):
        table.add_row(f"gpu {i}", f"{gpu['name']} ({gpu['memory_gib']} GiB)")
    if not info["gpus"]:
        table.add_row("gpus", "none")
    for op, backend in info["auto_backend"].items():
        table.add_row(f"auto on {info['device']}: {op}", backend)
    console.print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("info", help="versions, extension build, GPUs, and what backend=auto picks")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)
