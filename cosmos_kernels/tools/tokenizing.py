"""``cosmos-kernels tokenize`` / ``detokenize``: a video file to a latents file with a Cosmos continuous
tokenizer, or to a token indices file with a discrete one, and back (with PSNR / SSIM against a
reference).

Indices files: ``.safetensors`` (int32 ``indices`` (1, T', H', W') with the same metadata as a latents
file, so ``detokenize`` needs no flags) or ``.npy`` (int32 (1, T', H', W'), e.g. from an
autoregressive model; ``detokenize`` then needs ``--model`` and decodes every frame)."""

import argparse
import math
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console

from cosmos_kernels.metrics import psnr, ssim
from cosmos_kernels.models import DiscreteTokenizer, DiscreteTokenizerConfig
from cosmos_kernels.tools.common import (
    DTYPES,
    VIDEO_MODELS,
    CliError,
    device_dtype,
    reporting_errors,
    video_tokenizer,
)

LATENTS_FORMAT = "cosmos-kernels-latents-1"
TOKENS_FORMAT = "cosmos-kernels-tokens-1"
DEFAULT_FPS = 24


def _round_up(size: int, multiple: int, offset: int = 0) -> int:
    """The least ``offset + multiple * k`` >= ``size``: 1 + 8k frames, 8k pixels."""
    return offset + multiple * math.ceil((size - offset) / multiple)


def _tokenize(args: argparse.Namespace, console: Console) -> int:
    from safetensors.torch import save_file

    from cosmos_kernels.video_io import read_video, to_model

    if not Path(args.video).is_file():
        raise CliError(f"{args.video}: no such file")
    model = video_tokenizer(args.model, args.checkpoint, "encoder", args, console)
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
    device, dtype = device_dtype(args)
    discrete = isinstance(model, DiscreteTokenizer)
    out = Path(args.out)
    if out.suffix not in (".safetensors", ".npy") or (out.suffix == ".npy" and not discrete):
        kinds = "an indices file (.safetensors or .npy)" if discrete else "a latents file (.safetensors)"
        raise CliError(f"--out {args.out}: {args.model} writes {kinds}")
    with torch.inference_mode():
        latents = model.encode(
            video.to(device, dtype), chunk_frames=args.chunk_frames, progress=args.chunk_frames is not None
        )
    what = "tokens" if discrete else "latents"
    if out.suffix == ".npy":
        import numpy as np

        np.save(out, latents.cpu().numpy())
        console.print(
            f"{args.video}: {count} frames of {height} x {width} -> tokens {tuple(latents.shape)} int32 "
            f"in {args.out} (no metadata: detokenize it with --model {args.model})"
        )
        return 0
    metadata = {
        "format": TOKENS_FORMAT if discrete else LATENTS_FORMAT,
        "model": args.model,
        "frames": str(count),
        "height": str(height),
        "width": str(width),
        "fps": str(fps),
        # detokenize loads the decoder from the same checkpoint unless told otherwise.
        "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else "",
    }
    save_file({"indices" if discrete else "latents": latents.cpu().contiguous()}, args.out, metadata=metadata)
    console.print(
        f"{args.video}: {count} frames of {height} x {width} at {float(fps):g} fps -> {what} "
        f"{tuple(latents.shape)} {str(latents.dtype).removeprefix('torch.')} in {args.out}"
    )
    return 0


def _read_latents(path: str, model: str | None) -> tuple[torch.Tensor, dict[str, str]]:
    """The latents or indices in ``path`` and their metadata (for .npy: ``model`` and no more)."""
    if Path(path).suffix == ".npy":
        import numpy as np

        if model is None:
            raise CliError(f"{path}: an .npy indices file records no model; name it with --model")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CliError(f"{path}: not an .npy array ({e})") from e
        if array.dtype.kind not in "iu":
            raise CliError(f"{path}: token indices must be integers, got {array.dtype}")
        return torch.from_numpy(array.astype(np.int64)), {"model": model, "checkpoint": ""}
    from safetensors import SafetensorError, safe_open

    not_latents = f"{path}: not a latents or indices file written by `cosmos-kernels tokenize`"
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            key = {LATENTS_FORMAT: "latents", TOKENS_FORMAT: "indices"}.get(meta.get("format", ""))
            if key is None or key not in f.keys():
                raise CliError(not_latents)
            latents = f.get_tensor(key)
    except SafetensorError as e:
        raise CliError(f"{not_latents} ({e})") from e
    if model is not None:
        meta["model"] = model
    return latents, meta


def _check_tokens(path: str, name: str, tokens: torch.Tensor, cfg: DiscreteTokenizerConfig) -> torch.Tensor:
    """(1, T', H', W') int64 indices from a (T', H', W') or (1, T', H', W') integer tensor."""
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise CliError(f"{path}: token indices must be integers, got {tokens.dtype}")
    if tokens.dim() == 3:
        tokens = tokens[None]
    if tokens.dim() != 4 or tokens.shape[0] != 1 or 0 in tokens.shape:
        raise CliError(
            f"{path}: {name} takes indices (T', H', W') or (1, T', H', W'), got {tuple(tokens.shape)}"
        )
    low, high = tokens.min().item(), tokens.max().item()
    if low < 0 or high >= cfg.codebook_size:
        raise CliError(
            f"{path}: token indices must lie in [0, {cfg.codebook_size}) for {name}, got values from "
            f"{low} to {high}"
        )
    return tokens.long()


def _check_frames(path: str, latents: torch.Tensor, meta: dict[str, str], t: int, s: int) -> None:
    """The recorded frames and size must be the ones these latents were encoded from (after padding)."""
    count, height, width = (int(meta[key]) for key in ("frames", "height", "width"))
    expected = (1 + math.ceil((count - 1) / t), math.ceil(height / s), math.ceil(width / s))
    got = tuple(latents.shape[-3:])
    if got != expected:
        raise CliError(
            f"{path}: {count} frames of {height} x {width} encode to {expected[0]} latent frames of "
            f"{expected[1]} x {expected[2]} with {meta['model']} (1 + {t}k frames, {s}x{s} pixels per "
            f"latent), but the file holds {got[0]} of {got[1]} x {got[2]}"
        )


def _detokenize(args: argparse.Namespace, console: Console) -> int:
    from cosmos_kernels.video_io import from_model, read_video, to_model, write_video

    if not Path(args.latents).is_file():
        raise CliError(f"{args.latents}: no such file")
    latents, meta = _read_latents(args.latents, args.model)
    checkpoint = args.checkpoint or meta["checkpoint"] or None
    model = video_tokenizer(meta["model"], checkpoint, "decoder", args, console)
    cfg = model.config
    t, s = cfg.temporal_compression, cfg.spatial_compression
    if isinstance(model, DiscreteTokenizer):
        latents = _check_tokens(args.latents, meta["model"], latents, cfg)
    elif "frames" not in meta:
        raise CliError(f"{args.latents}: {meta['model']} is continuous; an .npy file holds token indices")
    if "frames" not in meta:
        frames, height, width = latents.shape[-3:]
        meta.update(frames=str(1 + t * (frames - 1)), height=str(height * s), width=str(width * s))
        meta["fps"] = str(args.fps or DEFAULT_FPS)
    _check_frames(args.latents, latents, meta, t, s)
    count, height, width = (int(meta[key]) for key in ("frames", "height", "width"))
    device, dtype = device_dtype(args)
    with torch.inference_mode():
        latents = latents.to(device) if latents.dtype == torch.int64 else latents.to(device, dtype)
        video = model.decode(latents, chunk_frames=args.chunk_frames, progress=args.chunk_frames is not None)
    frames = from_model(video[:, :, :count, :height, :width])
    fps = Fraction(args.fps).limit_denominator(1001) if args.fps else Fraction(meta["fps"])
    write_video(args.out, frames, fps)
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


cmd_tokenize = reporting_errors(_tokenize)
cmd_detokenize = reporting_errors(_detokenize)


def add_model_arguments(parser: argparse.ArgumentParser, half: str) -> None:
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


def register(sub: argparse._SubParsersAction) -> None:
    tokenize = sub.add_parser(
        "tokenize", help="encode a video file to a latents file, or a token indices file (discrete models)"
    )
    tokenize.add_argument("video", help="input video (mp4 or anything FFmpeg reads)")
    tokenize.add_argument(
        "--out",
        required=True,
        help="latents file (.safetensors) or, discrete models, indices (.safetensors, .npy)",
    )
    tokenize.add_argument("--model", default="tiny-cv8x8x8", help=f"one of {', '.join(VIDEO_MODELS)}")
    add_model_arguments(tokenize, "encoder")
    tokenize.set_defaults(func=cmd_tokenize)
    detokenize = sub.add_parser("detokenize", help="decode a latents or token indices file to a video file")
    detokenize.add_argument(
        "latents", help="a latents or indices file written by `cosmos-kernels tokenize`, or .npy int indices"
    )
    detokenize.add_argument(
        "--model", default=None, help="the tokenizer (needed for .npy indices; default: the file's)"
    )
    detokenize.add_argument(
        "--fps", type=float, default=None, help=f"frame rate (default: the file's, else {DEFAULT_FPS})"
    )
    detokenize.add_argument("--out", required=True, help="video file to write (.mp4)")
    detokenize.add_argument("--reference", default=None, help="a video to report PSNR and SSIM against")
    add_model_arguments(detokenize, "decoder")
    detokenize.set_defaults(func=cmd_detokenize)
