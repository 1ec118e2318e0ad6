"""``cosmos-kernels decode-tokens TOKENS --out video.mp4``: discrete DV tokens (an .npy of int32 indices,
(T', H', W') or (B, T', H', W')) to a video through the diffusion decoder (``DiffusionDecoderPipeline``),
by default the tiny one shipped with the package (``models.tiny_decoder``)."""

import argparse
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from cosmos_kernels.models.tiny_decoder import load_tiny_decoder
from cosmos_kernels.pipelines import DecoderSamplingOptions, DiffusionDecoderPipeline
from cosmos_kernels.tools.common import CliError, reporting_errors


def _read_tokens(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: not an .npy file ({e})") from e
    if not np.issubdtype(array.dtype, np.integer):
        raise CliError(f"{path}: expected integer token indices (int32), got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise CliError(
            f"{path}: expected token indices (T', H', W') or (B, T', H', W'), got shape {array.shape}"
        )
    return torch.from_numpy(array.astype(np.int64))


def _out_paths(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(count)]


def _decode_tokens(args: argparse.Namespace, console: Console) -> int:
    from cosmos_kernels.video_io import from_model, write_video

    tokens = _read_tokens(Path(args.tokens))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_tiny_decoder(args.model_dir, device)
    sampling = model.manifest["sampling"]
    options = DecoderSamplingOptions(
        num_steps=args.steps if args.steps is not None else sampling["num_steps"],
        guidance=args.guidance if args.guidance is not None else sampling["guidance"],
        window=sampling["window"],
        overlap=sampling["overlap"],
    )
    pipeline = DiffusionDecoderPipeline(
        model.net,
        model.dv_tokenizer,
        model.cv_tokenizer,
        model.text_encoder,
        latent_mean=model.latent_mean,
        latent_std=model.latent_std,
    )
    prompt = args.prompt if args.prompt is not None else model.manifest["prompt"]
    video = pipeline(tokens.to(device), prompt, options=options, seed=args.seed, progress=args.progress)
    for path, one in zip(_out_paths(Path(args.out), video.shape[0]), video, strict=True):
        write_video(path, from_model(one[None]), args.fps)
        console.print(
            f"{args.tokens}: {one.shape[1]} frames of {one.shape[2]} x {one.shape[3]} written to {path}"
        )
    return 0


cmd_decode_tokens = reporting_errors(_decode_tokens)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "decode-tokens", help="decode discrete DV tokens (.npy) to a video with the diffusion decoder"
    )
    parser.add_argument("tokens", help="an .npy of int32 token indices, (T', H', W') or (B, T', H', W')")
    parser.add_argument("--out", required=True, help="video file to write (.mp4; name_i.mp4 for a batch)")
    parser.add_argument(
        "--model-dir",
        default=None,
        help="a directory written by scripts/train_tiny_diffusion_decoder.py (default: the shipped one)",
    )
    parser.add_argument("--prompt", default=None, help="text condition (default: the model's generic prompt)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's, 15)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance (default: the model's, 1.8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    parser.add_argument("--progress", action="store_true", help="show the sampler's progress")
    parser.set_defaults(func=cmd_decode_tokens)
