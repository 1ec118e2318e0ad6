"""DiT training steps with FSDP2 and context parallelism under torchrun, then a sharded checkpoint.

    torchrun --nproc-per-node 8 examples/torchrun_fsdp_dit_step.py --model cosmos-7b --context 8
    torchrun --nproc-per-node 4 examples/torchrun_fsdp_dit_step.py --device cpu --context 2  # gloo

The ranks form a (data, context) mesh: each group of ``--context`` consecutive ranks splits one
batch's token sequence (ring attention) and shards the parameters (FSDP2), and the data groups see
different batches. The loss is a stand-in (the output's mean square); the point is the step's
communication pattern and memory. ``--save DIR`` writes a distributed checkpoint that loads at any
world size with ``load_sharded``.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from cosmos_kernels.distributed import save_sharded, shard_model
from cosmos_kernels.models.dit import build_dit


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="a build_dit config name")
    parser.add_argument("--blocks", type=int, default=None, help="override the number of blocks")
    parser.add_argument("--latent", type=int, nargs=3, default=(4, 16, 16), metavar=("T", "H", "W"))
    parser.add_argument("--text-len", type=int, default=32)
    parser.add_argument("--context", type=int, default=None, help="context-parallel degree (default: all)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK when present, else cpu")
    parser.add_argument("--save", default=None, metavar="DIR", help="write a sharded checkpoint here")
    return parser.parse_args()


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
    context = args.context or world
    if world % context:
        raise SystemExit(f"--context {context} must divide the world size {world}")
    mesh = init_device_mesh(device.type, (world // context, context), mesh_dim_names=("data", "context"))

    overrides = {} if args.blocks is None else {"num_blocks": args.blocks}
    torch.manual_seed(0)  # the same initial weights on every rank
    model = build_dit(args.model, **overrides).to(device)
    # bf16 compute on GPUs; on CPU float32, which gloo and CPU kernels handle best.
    param_dtype = torch.bfloat16 if device.type == "cuda" else None
    shard_model(model, mesh, param_dtype=param_dtype)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    c = model.config
    # Ranks of one context group must see the same batch: seed by the data index.
    gen = torch.Generator(device=device).manual_seed(mesh.get_local_rank("data"))
    frames, height, width = args.latent
    for step in range(args.steps):
        x = torch.randn(1, c.latent_channels, frames, height, width, generator=gen, device=device)
        timesteps = torch.randn(1, generator=gen, device=device)
        text = torch.randn(1, args.text_len, c.crossattn_emb_channels, generator=gen, device=device)
        start = time.perf_counter()
        loss = model(x, timesteps, text, fps=24.0).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if rank == 0:
            print(f"step {step}: loss {loss.item():.4f}, {1e3 * (time.perf_counter() - start):.1f} ms")
    if device.type == "cuda" and rank == 0:
        print(f"peak memory on rank 0: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    if args.save:
        save_sharded(model, optimizer, args.save)
        if rank == 0:
            print(f"sharded checkpoint written to {args.save}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
