"""``cosmos-kernels bench``: the registry's ops and the whole-model cases against PyTorch eager,
``torch.compile`` and the other peers, as a table (and JSON)."""

import argparse
import json

import torch
from rich.progress import Progress
from rich.table import Table

from cosmos_kernels import BackendUnavailableError
from cosmos_kernels._backend import BACKENDS, unavailable_reason
from cosmos_kernels.tools import benchmarking
from cosmos_kernels.tools.common import (
    DTYPES,
    make_console,
)
from cosmos_kernels.tools.info import collect_info


def cmd_bench(args: argparse.Namespace) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # bfloat16 is what Cosmos runs in; CPUs have no fast bfloat16 path, so they default to float32.
    args.dtype = args.dtype or ("float32" if device == "cpu" else "bfloat16")
    dtype = DTYPES[args.dtype]
    size = "quick" if args.quick else "cosmos"
    console = make_console()
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
    only = None if args.only is None else [word.strip() for word in args.only.split(",") if word.strip()]
    try:
        bench_cases = benchmarking.cases(size, dtype, device, only=only)
    except ValueError as error:
        console.print(f"[red]--{error}[/]")
        return 2
    peak = benchmarking.copy_bandwidth(device)
    rows = []
    results: list[dict[str, object]] = []
    failures: list[str] = []
    ours_failed = False
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(bench_cases))
        for case in bench_cases:
            times: dict[str, float | None] = {}
            peaks: dict[str, int] = {}
            for impl, fn in case.impls(backends, with_compile=not args.no_compile).items():
                progress.update(task, description=f"{case.name}: {impl}")
                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                try:
                    times[impl] = benchmarking.time_call(fn, case.inputs, reps=args.reps)
                except BackendUnavailableError:  # e.g. no CUDA C++ kernel for this op: a "-" in the table
                    times[impl] = None
                except Exception as error:
                    # Reported, and the other cases still run: a device session must not lose every
                    # later measurement to one compiler bug or out-of-memory. Ours failing fails the
                    # command; a peer failing does not.
                    times[impl] = None
                    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
                    failures.append(f"{case.name}, {impl}: {type(error).__name__}: {first_line}")
                    if impl in backends:
                        ours_failed = True
                if device.startswith("cuda"):
                    peaks[impl] = torch.cuda.max_memory_allocated()
                    torch.cuda.empty_cache()
            progress.advance(task)
            # One line per case as it finishes, so that output cut off by a time limit still shows it.
            console.print(
                f"{case.name} [{case.shape}]: "
                + ", ".join(f"{k} {'-' if v is None else f'{v * 1e3:.3f} ms'}" for k, v in times.items())
            )
            rows.append((case, times))
            results.append(
                {
                    "op": case.name,
                    "shape": case.shape,
                    "seconds": times,
                    "bytes": case.bytes_moved,
                    "flops": case.flops,
                    "peak_bytes": peaks,  # CUDA only: the allocator's peak while timing each implementation
                }
            )
            if args.json:
                # After every case, so that a run cut short (a device call's time limit) keeps what it
                # measured.
                _write_bench_report(args.json, device, args.dtype, peak, results)

    table = Table(title=f"{device}, {args.dtype}: ms per call (median); copy {peak / 1e9:.0f} GB/s")
    table.add_column("op")
    table.add_column("shape")
    columns = list(dict.fromkeys(impl for _, times in rows for impl in times))
    for impl in columns:
        table.add_column(impl, justify="right")
    table.add_column("ours", justify="right")
    table.add_column("speedup", justify="right")
    for case, times in rows:
        ours = min((times[b] for b in backends if times[b] is not None), default=None)
        best_peer = min((v for k, v in times.items() if k not in backends and v is not None), default=None)
        table.add_row(
            case.name,
            case.shape,
            *("-" if times.get(impl) is None else f"{times[impl] * 1e3:.3f}" for impl in columns),
            "-" if ours is None else case.throughput(ours),
            "-" if ours is None or best_peer is None else f"{best_peer / ours:.2f}x",
        )
    console.print(table)
    for failure in failures:
        console.print(f"[yellow]failed, shown as '-': {failure}[/]", markup=True)
    return 1 if ours_failed else 0


def _write_bench_report(path: str, device: str, dtype: str, copy_bytes_per_s: float, results: list) -> None:
    report = {"device": device, "dtype": dtype, "copy_bytes_per_s": copy_bytes_per_s, "results": results}
    report["autotuned"] = benchmarking.autotuned_configs()
    report["info"] = collect_info()
    with open(path, "w") as f:
        json.dump(report, f, indent=2, default=str)


def register(sub: argparse._SubParsersAction) -> None:
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
    bench.add_argument(
        "--json", default=None, metavar="PATH", help="also write the results as JSON (after every case)"
    )
    bench.add_argument(
        "--only",
        default=None,
        metavar="NAMES",
        help="comma-separated cases or ops to build and time, e.g. 'attention,qk_norm_rope,dit block'",
    )
    bench.set_defaults(func=cmd_bench)
