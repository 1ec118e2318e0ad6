"""On a GPU: one Cosmos-7B DiT block (random weights, 16x44x80 = 56,320 tokens, 512 text tokens) at each
attention precision, its output against the same block in float32 with exact attention, and its time.

    python benchmarks/attention_8bit_block.py [--grid 16x44x80] [--json out.json]

Reported per precision: the relative error of the block's output against float32; how far it moves
from the exact bf16 block's output, relative to the block's update (output - input, what the block adds
to the residual stream; the output itself is mostly the input); and the median of 5 CUDA-event timed
forwards in bf16 after 2 warm-ups.
"""

import argparse
import json

import torch

from cosmos_kernels import ops
from cosmos_kernels.nn import GeneralDITTransformerBlock
from cosmos_kernels.nn.attention import Attention
from cosmos_kernels.reference.attention_8bit import PRECISIONS


def relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


def median_ms(fn, reps: int = 5) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="16x44x80")
    parser.add_argument("--json", default=None)
    parser.add_argument("--device", default="cuda", help="cpu: a smoke test of the script, untimed")
    args = parser.parse_args()
    device = args.device
    grid = tuple(int(n) for n in args.grid.split("x"))
    seq = grid[0] * grid[1] * grid[2]
    torch.manual_seed(0)
    block = GeneralDITTransformerBlock(4096, 1024, 32, "FA-CA-MLP", 4.0, 256).to(device)
    for name, p in block.named_parameters():
        if name.endswith(("to_q.1.weight", "to_k.1.weight")):
            p.copy_(1.0 + 0.3 * torch.randn_like(p).abs())  # RMSNorm gains away from 1, as trained ones
    x = torch.randn(1, seq, 4096, device=device)
    emb = torch.randn(1, 4096, device=device)
    lora = 0.1 * torch.randn(1, 3 * 4096, device=device)
    context = torch.randn(1, 512, 1024, device=device)
    cos, sin = ops.rope3d_cos_sin(*grid, 128, device=device)
    # The float32 reference sees the bf16 block's inputs and weights exactly: only the arithmetic differs.
    x, emb, lora, context = (t.bfloat16().float() for t in (x, emb, lora, context))
    for p in block.parameters():
        p.copy_(p.bfloat16().float())
    ref = block(x, emb, lora, context, cos, sin)
    block = block.to(torch.bfloat16)
    inputs = [t.to(torch.bfloat16) for t in (x, emb, lora, context)]
    results = []
    exact_out = block(*inputs, cos, sin)
    for precision in (None, *PRECISIONS):
        for module in block.modules():
            if isinstance(module, Attention):
                module.attention_precision = precision
        out = block(*inputs, cos, sin)
        row = {
            "precision": precision or "exact",
            "block output rel error vs fp32": relative(out, ref),
            # The bf16 output's own rounding is ~4% of the update: the 8-bit path's share is measured
            # against the exact bf16 block instead.
            "|out - exact bf16 out| / |fp32 update|": (
                (out.double() - exact_out.double()).norm() / (ref - x).double().norm()
            ).item(),
            "bf16 block fwd ms": median_ms(lambda: block(*inputs, cos, sin)) if device == "cuda" else None,
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            name = torch.cuda.get_device_name() if device == "cuda" else device
            json.dump({"grid": grid, "device": name, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
