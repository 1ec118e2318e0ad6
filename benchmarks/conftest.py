"""Benchmark options: `--shapes quick|cosmos`, `--dtype`, `--no-compile`.

Run on a GPU machine:  pytest benchmarks --shapes cosmos --benchmark-json=$OUT/bench.json
"""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--shapes", default="quick", choices=["quick", "cosmos"], help="benchmark shapes")
    parser.addoption("--dtype", default=None, choices=["bfloat16", "float16", "float32"])
    parser.addoption("--no-compile", action="store_true", help="skip the torch.compile peer")


@pytest.fixture(scope="session")
def bench_config(request):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype_name = request.config.getoption("--dtype") or ("bfloat16" if device == "cuda" else "float32")
    return {
        "device": device,
        "dtype": getattr(torch, dtype_name),
        "shapes": request.config.getoption("--shapes"),
        "compile": not request.config.getoption("--no-compile"),
    }
