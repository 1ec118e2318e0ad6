"""The ``cosmos-kernels`` command: ``info`` about this install, ``bench`` of the ops against PyTorch,
``tokenize`` / ``detokenize`` of a video with a Cosmos continuous tokenizer, ``generate`` a video with
a Cosmos world model (Text2World or Video2World), ``train`` a world model, ``profile`` training steps,
``decode-tokens`` of discrete tokens to a video with the diffusion decoder."""

import argparse
import sys

from cosmos_kernels.tools import bench, decode_tokens, generate, info, profiling, tokenizing, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cosmos-kernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (info, bench, tokenizing, generate, train, profiling, decode_tokens):
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
