"""``cosmos-kernels tokenize`` / ``detokenize``: a video file to a latents file with a Cosmos continuous
tokenizer, and back (with PSNR / SSIM against a reference)."""

import argparse
import math
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console

from cosmos_kernels.metrics import psnr, ssim
from cosmos_kernels.tools.common import (
    DTYPES,
    VIDEO_MODELS,
    CliError,
    device_dtype,
    reporting_errors,
    video_tokenizer,
)

LATENTS_FORMAT = "cosmos-kernels-latents-1"


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
    model = video_tokenizer(meta["model"], checkpoint, "decoder", args, console)
    device, dtype = device_dtype(args)
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
    tokenize = sub.add_parser("tokenize", help="encode a video file to a latents file (.safetensors)")
    tokenize.add_argument("video", help="input video (mp4 or anything FFmpeg reads)")
    tokenize.add_argument("--out", required=True, help="latents file to write (.safetensors)")
    tokenize.add_argument("--model", default="tiny-cv8x8x8", help=f"one of {', '.join(VIDEO_MODELS)}")
    add_model_arguments(tokenize, "encoder")
    tokenize.set_defaults(func=cmd_tokenize)
    detokenize = sub.add_parser("detokenize", help="decode a latents file back to a video file")
    detokenize.add_argument("latents", help="a latents file written by `cosmos-kernels tokenize`")
    detokenize.add_argument("--out", required=True, help="video file to write (.mp4)")
    detokenize.add_argument("--reference", default=None, help="a video to report PSNR and SSIM against")
    add_model_arguments(detokenize, "decoder")
    detokenize.set_defaults(func=cmd_detokenize)
