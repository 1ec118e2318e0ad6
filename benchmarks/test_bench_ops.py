"""pytest-benchmark suite: each op against PyTorch eager and torch.compile, same inputs, one run.

Every result carries GB/s of compulsory traffic and the ratio to the device's copy bandwidth in
`extra_info`; compare rows of one run (`--benchmark-group-by=param:op`).
"""

import pytest
import torch

from cosmos_kernels._backend import unavailable_reason
from cosmos_kernels.tools import benchmarking

# What the registry lists per op, then the whole-model cases.
OPS = [*benchmarking.OP_CASES, *benchmarking.MODEL_CASES]
OURS = ["triton", "cuda", "auto"]
PEERS = [
    "eager", "torch.compile", "sdpa-cudnn", "sdpa-flash", "sdpa-efficient", "flash_attn2", "flash_attn3",
    "exact", "sageattention",
]  # fmt: skip
_cache: dict = {}


def _suite_name(case_name):
    """Tokenizer cases are named after their model ("cv8x8x8 encode"), which differs by --shapes."""
    kind = case_name.rsplit(" ", 1)[-1]
    return f"tokenizer {kind}" if kind in ("encode", "decode") else case_name


def _case(config, op):
    key = (op, config["shapes"], config["dtype"])
    if key not in _cache:
        _cache.clear()  # one (shapes, dtype) set of inputs at a time: Cosmos shapes take GBs
        for case in benchmarking.cases(config["shapes"], config["dtype"], config["device"]):
            _cache[(_suite_name(case.name), config["shapes"], config["dtype"])] = case
    return _cache[key]


@pytest.fixture(scope="session")
def copy_bandwidth(bench_config):
    return benchmarking.copy_bandwidth(bench_config["device"])


@pytest.mark.parametrize("impl", OURS + PEERS)
@pytest.mark.parametrize("op", OPS)
def test_op(benchmark, bench_config, copy_bandwidth, op, impl):
    if impl == "torch.compile" and not bench_config["compile"]:
        pytest.skip("--no-compile")
    if impl in ("triton", "cuda"):
        if (reason := unavailable_reason(impl, torch.device(bench_config["device"]))) is not None:
            pytest.skip(reason)
    case = _case(bench_config, op)
    impls = case.impls([impl] if impl in OURS else [], with_compile=impl == "torch.compile")
    if impl not in impls:
        pytest.skip(f"{impl} is not a peer of {op} here")
    fn = impls[impl]
    for args in case.inputs[:2]:
        fn(*args)  # warm-up outside the timed region: compilation and autotuning
    calls = iter(range(10**9))
    sync = torch.cuda.synchronize if bench_config["device"] == "cuda" else (lambda: None)

    def run():
        fn(*case.inputs[next(calls) % len(case.inputs)])
        sync()

    benchmark.group = f"{op} {case.shape}"
    benchmark.pedantic(run, rounds=20, iterations=1, warmup_rounds=2)
    # Wall-clock rounds include a launch and a sync; CUDA events time the kernels alone.
    seconds = benchmarking.time_call(fn, case.inputs)
    benchmark.extra_info.update(
        op=op,
        impl=impl,
        shape=case.shape,
        dtype=str(bench_config["dtype"]),
        device_ms=seconds * 1e3,
        throughput=case.throughput(seconds),
    )
    if not case.flops:
        benchmark.extra_info["fraction_of_copy_bandwidth"] = case.bytes_moved / seconds / copy_bandwidth
