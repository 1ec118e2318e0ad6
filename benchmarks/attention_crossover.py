"""Where our fused attention wins and where it loses to the fallback, to set ``backend="auto"``.

The fallback is what ``auto`` would run instead: the same norm (+ RoPE) prologue as one fused pass
(``qk_norm_rope`` on Triton for self-attention, ``F.rms_norm`` for cross-attention), then the fastest
``scaled_dot_product_attention`` backend. Both sides do the same work on the same inputs (bfloat16,
BSHD), forward and forward+backward. At the Cosmos-7B shape it also times both without the prologue
(no norms, no RoPE): the difference is what the fused prologue costs, including the backward's
recompute of q' and k' (the store-vs-recompute question).

With text padding (``k_lengths``) ``auto`` keeps our kernel, since SDPA has no per-batch key lengths;
the rows marked "k_lengths" time it against SDPA given the same keys as a boolean mask (cuDNN and the
memory-efficient kernel take one; flash does not), which is what ``auto`` could run instead.

Shapes run largest first: the Triton autotuner keys on head dim and flags, not on sequence length, so
the tiles chosen at the first (largest) shape serve the smaller ones, as in a model run.

``--ring`` times instead one ring-attention step's block kernels at Cosmos-7B's shard sizes on 2, 4
and 8 GPUs (S/P queries over S/P keys): forward with the lse, and the backward from a given out and
lse, for each kernel a block can run on (PyTorch's cuDNN and flash, our Triton).

    python benchmarks/attention_crossover.py --json crossover.json [--reps 10] [--quick] [--shapes cross,D 64]
    python benchmarks/attention_crossover.py --ring --json ring_blocks.json
"""

import argparse
import functools
import json
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from cosmos_kernels import ops
from cosmos_kernels.tools import benchmarking
from cosmos_kernels.tools.info import collect_info

SDPA = torch.nn.attention.SDPBackend
FALLBACK_SDPA = {"cudnn": SDPA.CUDNN_ATTENTION, "flash": SDPA.FLASH_ATTENTION}
MASKED_FALLBACK_SDPA = {"cudnn": SDPA.CUDNN_ATTENTION, "efficient": SDPA.EFFICIENT_ATTENTION}


def _sdpa(q, k, v, k_lengths, backend: SDPA) -> torch.Tensor:
    mask = None
    if k_lengths is not None:
        mask = (torch.arange(k.shape[1], device=k.device) < k_lengths[:, None])[:, None, None, :]
    with torch.nn.attention.sdpa_kernel([backend]):
        out = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), attn_mask=mask)
    return out.transpose(1, 2)


def _fallback(q, k, v, q_weight, k_weight, cos, sin, k_lengths, *, sdpa_backend: SDPA) -> torch.Tensor:
    if q_weight is not None and cos is not None:
        q, k = ops.qk_norm_rope(q, k, q_weight, k_weight, cos, sin, backend="triton")
    elif q_weight is not None:
        q = F.rms_norm(q, (q.shape[-1],), q_weight, eps=1e-6)
        k = F.rms_norm(k, (k.shape[-1],), k_weight, eps=1e-6)
    return _sdpa(q, k, v, k_lengths, sdpa_backend)


def _ours(q, k, v, q_weight, k_weight, cos, sin, k_lengths) -> torch.Tensor:
    return ops.attention(
        q, k, v, q_norm_weight=q_weight, k_norm_weight=k_weight, rope_cos=cos, rope_sin=sin,
        k_lengths=k_lengths, backend="triton",
    )  # fmt: skip


def _inputs(shape: dict, prologue: bool, grad: bool) -> tuple:
    seq_q, seq_k, heads, dim, grid = (shape[key] for key in ("seq_q", "seq_k", "heads", "dim", "grid"))
    batch = len(shape["lengths"]) if shape["lengths"] else 1
    device, dtype = "cuda", torch.bfloat16
    q = torch.randn(batch, seq_q, heads, dim, device=device, dtype=dtype)
    k, v = torch.randn(2, batch, seq_k, heads, dim, device=device, dtype=dtype).unbind(0)
    weights: list[torch.Tensor | None] = [None, None]
    if prologue:
        weights = list((1 + 0.1 * torch.randn(2, dim, device=device, dtype=dtype)).unbind(0))
    leaves = [t if t is None else t.contiguous().requires_grad_(grad) for t in (q, k, v, *weights)]
    tables = ops.rope3d_cos_sin(*grid, dim, device=device) if grid is not None and prologue else (None, None)
    lengths = torch.tensor(shape["lengths"], device=device) if shape["lengths"] else None
    return (*leaves, *tables, lengths)


def shapes(quick: bool, only: list[str] | None = None) -> list[dict]:
    """Rows of (label, RoPE grid or None, (Sq, Sk) of cross-attention or None, heads, dim, text lengths
    per batch element or None), largest first; ``only`` keeps the rows whose label holds one of them."""
    rows = [
        ("self 16x44x80 (Cosmos-7B 720p)", (16, 44, 80), None, 32, 128, None),
        ("self 8x44x80", (8, 44, 80), None, 32, 128, None),
        ("self 4x32x64", (4, 32, 64), None, 32, 128, None),
        ("self 2x32x64", (2, 32, 64), None, 32, 128, None),
        ("self 1x32x32", (1, 32, 32), None, 32, 128, None),
        ("cross 56320 x 512 text", None, (56320, 512), 32, 128, None),
        ("cross 56320 x 512 text, k_lengths", None, (56320, 512), 32, 128, [300]),
        ("cross 28160 x 512 text", None, (28160, 512), 32, 128, None),
        ("cross 16384 x 512 text", None, (16384, 512), 32, 128, None),
        ("cross 8192 x 512 text", None, (8192, 512), 32, 128, None),
        ("cross 8192 x 512 text, k_lengths, B 2", None, (8192, 512), 32, 128, [300, 77]),
        ("self 4x32x64, D 64", (4, 32, 64), None, 16, 64, None),
    ]
    if quick:
        rows = [rows[3], rows[4], rows[7], rows[8]]
    if only:
        rows = [row for row in rows if any(part in row[0] for part in only)]
    out = []
    for label, grid, cross, heads, dim, lengths in rows:
        seq_q, seq_k = cross if cross is not None else (math.prod(grid),) * 2
        out.append(
            {
                "label": label, "seq_q": seq_q, "seq_k": seq_k, "heads": heads, "dim": dim, "grid": grid,
                "lengths": lengths,
            }
        )  # fmt: skip
    return out


def _time(fn: Callable, args: tuple, reps: int) -> float | None:
    try:
        return benchmarking.time_call(fn, [args], reps=reps)
    except Exception as error:  # one failing backend must not end the sweep
        print(f"  failed: {type(error).__name__}: {str(error).strip().splitlines()[0][:200]}")
        return None
    finally:
        torch.cuda.empty_cache()


def ring_blocks(reps: int, console: Console) -> list[dict]:
    """Block forward and backward times per kernel, and the merge of a block into the running output, at
    the shard sizes of a ring over 2, 4 and 8 GPUs."""
    from cosmos_kernels.ops.attention_blocks import (
        attention_block,
        attention_block_backward,
        merge_attention_block,
    )

    rows = []
    scale = 128**-0.5
    for world in (2, 4, 8):
        seq = 56320 // world
        q, k, v, grad_out = (
            torch.randn(1, seq, 32, 128, device="cuda", dtype=torch.bfloat16) for _ in range(4)
        )
        for kernel in ("cudnn", "flash", "triton"):
            times: dict[str, float | None] = {"fwd": None, "bwd": None}
            times["fwd"] = _time(attention_block, (q, k, v, scale, kernel), reps)
            if times["fwd"] is not None:
                out, lse, aux = attention_block(q, k, v, scale, kernel)
                args = (grad_out, q, k, v, out, lse, aux, scale, kernel)
                times["bwd"] = _time(attention_block_backward, args, reps)
            rows.append({"world": world, "seq": seq, "kernel": kernel, "seconds": times})
            console.print(
                f"ring step at P={world} ({seq} x {seq}), {kernel}: "
                + ", ".join(f"{d} {'-' if t is None else f'{t * 1e3:.3f} ms'}" for d, t in times.items())
            )
        # Each forward step folds its block into the running float32 out and lse (in place).
        running_out = torch.zeros(1, seq, 32, 128, device="cuda")
        running_lse = torch.zeros(1, 32, seq, device="cuda")
        for backend in ("triton", "torch"):
            args = (running_out, running_lse, q, torch.zeros_like(running_lse), backend)
            merge = _time(merge_attention_block, args, reps)
            row = {"world": world, "seq": seq, "kernel": f"merge {backend}", "seconds": {"merge": merge}}
            rows.append(row)
            console.print(
                f"ring step at P={world} ({seq} x {seq}), merge on {backend}: "
                + ("-" if merge is None else f"{merge * 1e3:.3f} ms")
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write every timing here (rewritten after each shape)")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="four small shapes")
    parser.add_argument(
        "--shapes", default=None, help="comma-separated parts of row labels to run (default: all rows)"
    )
    parser.add_argument("--ring", action="store_true", help="time ring attention's block kernels instead")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("attention_crossover: needs a CUDA device")
        return 2
    console = Console(width=160)
    if args.ring:
        rows = ring_blocks(args.reps, console)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"ring_blocks": rows, "info": collect_info()}, f, indent=2, default=str)
        return 0
    results = []
    for shape in shapes(args.quick, args.shapes.split(",") if args.shapes else None):
        for backward in (False, True):
            wrap = benchmarking.with_backward if backward else (lambda fn: fn)
            direction = "fwd+bwd" if backward else "fwd"
            prologues = (True, False) if shape["label"].startswith("self 16x44x80") else (True,)
            for prologue in prologues:
                inputs = _inputs(shape, prologue, backward)
                times = {"ours": _time(wrap(_ours), inputs, args.reps)}
                candidates = MASKED_FALLBACK_SDPA if shape["lengths"] else FALLBACK_SDPA
                for name, sdpa_backend in candidates.items():
                    fn = wrap(functools.partial(_fallback, sdpa_backend=sdpa_backend))
                    times[f"fallback-{name}"] = _time(fn, inputs, args.reps)
                del inputs
                row = {**shape, "direction": direction, "prologue": prologue, "seconds": times}
                results.append(row)
                console.print(
                    f"{shape['label']} {direction}{'' if prologue else ' (no norm/RoPE)'}: "
                    + ", ".join(f"{k} {'-' if v is None else f'{v * 1e3:.3f} ms'}" for k, v in times.items())
                )
                if args.json:
                    with open(args.json, "w") as f:
                        json.dump({"results": results, "info": collect_info()}, f, indent=2, default=str)

    table = Table(title="attention: ours (fused) vs fallback (fused prologue + best SDPA), bf16, ms")
    for column in ("shape", "dir", "prologue", "ours", "best fallback", "ours / fallback", "auto"):
        table.add_column(column)
    for row in results:
        times = row["seconds"]
        ours = times["ours"]
        fallbacks = {k: v for k, v in times.items() if k != "ours" and v is not None}
        best = min(fallbacks, key=fallbacks.get, default=None)
        ratio = None if ours is None or best is None else ours / fallbacks[best]
        table.add_row(
            row["label"],
            row["direction"],
            ("norm+RoPE" if row["grid"] else "norm") if row["prologue"] else "none",
            "-" if ours is None else f"{ours * 1e3:.3f}",
            "-" if best is None else f"{fallbacks[best] * 1e3:.3f} ({best})",
            "-" if ratio is None else f"{ratio:.3f}",
            "-" if ratio is None else ("ours" if ratio <= 1 else "fallback"),
        )
    console.print(table)
    tiles = benchmarking.autotuned_configs()
    console.print("autotuned configs by kernel and key:", tiles)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "tiles": tiles, "info": collect_info()}, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
