"""``cosmos-kernels train``: the command-line face of :func:`~cosmos_kernels.training.train`.

``add_train_arguments(parser)`` adds the options to an argparse (sub)parser and ``run_train(args)``
runs them. Under ``torchrun`` (WORLD_SIZE > 1) the process group is started here (NCCL on GPUs, gloo
on CPUs) and the run is sharded with FSDP2.
"""

import argparse
import dataclasses
import os
from pathlib import Path

import torch
import torch.distributed as dist

from cosmos_kernels.models import HashTextEncoder, T5TextEncoder
from cosmos_kernels.tools.common import reporting_errors
from cosmos_kernels.training.config import TrainConfig, tiny_config
from cosmos_kernels.training.logs import plot_losses
from cosmos_kernels.training.trainer import LOG_FILE, TextEncoder, train


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``cosmos-kernels train``'s options to ``parser``."""
    parser.add_argument(
        "--config",
        type=Path,
        help="a TrainConfig as JSON or YAML (fields of TrainConfig; stages a list of Stage fields); "
        "default: the tiny two-stage preset (training.tiny_config)",
    )
    parser.add_argument("--output-dir", type=Path, required=True, help="log and checkpoints go here")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue from a checkpoint directory; without a value, from the latest one under "
        "OUTPUT_DIR/checkpoints (a fresh start when there is none)",
    )
    parser.add_argument(
        "--steps", type=int, help="the preset's total steps (only without --config; default 200)"
    )
    parser.add_argument("--data", help="override data.source: 'physics' or a folder of videos and images")
    parser.add_argument(
        "--text-encoder",
        default="hash",
        help="'hash' (a deterministic stand-in for T5, no weights) or a local T5 encoder directory",
    )
    parser.add_argument(
        "--text-length", type=int, default=512, help="tokens per caption of the hash encoder (default 512)"
    )
    parser.add_argument("--device", help="default: this rank's GPU if any, else the CPU")
    parser.add_argument(
        "--stop-after", type=int, help="run at most this many steps, then checkpoint (resume with --resume)"
    )
    parser.add_argument(
        "--plot", action="store_true", help="write OUTPUT_DIR/loss.png from the log at the end"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config(args: argparse.Namespace) -> TrainConfig:
    if args.config is not None:
        if args.steps is not None:
            raise ValueError("--steps applies to the preset only; set the stages' steps in --config")
        config = TrainConfig.load(args.config)
    else:
        config = tiny_config(200 if args.steps is None else args.steps)
    if args.data is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, source=args.data))
    return config


def _text_encoder(args: argparse.Namespace, device: torch.device | None) -> TextEncoder:
    if args.text_encoder == "hash":
        return HashTextEncoder(max_length=args.text_length)
    return T5TextEncoder(args.text_encoder, device=device or "cpu")


def run_train(args: argparse.Namespace) -> int:
    """Run ``cosmos-kernels train`` with parsed ``args``; returns the exit status (0)."""
    config = _config(args)
    started_group = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        started_group = True
    try:
        device = None if args.device is None else torch.device(args.device)
        result = train(
            config,
            _text_encoder(args, device),
            output_dir=args.output_dir,
            resume=args.resume,
            device=device,
            stop_after=args.stop_after,
            progress=not args.no_progress,
        )
        if result.log_path is not None:
            print(f"trained to step {result.step}; log {result.log_path}; checkpoint {result.checkpoint}")
            if args.plot:
                try:
                    png = plot_losses(args.output_dir / LOG_FILE, args.output_dir / "loss.png")
                    print(f"loss curve {png}")
                except ImportError as e:  # the run succeeded; only the picture is missing
                    print(f"no loss curve: {e}")
    finally:
        if started_group:
            dist.destroy_process_group()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train", help="train a DiT as Cosmos does (default: the tiny one on synthetic physics)"
    )
    add_train_arguments(train)
    train.set_defaults(func=reporting_errors(lambda args, _console: run_train(args)))
