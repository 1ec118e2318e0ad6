"""Benchmark cases shared by ``cosmos-kernels bench`` and the pytest-benchmark suites in benchmarks/.

Each case builds inputs once and offers the same work three ways: our op, the plain PyTorch code a
user would write (eager), and ``torch.compile`` of that same code. Throughput is reported as GB/s of
compulsory memory traffic (each input read once, each output written once), next to the device's
measured copy bandwidth, since these ops are memory-bound.
"""

import functools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cosmos_kernels import ops, reference

# L2 is 50 MB on an H100: working sets smaller than this are rotated so each call reads cold memory.
ROTATE_BELOW_BYTES = 256 * 2**20


@dataclass
class Case:
    """One op at one shape: input sets (rotated between calls) and the functions that consume them."""

    name: str
    shape: str
    bytes_moved: int
    inputs: list[tuple[torch.Tensor, ...]]
    op: Callable[..., object]  # ours, taking backend= as a keyword
    eager: Callable[..., object]
    compiled: Callable[..., object] | None = field(default=None)

    def impls(self, backends: list[str], *, with_compile: bool = True) -> dict[str, Callable[..., object]]:
        """Ours once per backend (keyed by backend name), then the peers "eager" and "torch.compile"."""
        impls: dict[str, Callable[..., object]] = {
            backend: functools.partial(self.op, backend=backend) for backend in backends
        }
        impls["eager"] = self.eager
        if with_compile:
            if self.compiled is None:
                self.compiled = torch.compile(self.eager)
            impls["torch.compile"] = self.compiled
        return impls


def _modulate_eager(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    x_hat = F.layer_norm(x.float(), (x.shape[-1],), eps=1e-6)
    return (x_hat * (1 + scale.float()[:, None]) + shift.float()[:, None]).to(x.dtype)


def _gated_eager(
    x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    h = x.float() + gate.float()[:, None] * y.float()
    return h.to(x.dtype), _modulate_eager(h, shift, scale).to(x.dtype)


def _shape_label(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _input_sets(make: Callable[[], tuple[torch.Tensor, ...]]) -> list[tuple[torch.Tensor, ...]]:
    first = make()
    size = sum(t.numel() * t.element_size() for t in first)
    extra = min(math.ceil(ROTATE_BELOW_BYTES / size) - 1, 7)
    return [first] + [make() for _ in range(extra)]


def adaln_case(batch: int, seq: int, dim: int, dtype: torch.dtype, device: str) -> Case:
    def make() -> tuple[torch.Tensor, ...]:
        x = torch.randn(batch, seq, dim, dtype=dtype, device=device)
        shift, scale = torch.randn(2, batch, dim, dtype=dtype, device=device) * 0.1
        return x, shift, scale

    elem = torch.finfo(dtype).bits // 8
    return Case(
        name="adaln_modulate",
        shape=_shape_label((batch, seq, dim)),
        bytes_moved=2 * batch * seq * dim * elem,
        inputs=_input_sets(make),
        op=ops.adaln_modulate,
        eager=_modulate_eager,
    )


def gated_case(batch: int, seq: int, dim: int, dtype: torch.dtype, device: str) -> Case:
    def make() -> tuple[torch.Tensor, ...]:
        x, y = torch.randn(2, batch, seq, dim, dtype=dtype, device=device)
        gate, shift, scale = torch.randn(3, batch, dim, dtype=dtype, device=device) * 0.1
        return x, y, gate, shift, scale

    elem = torch.finfo(dtype).bits // 8
    return Case(
        name="gated_residual_adaln",
        shape=_shape_label((batch, seq, dim)),
        bytes_moved=4 * batch * seq * dim * elem,
        inputs=_input_sets(make),
        op=ops.gated_residual_adaln,
        eager=_gated_eager,
    )


def haar3d_case(video_shape: tuple[int, ...], dtype: torch.dtype, device: str, *, inverse: bool) -> Case:
    analysed = reference.haar3d_analysis(torch.empty(video_shape, device="meta"), 1, True)
    in_shape = tuple(analysed.shape) if inverse else video_shape
    out_numel = math.prod(video_shape if inverse else analysed.shape)

    def make() -> tuple[torch.Tensor, ...]:
        return (torch.randn(in_shape, dtype=dtype, device=device),)

    fn = ops.haar3d_synthesis if inverse else ops.haar3d_analysis
    eager = reference.haar3d_synthesis if inverse else reference.haar3d_analysis
    return Case(
        name="haar3d_synthesis" if inverse else "haar3d_analysis",
        shape=_shape_label(video_shape),
        bytes_moved=(math.prod(in_shape) + out_numel) * (torch.finfo(dtype).bits // 8),
        inputs=_input_sets(make),
        op=functools.partial(fn, levels=1, causal=True),
        eager=lambda v: eager(v, 1, True),
    )


def cases(size: str, dtype: torch.dtype, device: str) -> list[Case]:
    """``quick``: small shapes for any machine; ``cosmos``: the Cosmos-7B 121-frame 720p shapes."""
    if size == "cosmos":
        seq, dim, video = 56320, 4096, (1, 3, 121, 704, 1280)
    elif device == "cpu":
        seq, dim, video = 1024, 512, (1, 3, 9, 64, 96)
    else:
        seq, dim, video = 8192, 2048, (1, 3, 33, 256, 448)
    return [
        adaln_case(1, seq, dim, dtype, device),
        gated_case(1, seq, dim, dtype, device),
        haar3d_case(video, dtype, device, inverse=False),
        haar3d_case(video, dtype, device, inverse=True),
    ]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[..., object], inputs: list[tuple[torch.Tensor, ...]], *, reps: int = 20) -> float:
    """Median seconds of one call, inputs rotated; CUDA events on GPUs, perf_counter elsewhere."""
    device = str(inputs[0][0].device)
    for args in inputs[:2]:  # warm-up: compilation, autotuning, allocator
        fn(*args)
    _sync(device)
    times = []
    for i in range(reps):
        args = inputs[i % len(inputs)]
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(*args)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def copy_bandwidth(device: str, nbytes: int = 512 * 2**20) -> float:
    """Bytes per second of a device-to-device copy (read + write), the ceiling for these ops."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = time_call(lambda s: dst.copy_(s), [(src,)], reps=10)
    return 2 * nbytes / seconds
