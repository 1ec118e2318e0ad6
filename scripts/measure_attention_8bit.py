"""Measure 8-bit attention's accuracy on CPU: the emulation against exact float64 attention at Cosmos-like
statistics (the figures in the README's "8-bit attention" section), and the shipped tiny world model's
Video2World figures at each precision.

    PYTHONPATH=. python scripts/measure_attention_8bit.py

The statistics are those of tests/test_attention_8bit.py (``cosmos_like``): q and k with a component
every token shares (3x the noise in k), RMSNorm gains 1 + |N(0, 0.3)|, Cosmos's 3D RoPE tables.
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_attention_8bit import cosmos_like, exact

from cosmos_kernels import ops
from cosmos_kernels.models.tiny_world import (
    load_tiny_world,
    tiny_world_manifest,
    tiny_world_text_encoder,
)
from cosmos_kernels.pipelines import SamplingOptions, Video2WorldPipeline
from cosmos_kernels.pipelines.evaluation import evaluate_video2world
from cosmos_kernels.reference.attention_8bit import PRECISIONS

# (name, B, grid for self-attention or (Sq, Sk, k_lengths) for cross, heads, D)
CASES = [
    ("self 1x1x67", 2, (1, 1, 67), 2, 64),
    ("self 4x16x16", 1, (4, 16, 16), 2, 128),
    ("self 4x32x32", 1, (4, 32, 32), 2, 128),
    ("cross 1024x512", 2, (1024, 512, [512, 77]), 2, 128),
    ("self 4x16x16, plain N(0, 1) q, k, v", 1, (4, 16, 16), 2, 128),
]


def relative(out: torch.Tensor, ref: torch.Tensor, rows: torch.Tensor) -> float:
    out, ref = out[rows].double(), ref[rows]
    return ((out - ref).norm() / ref.norm()).item()


def attention_accuracy() -> None:
    print("| case | dtype | qk-int8 | qk-int8-pv-fp8 | lse max abs error |")
    print("|---|---|---|---|---|")
    for name, batch, shape, heads, dim in CASES:
        for dtype in (torch.float32, torch.bfloat16):
            if len(shape) == 3 and isinstance(shape[2], list):
                seq_q, seq_k, lengths = shape
                (q, k, v), kwargs = cosmos_like(batch, seq_q, seq_k, heads, dim, dtype, seed=1)
                kwargs["k_lengths"] = torch.tensor(lengths)
            else:
                seq = shape[0] * shape[1] * shape[2]
                (q, k, v), kwargs = cosmos_like(batch, seq, seq, heads, dim, dtype)
                if "plain" in name:
                    # No shared component, no norm: the output is a near-uniform average of
                    # zero-mean values, small against the FP8 errors of each v and P.
                    gen = torch.Generator().manual_seed(2)
                    q, k, v = (torch.randn(q.shape, generator=gen).to(dtype) for _ in range(3))
                    kwargs = {}
                kwargs["rope_cos"], kwargs["rope_sin"] = ops.rope3d_cos_sin(*shape, dim, fps=24.0)
            ref, lse_ref = exact(q, k, v, kwargs)
            rows = torch.isfinite(lse_ref).transpose(1, 2)
            errors, lse_error = [], 0.0
            for precision in PRECISIONS:
                out, lse = ops.attention(q, k, v, **kwargs, precision=precision, return_lse=True)
                errors.append(relative(out, ref, rows))
                finite = torch.isfinite(lse_ref)
                lse_error = max(lse_error, (lse[finite].double() - lse_ref[finite]).abs().max().item())
            dt = str(dtype).removeprefix("torch.")
            print(f"| {name}, D={dim} | {dt} | {errors[0]:.2e} | {errors[1]:.2e} | {lse_error:.1e} |")


def video2world() -> None:
    torch.set_num_threads(1)
    manifest = tiny_world_manifest()
    options = SamplingOptions(
        num_steps=manifest["figures"]["sampler_steps"], guidance=manifest["guidance"]["video2world"]
    )
    print("| precision | PSNR (dB) | ball position error (px) | misses | seconds |")
    print("|---|---|---|---|---|")
    for precision in (None, *PRECISIONS):
        net, tokenizer, mean, std = load_tiny_world("video2world")
        pipeline = Video2WorldPipeline(
            net, tiny_world_text_encoder(), tokenizer, latent_mean=mean, latent_std=std,
            attention_precision=precision,
        )  # fmt: skip
        start = time.perf_counter()
        s = evaluate_video2world(pipeline, range(10_000, 10_064), options=options)
        elapsed = time.perf_counter() - start
        print(
            f"| {precision or 'exact'} | {s.psnr:.3f} | {s.position_error:.3f} | {s.misses}/{s.balls} "
            f"| {elapsed:.1f} |"
        )


if __name__ == "__main__":
    attention_accuracy()
    video2world()
