"""The ``cosmos-kernels`` command: ``info`` about this install, ``bench`` of the ops against PyTorch,
``tokenize`` / ``detokenize`` of a video with a Cosmos continuous tokenizer, ``generate`` a video with
a Cosmos world model (Text2World or Video2World), ``train`` a world model, ``profile`` training steps."""

import argparse
import importlib.metadata
import json
import math
import platform
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cosmos_kernels import BackendUnavailableError, __version__, benchmarking, cuda
from cosmos_kernels._backend import BACKENDS, resolve_backend, unavailable_reason
from cosmos_kernels.models import (
    DIT_CONFIGS,
    ContinuousTokenizer,
    GeneralDIT,
    build_dit,
    build_tokenizer,
    load_cosmos_state_dict,
    load_cosmos_tokenizer_state_dict,
    load_tiny_world,
    tiny_world_dir,
    tiny_world_manifest,
    tiny_world_text_encoder,
)
from cosmos_kernels.models.tokenizer import TOKENIZER_CONFIGS
from cosmos_kernels.models.tokenizer_training import psnr, ssim
from cosmos_kernels.ops import adaln, haar, norm
from cosmos_kernels.ops.attention import PREFERENCE as ATTENTION_PREFERENCE
from cosmos_kernels.ops.attention import QK_NORM_ROPE_PREFERENCE
from cosmos_kernels.profiling import add_profile_arguments, run_profile
from cosmos_kernels.training.cli import add_train_arguments, run_train

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
OP_PREFERENCES = {
    "adaln_modulate": adaln.PREFERENCE,
    "gated_residual_adaln": adaln.PREFERENCE,
    "haar3d_analysis / synthesis": haar.PREFERENCE,
    "haar2d_analysis / synthesis": haar.PREFERENCE,
    "attention": ATTENTION_PREFERENCE,
    "qk_norm_rope": QK_NORM_ROPE_PREFERENCE,
    "group_norm_silu": norm.PREFERENCE,
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
    if auto["attention"] != "torch":
        # ops.attention's auto: the prologue pass, then SDPA where it can do the work (see ops/attention.py).
        auto["attention"] = (
            f"{auto['attention']} prologue, then SDPA in fp16/bf16 without k_lengths or lse; "
            "ring attention's blocks on cuDNN (else flash) attention with its lse"
        )
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


VIDEO_MODELS = [name for name, config in TOKENIZER_CONFIGS.items() if config.is_video]
LATENTS_FORMAT = "cosmos-kernels-latents-1"
# Without a checkpoint, tokenize and detokenize build the same random model from this seed.
RANDOM_WEIGHTS_SEED = 0


class CliError(Exception):
    """A bad input that the command reports in one line (exit status 2) instead of a traceback."""


def _reporting_errors(
    run: Callable[[argparse.Namespace, Console], int],
) -> Callable[[argparse.Namespace], int]:
    """``run`` with bad files and arguments reported as ``error: ...`` on stderr and exit status 2.

    OSError and ValueError cover what FFmpeg, safetensors and the tokenizer's own checks raise on
    unreadable files and unsuitable shapes.
    """

    def command(args: argparse.Namespace) -> int:
        console = Console()
        try:
            return run(args, console)
        except (CliError, ImportError, OSError, ValueError) as e:
            # markup off: messages quote file names and lists, which rich would read as markup.
            Console(stderr=True).print(f"error: {e}", style="red", markup=False, soft_wrap=True)
            return 2

    return command


def _device_dtype(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available")
    # bfloat16 is what Cosmos runs in; CPUs have no fast bfloat16 path, so they default to float32.
    return device, DTYPES[args.dtype or ("float32" if device.type == "cpu" else "bfloat16")]


def _checkpoint_state_dict(path: Path, half: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: a Cosmos tokenizer directory (``encoder.jit`` / ``decoder.jit``,
    else ``autoencoder.jit``), or one file: TorchScript (.jit), safetensors, or a ``torch.save``d dict."""
    if path.is_dir():
        file = next((f for f in (path / f"{half}.jit", path / "autoencoder.jit") if f.is_file()), None)
        if file is None:
            raise CliError(f"--checkpoint {path}: holds neither {half}.jit nor autoencoder.jit")
    elif path.is_file():
        file = path
    else:
        raise CliError(f"--checkpoint {path}: no such file or directory")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(file)
    if file.suffix == ".jit":
        return dict(torch.jit.load(file, map_location="cpu").state_dict())
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise CliError(f"--checkpoint {file}: expected a state dict, got {type(state).__name__}")
    return state


def _tokenizer(
    name: str, checkpoint: str | None, half: str, args: argparse.Namespace, console: Console
) -> ContinuousTokenizer:
    """The named video tokenizer, with ``half`` ("encoder" or "decoder") from ``checkpoint``."""
    if name not in VIDEO_MODELS:
        raise CliError(f"unknown video tokenizer {name!r}; known: {', '.join(VIDEO_MODELS)}")
    device, dtype = _device_dtype(args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        model = build_tokenizer(name)
    if checkpoint is None:
        console.print(
            f"[yellow]No --checkpoint: {name} has random weights (seed {RANDOM_WEIGHTS_SEED}), so its "
            "latents and reconstructions are meaningless beyond testing the pipeline.[/]"
        )
    else:
        loaded = load_cosmos_tokenizer_state_dict(model, _checkpoint_state_dict(Path(checkpoint), half))
        if not getattr(loaded, half):
            raise CliError(f"--checkpoint {checkpoint}: has no {half} weights")
        console.print(f"{name}: {half} weights from {checkpoint}")
    return model.to(device, dtype).eval()


def _round_up(size: int, multiple: int, offset: int = 0) -> int:
    """The least ``offset + multiple * k`` >= ``size``: 1 + 8k frames, 8k pixels."""
    return offset + multiple * math.ceil((size - offset) / multiple)


def _tokenize(args: argparse.Namespace, console: Console) -> int:
    from safetensors.torch import save_file

    from cosmos_kernels.video_io import read_video, to_model

    if not Path(args.video).is_file():
        raise CliError(f"{args.video}: no such file")
    model = _tokenizer(args.model, args.checkpoint, "encoder", args, console)
    frames, fps = read_video(args.video)
    count, height, width = frames.shape[:3]
    cfg = model.config
    padded = (
        _round_up(count, cfg.temporal_compression, offset=1),
        _round_up(height, cfg.spatial_compression),
        _round_up(width, cfg.spatial_compression),
    )
    video = to_model(frames)
    if padded != (count, height, width):
        console.print(
            f"Padding {count} x {height} x {width} to {padded[0]} x {padded[1]} x {padded[2]} frames x "
            f"pixels ({args.model} takes 1 + {cfg.temporal_compression}k frames of multiples of "
            f"{cfg.spatial_compression}) by repeating the last frame and the edge pixels; detokenize "
            "crops back."
        )
        # One replicate pad repeats the last frame in time and the edge pixels in space.
        pad = (0, padded[2] - width, 0, padded[1] - height, 0, padded[0] - count)
        video = F.pad(video, pad, mode="replicate")
    device, dtype = _device_dtype(args)
    with torch.inference_mode():
        latents = model.encode(
            video.to(device, dtype), chunk_frames=args.chunk_frames, progress=args.chunk_frames is not None
        )
    metadata = {
        "format": LATENTS_FORMAT,
        "model": args.model,
        "frames": str(count),
        "height": str(height),
        "width": str(width),
        "fps": str(fps),
        # detokenize loads the decoder from the same checkpoint unless told otherwise.
        "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else "",
    }
    save_file({"latents": latents.cpu().contiguous()}, args.out, metadata=metadata)
    console.print(
        f"{args.video}: {count} frames of {height} x {width} at {float(fps):g} fps -> latents "
        f"{tuple(latents.shape)} {str(latents.dtype).removeprefix('torch.')} in {args.out}"
    )
    return 0


def _detokenize(args: argparse.Namespace, console: Console) -> int:
    from safetensors import SafetensorError, safe_open

    from cosmos_kernels.video_io import from_model, read_video, to_model, write_video

    if not Path(args.latents).is_file():
        raise CliError(f"{args.latents}: no such file")
    not_latents = f"{args.latents}: not a latents file written by `cosmos-kernels tokenize`"
    try:
        with safe_open(args.latents, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != LATENTS_FORMAT or "latents" not in f.keys():
                raise CliError(not_latents)
            latents = f.get_tensor("latents")
    except SafetensorError as e:
        raise CliError(f"{not_latents} ({e})") from e
    count, height, width = (int(meta[key]) for key in ("frames", "height", "width"))
    checkpoint = args.checkpoint or meta["checkpoint"] or None
    model = _tokenizer(meta["model"], checkpoint, "decoder", args, console)
    device, dtype = _device_dtype(args)
    with torch.inference_mode():
        video = model.decode(
            latents.to(device, dtype), chunk_frames=args.chunk_frames, progress=args.chunk_frames is not None
        )
    frames = from_model(video[:, :, :count, :height, :width])
    write_video(args.out, frames, Fraction(meta["fps"]))
    console.print(f"{args.latents}: {count} frames of {height} x {width} written to {args.out}")
    if args.reference is not None:
        reference, _ = read_video(args.reference)
        if reference.shape != frames.shape:
            raise CliError(
                f"--reference {args.reference}: {tuple(reference.shape[:3])} frames x H x W, the "
                f"decoded video has {tuple(frames.shape[:3])}"
            )
        ref, out = to_model(reference), to_model(frames)
        # Frame by frame bounds memory; every frame has as many SSIM windows, so the mean is the same.
        mean_ssim = sum(ssim(ref[:, :, i], out[:, :, i]) for i in range(count)) / count
        console.print(
            f"against {args.reference}: PSNR {psnr(ref, out):.2f} dB, SSIM {mean_ssim:.4f} "
            "(decoded frames, before the mp4 encoding)"
        )
    return 0


cmd_tokenize = _reporting_errors(_tokenize)
cmd_detokenize = _reporting_errors(_detokenize)


# The Text2World / Video2World models whose trained weights ship with the package (models.tiny_world).
SHIPPED_WORLD_MODELS = {"tiny": "text2world", "tiny-video2world": "video2world"}


def _world_model(
    args: argparse.Namespace, console: Console
) -> tuple[GeneralDIT, tuple[ContinuousTokenizer, torch.Tensor, torch.Tensor] | None]:
    """The network, and for the shipped tiny models (no --checkpoint) their tokenizer and latent
    mean and std."""
    if args.model not in DIT_CONFIGS:
        raise CliError(f"unknown world model {args.model!r}; known: {', '.join(DIT_CONFIGS)}")
    device, dtype = _device_dtype(args)
    if args.checkpoint is None and args.model in SHIPPED_WORLD_MODELS:
        net, tokenizer, mean, std = load_tiny_world(SHIPPED_WORLD_MODELS[args.model], device)
        console.print(
            f"{args.model}: the shipped weights in {tiny_world_dir()} (trained on the synthetic physics "
            "clips by scripts/train_tiny_world_model.py)"
        )
        return net.to(device, dtype).eval(), (tokenizer.to(device, dtype), mean, std)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        net = build_dit(args.model)
    if args.checkpoint is None:
        console.print(
            f"[yellow]No --checkpoint: {args.model} has random weights (seed {RANDOM_WEIGHTS_SEED}), so "
            "the video is noise-like; it tests the pipeline, not the model.[/]"
        )
    else:
        path = Path(args.checkpoint)
        # A Cosmos diffusion checkpoint directory (e.g. Cosmos-1.0-Diffusion-7B-Text2World) holds model.pt.
        load_cosmos_state_dict(
            net, _checkpoint_state_dict(path / "model.pt" if path.is_dir() else path, "model")
        )
        console.print(f"{args.model}: weights from {args.checkpoint}")
    return net.to(device, dtype).eval(), None


def _generate(args: argparse.Namespace, console: Console) -> int:
    from cosmos_kernels.pipelines import (
        HashTextEncoder,
        SamplingOptions,
        T5TextEncoder,
        Text2WorldPipeline,
        Video2WorldPipeline,
    )

    net, shipped = _world_model(args, console)
    net.attention_precision = args.attention_precision
    video2world = net.config.video_extend
    if video2world != (args.input_video is not None):
        raise CliError(
            "Video2World models (*-video2world) take --input-video, Text2World models do not; "
            f"{args.model} is {'a Video2World' if video2world else 'a Text2World'} model"
        )
    stats = {}
    size, guidance = 64, 7.0
    if shipped is not None and args.tokenizer is None and args.tokenizer_checkpoint is None:
        tokenizer, stats["latent_mean"], stats["latent_std"] = shipped
        manifest = tiny_world_manifest()
        size, guidance = manifest["size"], manifest["guidance"][SHIPPED_WORLD_MODELS[args.model]]
    else:
        tokenizer_name = args.tokenizer or ("tiny-cv8x8x8" if args.model.startswith("tiny") else "cv8x8x8")
        tokenizer = _tokenizer(tokenizer_name, args.tokenizer_checkpoint, "decoder", args, console)
    if args.t5 is not None:
        text_encoder = T5TextEncoder(args.t5, device=_device_dtype(args)[0])
    elif shipped is not None:
        text_encoder = tiny_world_text_encoder()  # as trained: the hash stand-in, shorter padding
    else:
        console.print("No --t5: prompts are embedded by the deterministic stand-in (HashTextEncoder).")
        text_encoder = HashTextEncoder()
    options = SamplingOptions(
        num_steps=args.steps,
        guidance=guidance if args.guidance is None else args.guidance,
        sampler=args.sampler,
        fps=float(args.fps),
    )
    common = {
        "negative_prompt": args.negative_prompt,
        "options": options,
        "seed": args.seed,
        "progress": True,
    }
    if video2world:
        from cosmos_kernels.video_io import read_video, to_model

        frames, _ = read_video(args.input_video)
        if frames.shape[0] < args.input_frames:
            raise CliError(
                f"--input-video {args.input_video}: {frames.shape[0]} frames, need {args.input_frames}"
            )
        given = to_model(frames[: args.input_frames])
        pipeline = Video2WorldPipeline(net, text_encoder, tokenizer, **stats)
        result = pipeline(args.prompt, given.to(pipeline.device), num_frames=args.frames, **common)
    else:
        pipeline = Text2WorldPipeline(net, text_encoder, tokenizer, **stats)
        height = size if args.height is None else args.height
        width = size if args.width is None else args.width
        result = pipeline(args.prompt, num_frames=args.frames, height=height, width=width, **common)
    return _write_generated(result.video, args, console)


def _write_generated(video: torch.Tensor, args: argparse.Namespace, console: Console) -> int:
    from cosmos_kernels.video_io import from_model

    frames = from_model(video[:1])
    out = Path(args.out)
    try:
        from cosmos_kernels.video_io import write_video

        if out.suffix == ".npy":
            raise ImportError("asked for .npy")
        write_video(out, frames, args.fps)
    except ImportError:
        # Without PyAV there is no video writer: the uint8 frames (T, H, W, 3) go to a .npy file.
        import numpy as np

        out = out.with_suffix(".npy")
        np.save(out, frames.numpy())
    console.print(f"{tuple(frames.shape[:3])} frames x H x W written to {out}")
    from cosmos_kernels.pipelines.evaluation import write_contact_sheet

    sheet = Path(args.out).with_suffix(".png") if args.contact_sheet is None else Path(args.contact_sheet)
    # Frames enlarged to at least 96 pixels high, so that a 32-pixel video's sheet is readable.
    scale = max(1, math.ceil(96 / video.shape[3]))
    try:
        write_contact_sheet([video[0]], sheet, scale=scale)
    except ImportError as error:
        if args.contact_sheet is not None:
            raise CliError(f"--contact-sheet {args.contact_sheet}: {error}") from error
        console.print(f"[yellow]No contact sheet: {error}[/]")
    else:
        console.print(f"contact sheet of the {video.shape[2]} frames written to {sheet}")
    return 0


cmd_generate = _reporting_errors(_generate)


def _add_model_arguments(parser: argparse.ArgumentParser, half: str) -> None:
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help=f"Cosmos tokenizer directory ({half}.jit or autoencoder.jit) or a state dict file "
        "(.jit, .safetensors, .pt); default: random weights"
        + (", or the checkpoint the latents were made with" if half == "decoder" else ""),
    )
    unit = "input frames, 1 + 8m" if half == "encoder" else "latent frames, 1 + m"
    parser.add_argument(
        "--chunk-frames", type=int, default=None, help=f"stream the video in chunks of N {unit} (less memory)"
    )
    parser.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="default bfloat16 (float32 on CPU)"
    )


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
    tokenize = sub.add_parser("tokenize", help="encode a video file to a latents file (.safetensors)")
    tokenize.add_argument("video", help="input video (mp4 or anything FFmpeg reads)")
    tokenize.add_argument("--out", required=True, help="latents file to write (.safetensors)")
    tokenize.add_argument("--model", default="tiny-cv8x8x8", help=f"one of {', '.join(VIDEO_MODELS)}")
    _add_model_arguments(tokenize, "encoder")
    tokenize.set_defaults(func=cmd_tokenize)
    detokenize = sub.add_parser("detokenize", help="decode a latents file back to a video file")
    detokenize.add_argument("latents", help="a latents file written by `cosmos-kernels tokenize`")
    detokenize.add_argument("--out", required=True, help="video file to write (.mp4)")
    detokenize.add_argument("--reference", default=None, help="a video to report PSNR and SSIM against")
    _add_model_arguments(detokenize, "decoder")
    detokenize.set_defaults(func=cmd_detokenize)
    generate = sub.add_parser("generate", help="generate a video from a prompt (and given frames)")
    generate.add_argument("--prompt", required=True, help="what the video shows")
    generate.add_argument(
        "--negative-prompt", default=None, help="steer away from this (replaces the empty prompt)"
    )
    generate.add_argument("--model", default="tiny", help=f"one of {', '.join(DIT_CONFIGS)}")
    generate.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="Cosmos model.pt or a .safetensors state dict (default for tiny, tiny-video2world: the "
        "shipped weights, with their tokenizer)",
    )
    generate.add_argument(
        "--tokenizer", default=None, help="default: tiny-cv8x8x8 for tiny models, else cv8x8x8"
    )
    generate.add_argument(
        "--tokenizer-checkpoint", default=None, metavar="PATH", help="tokenizer decoder weights"
    )
    generate.add_argument(
        "--t5", default=None, metavar="DIR", help="local T5 encoder directory (transformers)"
    )
    generate.add_argument(
        "--input-video", default=None, help="Video2World: the video whose first frames to continue"
    )
    generate.add_argument(
        "--input-frames", type=int, choices=(1, 9), default=1, help="Video2World: frames given"
    )
    generate.add_argument("--frames", type=int, default=17, help="frames to generate, 1 + 8k (Cosmos: 121)")
    generate.add_argument(
        "--height",
        type=int,
        default=None,
        help="Text2World height in pixels (default: the shipped tiny model's 32, else 64; Cosmos: 704)",
    )
    generate.add_argument(
        "--width",
        type=int,
        default=None,
        help="Text2World width in pixels (default: the shipped tiny model's 32, else 64; Cosmos: 1280)",
    )
    generate.add_argument("--fps", type=int, default=24)
    generate.add_argument("--steps", type=int, default=35, help="sampling steps (Cosmos: 35)")
    generate.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance (default: the shipped tiny model's, else Cosmos's 7)",
    )
    generate.add_argument("--sampler", choices=("euler", "heun", "multistep"), default="euler")
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("--out", default="generated.mp4", help="video file to write (.npy without PyAV)")
    generate.add_argument(
        "--contact-sheet",
        default=None,
        metavar="PATH",
        help="PNG grid of the frames to write (default: --out with .png; needs Pillow)",
    )
    generate.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    generate.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="default bfloat16 (float32 on CPU)"
    )
    generate.add_argument(
        "--attention-precision",
        choices=("qk-int8", "qk-int8-pv-fp8"),
        default=None,
        help="8-bit attention (INT8 QK^T, optionally FP8 PV); default: exact",
    )
    generate.set_defaults(func=cmd_generate)
    train = sub.add_parser(
        "train", help="train a DiT as Cosmos does (default: the tiny one on synthetic physics)"
    )
    add_train_arguments(train)
    train.set_defaults(func=_reporting_errors(lambda args, _console: run_train(args)))
    profile = sub.add_parser("profile", help="profile DiT training steps on each GPU of a node (torchrun)")
    add_profile_arguments(profile)
    profile.set_defaults(func=run_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
