"""Ring attention across GPUs under torchrun: check it against one GPU's attention, then time it.

    torchrun --nproc-per-node 8 examples/torchrun_ring_attention.py --seq 56320
    torchrun --nproc-per-node 2 examples/torchrun_ring_attention.py --seq 1000 --device cpu  # gloo
    torchrun --nnodes 2 --nproc-per-node 8 ... examples/torchrun_ring_attention.py --seq 56320 \
        --attention hybrid   # Ulysses inside each node, ring across the nodes

``--attention`` picks ring (default), Ulysses, or their hybrid over an (nodes, --ulysses-size) mesh.

Every rank builds the same whole q, k, v (B, S, H, D) from one seed, keeps its contiguous shard
(``shard_sequence``; uneven when S is not a multiple of the world size) and runs ``ring_attention``
forward and backward with QK-RMSNorm and 3D RoPE as in the DiT. With ``--check`` each rank also runs
``ops.attention`` on the whole sequence and reports the largest difference of its rows of the output
and of its shard's gradients (needs the whole problem to fit on one GPU). Then it times
forward+backward and prints every rank's time next to the ideal 1/P of the one-GPU time.
"""

import argparse
import os
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from cosmos_kernels import ops
from cosmos_kernels.distributed import ring_attention, shard_sequence, ulysses_attention


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq", type=int, default=16_384, help="whole sequence length S")
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK when present, else cpu")
    parser.add_argument("--iters", type=int, default=5, help="timed forward+backward passes")
    parser.add_argument("--check", action="store_true", help="compare with one-GPU attention first")
    parser.add_argument("--attention", choices=["ring", "ulysses", "hybrid"], default="ring")
    parser.add_argument(
        "--ulysses-size", type=int, default=None, help="hybrid: ranks per Ulysses group (default: a node)"
    )
    return parser.parse_args()


def fwd_bwd(
    fn: Callable[..., torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    weights: list[torch.Tensor],
    tables: tuple[torch.Tensor, torch.Tensor],
    grad: torch.Tensor,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """out of ``fn`` with the norm weights and RoPE tables, and the gradients of q, k, v and the weights."""
    leaves = [t.detach().requires_grad_() for t in (q, k, v, *weights)]
    q, k, v, qw, kw = leaves
    out = fn(q, k, v, q_norm_weight=qw, k_norm_weight=kw, rope_cos=tables[0], rope_sin=tables[1])
    out.backward(grad)
    return out.detach(), [t.grad for t in leaves]


def main() -> None:
    args = parse_args()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device is None:
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    group = dist.group.WORLD
    dtype = getattr(torch, args.dtype)

    gen = torch.Generator(device=device).manual_seed(0)
    shape = (1, args.seq, args.heads, args.head_dim)
    q, k, v, grad = (torch.randn(shape, generator=gen, device=device, dtype=dtype) for _ in range(4))
    weights = [
        1 + 0.1 * torch.randn(args.head_dim, generator=gen, device=device, dtype=dtype) for _ in range(2)
    ]
    angles = torch.arange(args.seq, device=device)[:, None] * torch.rand(
        args.head_dim // 2, generator=gen, device=device
    )
    tables = (angles.cos(), angles.sin())

    def mine(t: torch.Tensor, dim: int = 1) -> torch.Tensor:
        return shard_sequence(t, group, dim).contiguous()

    local = [mine(t) for t in (q, k, v)]
    local_tables = (mine(tables[0], 0), mine(tables[1], 0))

    if args.attention == "hybrid":
        size = args.ulysses_size or int(os.environ.get("LOCAL_WORLD_SIZE", world))
        mesh = init_device_mesh(device.type, (world // size, size), mesh_dim_names=("ring", "ulysses"))

    def ring(*a: torch.Tensor, **kw: torch.Tensor) -> torch.Tensor:
        if args.attention == "ulysses":
            return ulysses_attention(*a, group, **kw)
        if args.attention == "hybrid":
            return ulysses_attention(*a, mesh.get_group("ulysses"), ring_group=mesh.get_group("ring"), **kw)
        return ring_attention(*a, group, **kw)

    if args.check:
        whole_out, whole_grads = fwd_bwd(ops.attention, q, k, v, weights, tables, grad)
        out, grads = fwd_bwd(ring, *local, weights, local_tables, mine(grad))
        errors = {"out": (out - mine(whole_out)).abs().max().item()}
        for name, ours, theirs in zip("qkv", grads[:3], whole_grads[:3], strict=True):
            errors[f"d{name}"] = (ours - mine(theirs)).abs().max().item()
        for name, ours, theirs in zip(("dq_norm", "dk_norm"), grads[3:], whole_grads[3:], strict=True):
            dist.all_reduce(ours)  # each rank holds its shard's share of the norm weights' gradient
            errors[name] = (ours - theirs).abs().max().item()
        print(f"rank {rank}: max |ring - one GPU|: " + ", ".join(f"{n} {e:.2e}" for n, e in errors.items()))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fwd_bwd(ring, *local, weights, local_tables, mine(grad))  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(args.iters):
        fwd_bwd(ring, *local, weights, local_tables, mine(grad))
    sync()
    ring_ms = (time.perf_counter() - start) / args.iters * 1e3
    times = [None] * world
    dist.all_gather_object(times, (rank, local[0].shape[1], ring_ms))
    if rank == 0:
        one_ms = None
        if args.check or world == 1:
            sync()
            start = time.perf_counter()
            for _ in range(args.iters):
                fwd_bwd(ops.attention, q, k, v, weights, tables, grad)
            sync()
            one_ms = (time.perf_counter() - start) / args.iters * 1e3
        for r, tokens, ms in times:
            print(f"rank {r}: {tokens} tokens, {args.attention} attention fwd+bwd {ms:.2f} ms")
        if one_ms is not None:
            slowest = max(ms for _, _, ms in times)
            print(
                f"one device, whole sequence: {one_ms:.2f} ms; ideal on {world}: {one_ms / world:.2f} ms; "
                f"efficiency {100 * one_ms / (world * slowest):.0f} %"
            )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
