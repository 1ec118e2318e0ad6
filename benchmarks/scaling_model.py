"""Modelled efficiency of context-parallel attention for Cosmos-7B at 121 frames 720p, on 2-64 GPUs.

Run ``python benchmarks/scaling_model.py`` (``--markdown`` for the table in docs/DISTRIBUTED.md). The
model starts from attention times measured on one H100 (docs/DESIGN.md: cuDNN SDPA at S = 56,320, 32 heads
x 128, bf16: forward 83.6 ms, forward+backward 317 ms) and adds what splitting the sequence over P GPUs
costs. Efficiency = T_1 / (P * T_P): 100 % means P GPUs are P times faster than one.

Assumptions (each a parameter below):
- Attention time is proportional to Sq * Sk * heads at the measured single-GPU rate, divided by the
  wave-quantization efficiency of the kernel's grid (tiles of 128 query rows per head over 132 SMs),
  plus a fixed launch/tail cost per kernel call (``--launch-us``).
- Links: NVLink 900 GB/s per GPU is both directions together, so 450 GB/s each way, within a node of 8;
  InfiniBand 400 Gb/s per GPU = 50 GB/s each way across nodes. Transfers reach ``--link-efficiency``
  (80 %) of that, plus a fixed latency per message.
- Ring attention (as implemented in cosmos_kernels.distributed): P steps; per step each GPU sends one
  K/V block (2 * S/P * H * D bf16) to the next GPU while computing on the current one. The backward
  sends the K/V block again plus the dK/dV accumulators (float32, 2x the bytes of K/V). A step costs
  max(compute, communication); the last forward step has nothing to send. The log-sum-exp merge (one
  Triton pass) and the gradient accumulations are element-wise passes over (S/P, H, D) float32 tensors
  at the measured 2.93 TB/s copy bandwidth, not fused into the attention kernels. When a ring spans
  nodes, every step waits for its slowest hop, one IB link.
- Ulysses: an all-to-all turns sequence shards into head shards for q, k, v and back for out (4
  tensors forward; the backward moves dout, dq, dk, dv: 4 more), not overlapped with compute; degree
  <= heads (32). Each GPU keeps 1/P of its data and sends the rest: (P-8)/P of it over its IB link when
  the group spans nodes, the rest over NVLink.
- Hybrid: Ulysses over u GPUs inside a node (heads split u ways), ring over r = P/u groups: each ring
  step moves H/u heads of S/r tokens per GPU, and all 8 NICs of a node carry ring traffic at once.
- Only attention is modelled: the DiT's other layers (projections, MLP) split perfectly over the
  sequence and need no communication under context parallelism, so they only dilute the overheads.
"""

import argparse
import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Setup:
    seq: int = 56_320  # 121 frames 720p: 16 x 88 x 160 latents, 2x2 patches -> 16 * 44 * 80 tokens
    heads: int = 32
    head_dim: int = 128
    bytes_per_elem: int = 2  # bf16 q, k, v, out
    grad_accum_bytes: int = 4  # ring backward's dK/dV accumulators travel in float32
    fwd_ms: float = 83.6  # one H100, cuDNN SDPA, S = 56,320
    fwd_bwd_ms: float = 317.0
    sms: int = 132
    tile_rows: int = 128  # query rows per CTA of the flash kernels
    launch_us: float = 15.0  # fixed cost per attention kernel call (launch, tail of the last wave)
    hbm_gbps: float = 2930.0  # measured device copy bandwidth
    # Bytes moved by the element-wise work per ring step, in float32 passes over (S/P, H, D): forward,
    # the one-pass Triton merge reads the running float32 out and the block's bf16 out and writes the
    # running out (10 bytes/elem; PyTorch's cast + lerp took 18); backward: dq += (10), dK, dV into the
    # float32 accumulators (2 x 10).
    merge_passes: float = 2.5
    grad_passes: float = 7.5
    nvlink_gbps: float = 450.0  # per direction, per GPU
    ib_gbps: float = 50.0  # 400 Gb/s per GPU, per direction
    link_efficiency: float = 0.8
    nvlink_latency_us: float = 10.0
    ib_latency_us: float = 20.0
    gpus_per_node: int = 8


def _wave_efficiency(s: Setup, heads: int, rows: int) -> float:
    """Share of SM time doing work when ``heads * ceil(rows / tile_rows)`` tiles run in waves of ``sms``."""
    tiles = heads * math.ceil(rows / s.tile_rows)
    return tiles / (math.ceil(tiles / s.sms) * s.sms)


def _attention_ms(s: Setup, total_ms: float, heads: int, rows_q: int, rows_k: int) -> float:
    """One kernel call over ``heads`` heads, rows_q queries, rows_k keys, scaled from the S x S figure."""
    work = (rows_q * rows_k * heads) / (s.seq * s.seq * s.heads)
    # The measured time already includes the full problem's (tiny) quantization loss.
    quantization = _wave_efficiency(s, s.heads, s.seq) / _wave_efficiency(s, heads, rows_q)
    return total_ms * work * quantization + s.launch_us / 1e3


def _link(s: Setup, crosses_nodes: bool) -> tuple[float, float]:
    """(GB/s achieved, latency ms) of one GPU's link to its ring neighbour."""
    if crosses_nodes:
        return s.ib_gbps * s.link_efficiency, s.ib_latency_us / 1e3
    return s.nvlink_gbps * s.link_efficiency, s.nvlink_latency_us / 1e3


def _ring_ms(s: Setup, ring: int, heads: int, rows: int, crosses_nodes: bool) -> dict[str, float]:
    """Forward and forward+backward ms of a ring of ``ring`` GPUs, each with ``rows`` tokens x ``heads``."""
    gbps, latency = _link(s, crosses_nodes)
    block = rows * heads * s.head_dim
    kv_ms = 2 * block * s.bytes_per_elem / gbps / 1e6 + latency
    dkv_ms = 2 * block * s.grad_accum_bytes / gbps / 1e6
    elementwise_ms = block * 4 / (s.hbm_gbps * 1e6)
    fwd_step = _attention_ms(s, s.fwd_ms, heads, rows, rows) + s.merge_passes * elementwise_ms
    bwd_step = _attention_ms(s, s.fwd_bwd_ms - s.fwd_ms, heads, rows, rows) + s.grad_passes * elementwise_ms
    if ring == 1:  # one block: no merge, no accumulation
        fwd = _attention_ms(s, s.fwd_ms, heads, rows, rows)
        return {
            "fwd": fwd,
            "fwd_bwd": fwd + _attention_ms(s, s.fwd_bwd_ms - s.fwd_ms, heads, rows, rows),
            "comm_ratio": 0.0,
        }
    fwd = fwd_step + (ring - 1) * max(fwd_step, kv_ms)
    # Backward: ring steps each prefetch K/V and pass dK/dV on; one more dK/dV hop brings them home.
    bwd = (ring - 1) * max(bwd_step, kv_ms + dkv_ms) + max(bwd_step, dkv_ms + latency)
    return {"fwd": fwd, "fwd_bwd": fwd + bwd, "comm_ratio": (kv_ms + dkv_ms) / bwd_step}


def _all_to_all_ms(s: Setup, group: int, elems_per_gpu: int, tensors: int) -> float:
    """``tensors`` all-to-alls over ``group`` GPUs, each GPU holding ``elems_per_gpu`` of each tensor."""
    if group == 1:
        return 0.0
    nbytes = elems_per_gpu * s.bytes_per_elem
    local = min(group, s.gpus_per_node)
    on_node = nbytes * (local - 1) / group / (s.nvlink_gbps * s.link_efficiency) / 1e6
    off_node = nbytes * (group - local) / group / (s.ib_gbps * s.link_efficiency) / 1e6
    latency = (s.ib_latency_us if group > local else s.nvlink_latency_us) / 1e3
    return tensors * (max(on_node, off_node) + latency)


def hybrid(s: Setup, gpus: int, ulysses: int) -> dict[str, float]:
    """Ulysses over ``ulysses`` GPUs (heads split), ring over gpus / ulysses groups (sequence split)."""
    ring = gpus // ulysses
    heads, rows = s.heads // ulysses, s.seq // ring
    # Ulysses groups are u consecutive GPUs; a ring neighbour is u GPUs on. Beyond one node some hop
    # of the ring crosses InfiniBand, and every ring step waits for its slowest hop.
    crosses_nodes = gpus > s.gpus_per_node and ring > 1
    times = _ring_ms(s, ring, heads, rows, crosses_nodes)
    a2a_fwd = _all_to_all_ms(s, ulysses, s.seq // gpus * s.heads * s.head_dim, 4)
    fwd = times["fwd"] + a2a_fwd
    fwd_bwd = times["fwd_bwd"] + 2 * a2a_fwd
    return {
        "fwd_eff": s.fwd_ms / (gpus * fwd),
        "eff": s.fwd_bwd_ms / (gpus * fwd_bwd),
        "fwd_bwd_ms": fwd_bwd,
        "comm_ratio": times["comm_ratio"],
    }


def table(s: Setup, gpu_counts: list[int]) -> list[dict[str, object]]:
    rows = []
    for gpus in gpu_counts:
        ring = hybrid(s, gpus, 1)
        ulysses = hybrid(s, gpus, gpus) if gpus <= s.heads and s.heads % gpus == 0 else None
        options = [
            (u, hybrid(s, gpus, u))
            for u in range(1, min(gpus, s.heads) + 1)
            if gpus % u == 0 and s.heads % u == 0
        ]
        best_u, best = max(options, key=lambda item: item[1]["eff"])
        kv_mb = 2 * (s.seq // gpus) * s.heads * s.head_dim * s.bytes_per_elem / 1e6
        rows.append(
            {
                "gpus": gpus,
                "kv_mb": kv_mb,
                "ring_fwd": ring["fwd_eff"],
                "ring": ring["eff"],
                "ring_ratio": ring["comm_ratio"],
                "ulysses": None if ulysses is None else ulysses["eff"],
                "best": f"{best_u} x {gpus // best_u}",
                "best_eff": best["eff"],
                "best_ms": best["fwd_bwd_ms"],
            }
        )
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--gpus", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--link-efficiency", type=float, default=Setup.link_efficiency)
    parser.add_argument("--launch-us", type=float, default=Setup.launch_us)
    parser.add_argument(
        "--dkv-bytes", type=int, default=Setup.grad_accum_bytes, help="2: bf16 dK/dV in flight"
    )
    parser.add_argument(
        "--fused-merge", action="store_true", help="no element-wise passes (merge fused into the kernels)"
    )
    args = parser.parse_args()
    setup = Setup(
        link_efficiency=args.link_efficiency, launch_us=args.launch_us, grad_accum_bytes=args.dkv_bytes
    )
    if args.fused_merge:
        setup = replace(setup, merge_passes=0.0, grad_passes=0.0)
    header = [
        "GPUs",
        "K/V block per ring step",
        "ring fwd",
        "ring fwd+bwd",
        "ring bwd comm/compute",
        "Ulysses fwd+bwd",
        "best Ulysses x ring",
        "its fwd+bwd",
        "attention fwd+bwd per GPU",
    ]
    lines = []
    for row in table(setup, args.gpus):
        lines.append(
            [
                str(row["gpus"]),
                f"{row['kv_mb']:.0f} MB",
                _pct(row["ring_fwd"]),
                _pct(row["ring"]),
                f"{row['ring_ratio']:.2f}",
                _pct(row["ulysses"]),
                str(row["best"]),
                _pct(row["best_eff"]),
                f"{row['best_ms']:.1f} ms",
            ]
        )
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        for line in [header, *lines]:
            print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
