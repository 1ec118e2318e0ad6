"""``python -m cosmos_kernels.cli`` (as under torchrun) is the ``cosmos-kernels`` command; the
subcommands live in ``cosmos_kernels.tools``."""

import sys

from cosmos_kernels.tools.cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
