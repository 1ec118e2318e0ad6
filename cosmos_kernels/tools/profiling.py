"""Profile DiT training steps on every rank: step time, communication overlap, memory, a Chrome trace.

``run_profile(args)`` runs forward + backward of a DiT (``models.dit.build_dit``) on this rank's device,
under ``torch.profiler``, and reports per rank: the mean and best step time, the time spent in
communication and the fraction of it that overlapped computation, and peak memory (PyTorch's
allocator, plus the whole device as NVML sees it when ``pynvml`` is installed); rank 0 adds where its
time went, the kernels (GPU) or operators (CPU) with the most self time per step. ``--blocks`` keeps the
first N transformer blocks of a big config, so that one GPU can profile the Cosmos-7B shapes:

    cosmos-kernels profile --model cosmos-7b --blocks 2 --latent 16 88 160 --text-len 512

Each rank writes a Chrome trace (open in chrome://tracing or https://ui.perfetto.dev). Under
``torchrun`` with more than one rank, the DiT runs context parallel (ring attention) over all ranks,
NCCL on GPUs, gloo on CPUs:

    torchrun --nproc-per-node 8 -m cosmos_kernels.cli profile --model cosmos-7b --latent 16 88 160

Overlap is measured on GPUs only, from the kernel timeline: the share of NCCL kernel time during which
a compute kernel ran on another stream. On CPU, gloo moves data on its own threads, which the profiler
does not record; there the report gives the time the main thread spent inside communication calls.
"""

import argparse
import json
import os
import resource
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.distributed as dist
from torch.autograd import DeviceType
from torch.distributed.device_mesh import init_device_mesh

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
}
# Substrings of the profiler event names of communication: NCCL kernels, c10d/gloo host calls.
_COMM_MARKERS = ("nccl", "gloo", "c10d::", "record_param_comms")


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``run_profile``, added to ``parser``."""
    parser.add_argument("--model", default="tiny", help="a build_dit config name (default: tiny)")
    parser.add_argument(
        "--latent",
        type=int,
        nargs=3,
        default=(4, 16, 16),
        metavar=("T", "H", "W"),
        help="latent frames, height, width (default 4 16 16; Cosmos 121 frames 720p: 16 88 160)",
    )
    parser.add_argument("--batch", type=int, default=1, help="videos per step (default 1)")
    parser.add_argument(
        "--blocks", type=int, default=None, help="transformer blocks to build (default: the config's)"
    )
    parser.add_argument(
        "--top", type=int, default=12, help="kernels (operators on CPU) to list by self time (default 12)"
    )
    parser.add_argument(
        "--text-len", type=int, default=32, help="text tokens for cross-attention (default 32)"
    )
    parser.add_argument(
        "--dtype", choices=sorted(_DTYPES), default=None, help="default: bfloat16 on GPUs, else float32"
    )
    parser.add_argument("--device", default=None, help="default: this rank's GPU when present, else cpu")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (default 3)")
    parser.add_argument(
        "--no-context-parallel",
        action="store_true",
        help="with several ranks, run the whole sequence on each",
    )
    parser.add_argument(
        "--cp-attention",
        choices=("ring", "ulysses", "hybrid"),
        default="ring",
        help="context-parallel attention (default ring; hybrid: Ulysses within --ulysses-size ranks, ring "
        "across)",
    )
    parser.add_argument(
        "--ulysses-size",
        type=int,
        default=None,
        help="ranks per Ulysses group of the hybrid (default: torchrun's LOCAL_WORLD_SIZE, a node)",
    )
    parser.add_argument(
        "--diffusers",
        choices=("patched", "unpatched"),
        default=None,
        help="profile diffusers' CosmosTransformer3DModel of the same config and weights "
        "(models.dit_to_diffusers), patched by apply_cosmos_kernels or not (needs diffusers)",
    )
    parser.add_argument(
        "--trace-dir", default="profile_traces", help="where each rank writes its Chrome trace"
    )
    parser.add_argument(
        "--json", default=None, metavar="PATH", help="rank 0 also writes the per-rank report here"
    )


def _merged(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def overlapped_fraction(comm: Iterable[tuple[float, float]], compute: Iterable[tuple[float, float]]) -> float:
    """The share of the time covered by ``comm`` intervals that ``compute`` intervals also cover.

    Intervals are (start, end) pairs; each list may overlap itself. 1.0 when there is no comm time.
    """
    comm, compute = _merged(comm), _merged(compute)
    total = sum(end - start for start, end in comm)
    if total <= 0:
        return 1.0
    shared, j = 0.0, 0
    for start, end in comm:
        while j < len(compute) and compute[j][1] <= start:
            j += 1
        k = j
        while k < len(compute) and compute[k][0] < end:
            shared += min(end, compute[k][1]) - max(start, compute[k][0])
            k += 1
    return shared / total


def _is_comm(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _COMM_MARKERS)


def _comm_report(prof: torch.profiler.profile, steps: int) -> dict[str, float | None]:
    """Communication ms per step and, on GPUs, the overlapped share of it, from the profiler's events."""
    events = prof.events()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    if kernels:
        spans = [(e.time_range.start, e.time_range.end, _is_comm(e.name)) for e in kernels]
        comm = [(s, e) for s, e, is_comm in spans if is_comm]
        compute = [(s, e) for s, e, is_comm in spans if not is_comm]
        busy = sum(e - s for s, e in _merged(comm))
        return {"comm_ms": busy / 1e3 / steps, "overlapped": overlapped_fraction(comm, compute)}
    # Host side: the outermost communication calls only (they nest, e.g. c10d:: around gloo:).
    comm = _merged((e.time_range.start, e.time_range.end) for e in events if _is_comm(e.name))
    return {"comm_ms": sum(e - s for s, e in comm) / 1e3 / steps, "overlapped": None}


def top_kernels(prof: torch.profiler.profile, steps: int, count: int) -> list[dict[str, object]]:
    """The ``count`` kernels with the most device time (operators with the most self CPU time when no
    kernel ran), each {"name", "calls", "ms_per_step", "share"}; share of all kernel (operator) time."""
    events = prof.events()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    totals: dict[str, list[float]] = {}
    if kernels:
        for e in kernels:
            total = totals.setdefault(e.name, [0.0, 0])
            total[0] += e.time_range.elapsed_us()
            total[1] += 1
    else:
        for avg in prof.key_averages():
            totals[avg.key] = [avg.self_cpu_time_total, avg.count]
    everything = sum(us for us, _ in totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])[:count]
    return [
        {"name": name, "calls": calls // steps, "ms_per_step": us / 1e3 / steps, "share": us / everything}
        for name, (us, calls) in ranked
    ]


def _memory_report(device: torch.device) -> dict[str, float | None]:
    report: dict[str, float | None] = {
        "peak_allocated_gib": None,
        "nvml_used_gib": None,
        "peak_rss_gib": None,
    }
    if device.type == "cuda":
        report["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        try:
            import pynvml
        except ImportError:
            pass  # NVML is optional; PyTorch's own figure stays
        else:
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index)
            report["nvml_used_gib"] = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**30
            pynvml.nvmlShutdown()
    else:
        report["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    return report


def _check_args(args: argparse.Namespace) -> None:
    for name in ("batch", "text_len", "steps", "top"):
        if getattr(args, name) < 1:
            raise ValueError(f"profile: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"profile: --warmup must be >= 0, got {args.warmup}")
    if args.ulysses_size is not None and args.ulysses_size < 1:
        raise ValueError(f"profile: --ulysses-size must be >= 1, got {args.ulysses_size}")
    if args.blocks is not None and args.blocks < 1:
        raise ValueError(f"profile: --blocks must be >= 1, got {args.blocks}")
    if any(size < 1 for size in args.latent):
        raise ValueError(f"profile: --latent sizes must be >= 1, got {list(args.latent)}")


def _cp_layout(args: argparse.Namespace, device: torch.device, world: int) -> dict[str, object]:
    """``context_parallel``'s keyword arguments for ``--cp-attention`` (the hybrid's mesh built here)."""
    if args.cp_attention != "hybrid":
        return {"attention": args.cp_attention}
    size = args.ulysses_size or int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if world % size:
        raise ValueError(f"profile: --ulysses-size ({size}) must divide the number of ranks ({world})")
    mesh = init_device_mesh(device.type, (world // size, size), mesh_dim_names=("ring", "ulysses"))
    return {
        "attention": "hybrid",
        "ulysses_group": mesh.get_group("ulysses"),
        "ring_group": mesh.get_group("ring"),
    }


def _setup_distributed(device_arg: str | None) -> tuple[torch.device, bool]:
    """This rank's device, and whether this call initialized the process group (from torchrun's env)."""
    initialized_here = False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg is None:
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = torch.device(device_arg)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        initialized_here = True
    return device, initialized_here


def _diffusers_transformer(net: torch.nn.Module, *, patched: bool) -> torch.nn.Module:
    from cosmos_kernels.integrations.diffusers import apply_cosmos_kernels
    from cosmos_kernels.models import dit_to_diffusers

    transformer = dit_to_diffusers(net)
    return apply_cosmos_kernels(transformer) if patched else transformer


def run_profile(args: argparse.Namespace) -> int:
    """Profile ``args.steps`` DiT forward+backward steps on this rank; rank 0 prints every rank's report.

    Returns 0. Runs context parallel over the default process group when there is more than one rank
    (initialized here from torchrun's environment if nobody did before).
    """
    from cosmos_kernels.distributed import context_parallel, shard_sizes
    from cosmos_kernels.models.dit import build_dit

    _check_args(args)
    device, initialized_here = _setup_distributed(args.device)
    try:
        world = dist.get_world_size() if dist.is_initialized() else 1
        rank = dist.get_rank() if dist.is_initialized() else 0
        dtype = (
            _DTYPES[args.dtype]
            if args.dtype
            else (torch.bfloat16 if device.type == "cuda" else torch.float32)
        )
        # Every rank builds the same weights and inputs: context parallelism needs identical replicas.
        torch.manual_seed(0)
        blocks = {} if args.blocks is None else {"num_blocks": args.blocks}
        model = build_dit(args.model, **blocks).to(device=device, dtype=dtype)
        c = model.config
        if args.diffusers is not None:
            model = _diffusers_transformer(model, patched=args.diffusers == "patched")
        parallel = world > 1 and not args.no_context_parallel
        if parallel:
            context_parallel(model, dist.group.WORLD, **_cp_layout(args, device, world))
        gen = torch.Generator(device=device).manual_seed(1)
        frames, height, width = args.latent
        x = torch.randn(
            args.batch, c.latent_channels, frames, height, width, generator=gen, device=device, dtype=dtype
        )
        timesteps = torch.randn(args.batch, generator=gen, device=device, dtype=dtype)
        text = torch.randn(
            args.batch, args.text_len, c.crossattn_emb_channels, generator=gen, device=device, dtype=dtype
        )
        tokens = (frames // c.patch_temporal) * (height // c.patch_spatial) * (width // c.patch_spatial)

        def forward(x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            if args.diffusers is None:
                return model(x, timesteps, text, fps=24.0)
            # diffusers takes timestep = our c_noise and a padding mask of batch 1 (here: no padding).
            padding = x.new_zeros(1, 1, height, width)
            return model(
                x, timestep=timesteps, encoder_hidden_states=text, fps=24, padding_mask=padding
            ).sample

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def step() -> float:
            sync()
            start = time.perf_counter()
            forward(x, timesteps, text).float().square().mean().backward()
            model.zero_grad(set_to_none=True)
            sync()
            return time.perf_counter() - start

        for _ in range(args.warmup):
            step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            times = [step() for _ in range(args.steps)]
        trace = Path(args.trace_dir) / f"{args.model}_rank{rank}.json"
        trace.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace))
        report = {
            "rank": rank,
            "device": str(device),
            "step_ms": statistics.mean(times) * 1e3,
            "best_step_ms": min(times) * 1e3,
            **_comm_report(prof, args.steps),
            **_memory_report(device),
            "trace": str(trace),
        }
        top = top_kernels(prof, args.steps, args.top)
        reports = [report]
        if world > 1:
            reports = [None] * world
            dist.all_gather_object(reports, report)
        if rank == 0:
            split = (
                f"{args.cp_attention}, shards {shard_sizes(tokens, dist.group.WORLD)}" if parallel else "no"
            )
            print(
                f"{args.model} DiT{f' in diffusers, {args.diffusers}' if args.diffusers else ''} "
                f"(blocks: {c.num_blocks}), {args.batch} x {frames}x{height}x{width} latents"
                f" = {tokens} tokens, {dtype}, {world} rank(s), context parallel: {split}"
            )
            for r in reports:
                overlap = "n/a" if r["overlapped"] is None else f"{100 * r['overlapped']:.0f}% overlapped"
                memory = r["peak_allocated_gib"] if r["peak_allocated_gib"] is not None else r["peak_rss_gib"]
                nvml = "" if r["nvml_used_gib"] is None else f", NVML {r['nvml_used_gib']:.2f} GiB used"
                print(
                    f"rank {r['rank']} ({r['device']}): step {r['step_ms']:.1f} ms "
                    f"(best {r['best_step_ms']:.1f}), comm {r['comm_ms']:.1f} ms/step ({overlap}), "
                    f"peak memory {memory:.2f} GiB{nvml}, "
                    f"trace {r['trace']}"
                )
            what = "kernels" if device.type == "cuda" else "operators"
            print(f"rank 0's top {what} by self time, per step:")
            for row in top:
                name = row["name"] if len(row["name"]) <= 100 else row["name"][:97] + "..."
                share, calls = 100 * row["share"], row["calls"]
                print(f"  {row['ms_per_step']:10.3f} ms {share:5.1f}% {calls:6d}x  {name}")
            if args.json:
                report = {"model": args.model, "blocks": c.num_blocks, "tokens": tokens, "ranks": reports}
                Path(args.json).write_text(json.dumps({**report, "top": top}, indent=2))
        return 0
    finally:
        if initialized_here:
            dist.destroy_process_group()


def register(sub: argparse._SubParsersAction) -> None:
    profile = sub.add_parser("profile", help="profile DiT training steps on each GPU of a node (torchrun)")
    add_profile_arguments(profile)
    profile.set_defaults(func=run_profile)
