"""The ``cosmos-kernels`` command: ``info`` about this install, ``bench`` of the ops against PyTorch."""

import argparse
import importlib.metadata
import json
import platform
import sys

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cosmos_kernels import __version__, benchmarking, cuda
from cosmos_kernels._backend import BACKENDS, resolve_backend, unavailable_reason
from cosmos_kernels.ops import adaln, haar
from cosmos_kernels.ops.attention import PREFERENCE as ATTENTION_PREFERENCE

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
OP_PREFERENCES = {
    "adaln_modulate": adaln.PREFERENCE,
    "gated_residual_adaln": adaln.PREFERENCE,
    "haar3d_analysis / synthesis": haar.PREFERENCE,
    "haar2d_analysis / synthesis": haar.PREFERENCE,
    "attention / qk_norm_rope": ATTENTION_PREFERENCE,
}


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
    auto = {
        op: resolve_backend("auto", device, op=op, preference=preference)
        for op, preference in OP_PREFERENCES.items()
    }
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
    console = Console()
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


def cmd_bench(args: argparse.Namespace) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # bfloat16 is what Cosmos runs in; CPUs have no fast bfloat16 path, so they default to float32.
    args.dtype = args.dtype or ("float32" if device == "cpu" else "bfloat16")
    dtype = DTYPES[args.dtype]
    size = "quick" if args.quick else "cosmos"
    console = Console()
    backends = args.backend.split(",")
    for backend in backends:
        if backend not in ("auto", *BACKENDS):
            console.print(f"[red]--backend: expected auto, {', '.join(BACKENDS)}; got {backend!r}[/]")
            return 2
        if backend != "auto" and (reason := unavailable_reason(backend, torch.device(device))) is not None:
            console.print(f"[red]--backend {backend} cannot run on {device}: {reason}[/]")
            return 2
    if device == "cpu":
        console.print("[yellow]No GPU: timing the torch backend on CPU; the kernels need a GPU.[/]")
    bench_cases = benchmarking.cases(size, dtype, device)
    peak = benchmarking.copy_bandwidth(device)
    rows = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(bench_cases))
        for case in bench_cases:
            times = {}
            for impl, fn in case.impls(backends, with_compile=not args.no_compile).items():
                progress.update(task, description=f"{case.name}: {impl}")
                times[impl] = benchmarking.time_call(fn, case.inputs, reps=args.reps)
            progress.advance(task)
            rows.append((case, times))

    table = Table(title=f"{device}, {args.dtype}: ms per call (median); copy {peak / 1e9:.0f} GB/s")
    table.add_column("op")
    table.add_column("shape")
    for impl in rows[0][1]:
        table.add_column(impl, justify="right")
    table.add_column("ours GB/s", justify="right")
    table.add_column("speedup", justify="right")
    results = []
    for case, times in rows:
        ours = min(times[b] for b in backends)
        best_peer = min(v for k, v in times.items() if k not in backends)
        table.add_row(
            case.name,
            case.shape,
            *(f"{t * 1e3:.3f}" for t in times.values()),
            f"{case.bytes_moved / ours / 1e9:.0f}",
            f"{best_peer / ours:.2f}x",
        )
        results.append({"op": case.name, "shape": case.shape, "seconds": times, "bytes": case.bytes_moved})
    console.print(table)
    if args.json:
        report = {"device": device, "dtype": args.dtype, "copy_bytes_per_s": peak, "results": results}
        report["info"] = collect_info()
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cosmos-kernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, extension build, GPUs, and what backend=auto picks")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="time the ops against PyTorch eager and torch.compile")
    bench.add_argument("--quick", action="store_true", help="small shapes (default: Cosmos-7B 720p shapes)")
    bench.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="default bfloat16 (float32 on CPU)"
    )
    bench.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    bench.add_argument(
        "--backend", default="auto", help="our backend(s) to time, comma-separated (e.g. triton,cuda)"
    )
    bench.add_argument("--reps", type=int, default=20, help="timed calls per implementation")
    bench.add_argument("--no-compile", action="store_true", help="skip the torch.compile peer")
    bench.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
