"""What the subcommands share: dtypes, consoles, one-line error reports, devices and checkpoints."""

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console

from cosmos_kernels.models import (
    ContinuousTokenizer,
    DiscreteTokenizer,
    build_tokenizer,
    load_cosmos_tokenizer_state_dict,
)
from cosmos_kernels.models.tokenizer import TOKENIZER_CONFIGS

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
VIDEO_MODELS = [name for name, config in TOKENIZER_CONFIGS.items() if config.is_video]
# Without a checkpoint, tokenize and detokenize build the same random model from this seed.
RANDOM_WEIGHTS_SEED = 0


def make_console() -> Console:
    """A console for tables and progress: at a terminal its width; piped or redirected, wide enough
    that no table cell is cut (rich would otherwise fit everything into 80 columns)."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 400))
    return console


class CliError(Exception):
    """A bad input that the command reports in one line (exit status 2) instead of a traceback."""


def reporting_errors(
    run: Callable[[argparse.Namespace, Console], int],
) -> Callable[[argparse.Namespace], int]:
    """``run`` with bad files and arguments reported as ``error: ...`` on stderr and exit status 2.

    OSError and ValueError cover what FFmpeg, safetensors and the tokenizer's own checks raise on
    unreadable files and unsuitable shapes.
    """

    def command(args: argparse.Namespace) -> int:
        console = make_console()
        try:
            return run(args, console)
        except (CliError, ImportError, OSError, ValueError) as e:
            # markup off: messages quote file names and lists, which rich would read as markup.
            Console(stderr=True).print(f"error: {e}", style="red", markup=False, soft_wrap=True)
            return 2

    return command


def device_dtype(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available")
    # bfloat16 is what Cosmos runs in; CPUs have no fast bfloat16 path, so they default to float32.
    return device, DTYPES[args.dtype or ("float32" if device.type == "cpu" else "bfloat16")]


def checkpoint_state_dict(path: Path, half: str) -> dict[str, torch.Tensor]:
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


def video_tokenizer(
    name: str, checkpoint: str | None, half: str, args: argparse.Namespace, console: Console
) -> ContinuousTokenizer | DiscreteTokenizer:
    """The named video tokenizer, with ``half`` ("encoder" or "decoder") from ``checkpoint``."""
    if name not in VIDEO_MODELS:
        raise CliError(f"unknown video tokenizer {name!r}; known: {', '.join(VIDEO_MODELS)}")
    device, dtype = device_dtype(args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        model = build_tokenizer(name)
    if checkpoint is None:
        console.print(
            f"[yellow]No --checkpoint: {name} has random weights (seed {RANDOM_WEIGHTS_SEED}), so its "
            "latents and reconstructions are meaningless beyond testing the pipeline.[/]"
        )
    else:
        loaded = load_cosmos_tokenizer_state_dict(model, checkpoint_state_dict(Path(checkpoint), half))
        if not getattr(loaded, half):
            raise CliError(f"--checkpoint {checkpoint}: has no {half} weights")
        console.print(f"{name}: {half} weights from {checkpoint}")
    return model.to(device, dtype).eval()
