"""Ring attention, sequence sharding, FSDP2 and distributed checkpoints on CPU gloo ranks, in float64.

Every multi-process test spawns its ranks once and runs several checks in them (spawning is the slow
part); each is bounded in time by tests/_dist_utils.py. Exactness is against one process running the
whole sequence / the unsharded model.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _dist_utils import run_distributed
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
from torch.distributed.device_mesh import init_device_mesh

from cosmos_kernels import distributed, ops
from cosmos_kernels.models.dit import build_dit
from cosmos_kernels.tools import profiling

ATOL = 1e-12
# conftest.py sets TRITON_INTERPRET=1 on machines without a GPU; the spawned ranks inherit it.
HAS_TRITON = importlib.util.find_spec("triton") is not None and not torch.cuda.is_available()


def attention_inputs(seq, heads=4, dim=8, batch=2, seed=0):
    """Whole-sequence q, k, v (B, S, H, D), norm weights and RoPE tables, the same on every rank."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, seq, heads, dim, generator=gen, dtype=torch.float64) for _ in range(3))
    weights = [1 + 0.3 * torch.randn(dim, generator=gen, dtype=torch.float64) for _ in range(2)]
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * torch.rand(dim // 2, generator=gen)
    grad_out = torch.randn(batch, seq, heads, dim, generator=gen, dtype=torch.float64)
    return q, k, v, weights, (angles.cos(), angles.sin()), grad_out


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def assert_exact(ours, theirs, what, atol=ATOL):
    """Equal up to float64 rounding: max |ours - theirs| relative to max |theirs| (or to 1 if smaller)."""
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    err = (ours - theirs).abs().max().item() / max(1.0, theirs.abs().max().item())
    assert err < atol, f"{what}: max abs error {err:.3g} relative to max(1, max |expected|)"


def check_ring_matches_whole(group, sizes, variant, attend=None, heads=4):
    """``attend(q, k, v, **kwargs)`` (default: ring_attention over group) on this rank's shard of the
    sequence split over group == the rows of ops.attention on the whole sequence."""
    if attend is None:

        def attend(*args, **kwargs):
            return distributed.ring_attention(*args, group, **kwargs)

    q, k, v, weights, (cos, sin), grad_out = attention_inputs(sum(sizes), heads)
    kwargs = {
        "qk_rope": {
            "q_norm_weight": weights[0],
            "k_norm_weight": weights[1],
            "rope_cos": cos,
            "rope_sin": sin,
        },
        "k_norm": {"k_norm_weight": weights[1]},
        "plain": {"softmax_scale": 0.7},
    }[variant]
    whole = leaves(q, k, v)
    names = [n for n in ("q_norm_weight", "k_norm_weight") if n in kwargs]
    whole_w = dict(zip(names, leaves(*(kwargs[n] for n in names)), strict=True))
    ref = ops.attention(*whole, **{**kwargs, **whole_w}, backend="torch")
    ref.backward(grad_out)

    def mine(t, dim=1):
        return distributed.shard_sequence(t, group, dim, sizes=sizes)

    local = leaves(mine(q), mine(k), mine(v))
    local_w = dict(zip(names, leaves(*(kwargs[n] for n in names)), strict=True))
    local_kwargs = {**kwargs, **local_w}
    if "rope_cos" in kwargs:
        local_kwargs["rope_cos"], local_kwargs["rope_sin"] = mine(cos, 0), mine(sin, 0)
    out = attend(*local, **local_kwargs, backend="torch")
    assert_exact(out, mine(ref.detach()), f"{variant} forward")
    out.backward(mine(grad_out))
    for name, ours, theirs in zip("qkv", local, whole, strict=True):
        assert_exact(ours.grad, mine(theirs.grad), f"{variant} grad {name}")
    for name in names:
        # Each rank's norm-weight gradient is its shard's share: the sum over ranks is the whole's.
        share = local_w[name].grad.clone()
        dist.all_reduce(share, group=group)
        assert_exact(share, whole_w[name].grad, f"{variant} grad {name}")
    return out


def check_gather(group, sizes):
    x = torch.randn(2, sum(sizes), 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    part = distributed.shard_sequence(x, group, sizes=sizes).detach().requires_grad_()
    whole = distributed.gather_sequence(part, group)
    assert_exact(whole, x, "gather_sequence")
    weight = torch.arange(whole.numel(), dtype=torch.float64).view(whole.shape)
    (whole * weight).sum().backward()
    assert_exact(part.grad, distributed.shard_sequence(weight, group, sizes=sizes), "gather_sequence grad")


def expect_error(call, words, error=ValueError):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert all(word in message for word in words), message


def check_bad_input_raises_everywhere(rank, group, sizes):
    """A mismatch on one rank raises on every rank, and the group stays usable afterwards."""
    q, k, v, _, (cos, sin), _ = attention_inputs(sum(sizes))

    def mine(t, dim=1):
        return distributed.shard_sequence(t, group, dim, sizes=sizes)

    ql, kl, vl = mine(q), mine(k), mine(v)
    # Rank 1 has a different head dim: each rank's input is fine alone, only the comparison finds it.
    odd = (ql[..., :4], kl[..., :4], vl[..., :4]) if rank == 1 else (ql, kl, vl)
    expect_error(lambda: distributed.ring_attention(*odd, group), ["same B, H, D", "(2, 11, 4, 4)"])
    # Rank 0 passes the whole sequence's RoPE tables instead of its own rows.
    tables = (cos, sin) if rank == 0 else (mine(cos, 0), mine(sin, 0))
    words = ["rope_cos", "own shard"] if rank == 0 else ["rank(s) [0]"]
    expect_error(
        lambda: distributed.ring_attention(ql, kl, vl, group, rope_cos=tables[0], rope_sin=tables[1]), words
    )
    # Shards of different dtypes.
    typed = [t.float() for t in (ql, kl, vl)] if rank == 2 else (ql, kl, vl)
    expect_error(lambda: distributed.ring_attention(*typed, group), ["dtypes", "torch.float32"])
    wide = torch.zeros(2, 3, 4) if rank == 0 else torch.zeros(2, 3, 5)
    expect_error(lambda: distributed.gather_sequence(wide, group), ["same dims", "(2, 3, 4)"])
    expect_error(lambda: distributed.shard_sequence(q, group, sizes=[1, 2, 3]), ["sizes", "summing"])
    expect_error(lambda: distributed.shard_sequence(q, group, dim=4), ["dim"])
    expect_error(
        lambda: distributed.ulysses_attention(ql[:, :, :2], kl[:, :, :2], vl[:, :, :2], group), ["divide"]
    )
    distributed.ring_attention(ql, kl, vl, group)  # still in step after all that


def check_ulysses_and_hybrid(world, sizes):
    heads = 3 if world == 3 else 4  # Ulysses needs the group size to divide H
    group = dist.group.WORLD

    def ulysses(*args, **kwargs):
        return distributed.ulysses_attention(*args, group, **kwargs)

    check_ring_matches_whole(group, sizes, "qk_rope", ulysses, heads)
    check_ring_matches_whole(group, sizes, "plain", ulysses, heads)
    if world == 4:
        # Ulysses inside rank pairs {0, 1}, {2, 3}, ring across the pairs {0, 2}, {1, 3}.
        mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("ring", "ulysses"))

        def hybrid(*args, **kwargs):
            return distributed.ulysses_attention(
                *args, mesh.get_group("ulysses"), ring_group=mesh.get_group("ring"), **kwargs
            )

        check_ring_matches_whole(group, sizes, "qk_rope", hybrid)


def check_ring_with_triton_blocks(group, sizes):
    """The Triton kernels (interpreted on CPU) as the ring's blocks: forward, and backward from the
    ring's global out and lse, against the float64 whole, to float32's tolerance."""
    q, k, v, weights, tables, grad_out = (
        t if not isinstance(t, torch.Tensor) else t.float()
        for t in attention_inputs(sum(sizes), heads=2, dim=32, batch=1)
    )
    weights, tables = [w.float() for w in weights], [t.float() for t in tables]
    whole = leaves(q.double(), k.double(), v.double())
    ref = ops.attention(*whole, rope_cos=tables[0], rope_sin=tables[1], backend="torch")
    ref.backward(grad_out.double())

    def mine(t, dim=1):
        return distributed.shard_sequence(t, group, dim, sizes=sizes)

    local = leaves(mine(q), mine(k), mine(v))
    out = distributed.ring_attention(
        *local, group, rope_cos=mine(tables[0], 0), rope_sin=mine(tables[1], 0), backend="triton"
    )
    out.backward(mine(grad_out))
    for what, ours, theirs in [
        ("out", out, ref),
        *zip("qkv", (t.grad for t in local), (t.grad for t in whole), strict=True),
    ]:
        err = ((ours.double() - mine(theirs.detach())).norm() / mine(theirs.detach()).norm()).item()
        assert err < 1e-5, f"triton ring {what}: relative error {err:.3g}"


def ring_steps(q, k, v, grad_out, sizes, kernel, scale, merge_backend):
    """What ring attention's forward and backward do with the blocks of k, v of the given sizes, in one
    process: the per-block kernel calls and the merge, without the messages."""
    from cosmos_kernels.ops.attention_blocks import (
        attention_block,
        attention_block_backward,
        merge_attention_block,
    )

    blocks = list(zip(k.split(sizes, 1), v.split(sizes, 1), strict=True))
    compute_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    out, lse, aux = attention_block(q, *blocks[0], scale, kernel)
    out = out.to(compute_dtype)
    for block in blocks[1:]:
        block_out, block_lse, _ = attention_block(q, *block, scale, kernel)
        lse = merge_attention_block(out, lse, block_out, block_lse, merge_backend)
    out = out.to(q.dtype)
    grads = [attention_block_backward(grad_out, q, *block, out, lse, aux, scale, kernel) for block in blocks]
    grad_q = sum(g[0].to(compute_dtype) for g in grads)
    grad_k, grad_v = (torch.cat([g[i] for g in grads], 1) for i in (1, 2))
    return out, grad_q, grad_k, grad_v


BLOCK_KERNELS = [
    pytest.param("cpu", "torch", id="cpu-torch"),
    *(
        pytest.param(
            "cuda", kernel, id=f"cuda-{kernel}",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")],
        )
        for kernel in ("cudnn", "flash", "triton")
    ),
]  # fmt: skip


@pytest.mark.parametrize(("device", "kernel"), BLOCK_KERNELS)
def test_ring_blocks_merge_to_the_whole_attention(device, kernel):
    """Ragged K/V blocks through the ring's kernel calls and merge give the whole attention's out and
    gradients: for PyTorch's cuDNN and flash kernels (lse reshapes, global out/lse in the backward) as
    for ours. The float64 whole is the reference; half precision to its tolerance."""
    from conftest import assert_close

    sizes = [37, 200, 91]
    dtypes = [torch.float64] if device == "cpu" else [torch.bfloat16, torch.float16]
    if kernel in ("cudnn", "flash"):
        probe = torch.zeros(1, 64, 2, 64, device=device, dtype=torch.bfloat16).transpose(1, 2)
        params = torch.backends.cuda.SDPAParams(probe, probe, probe, None, 0.0, False, False)
        usable = getattr(torch.backends.cuda, f"can_use_{kernel}_attention")
        if not usable(params):
            pytest.skip(f"PyTorch's {kernel} attention is not available here")
    for dtype in dtypes:
        q, k, v, _, _, grad_out = attention_inputs(sum(sizes), heads=2, dim=64, batch=2)
        q = q[:, :150]
        grad_out = grad_out[:, :150]
        whole = leaves(q, k, v)
        ref = ops.attention(*whole, softmax_scale=0.3, backend="torch")
        ref.backward(grad_out)
        q, k, v, grad_out = (t.to(device, dtype).contiguous() for t in (q, k, v, grad_out))
        ours = ring_steps(q, k, v, grad_out, sizes, kernel, 0.3, "torch" if device == "cpu" else "triton")
        expected = (ref, *(t.grad for t in whole))
        for what, mine, theirs in zip(("out", "grad q", "grad k", "grad v"), ours, expected, strict=True):
            assert_close(mine.cpu(), theirs, dtype, f"{kernel} ring blocks, {what}, {dtype}")


@pytest.mark.parametrize("kernel", ["cudnn", "flash"])
def test_sdpa_ring_blocks_run_on_meta_tensors(kernel):
    """PyTorch's meta kernels take the ring's aten calls without a GPU: argument order, the lse reshape
    (cuDNN's trailing unit dim) and the BSHD layout of every output and gradient."""
    from cosmos_kernels.ops.attention_blocks import attention_block, attention_block_backward

    q = torch.empty(2, 100, 4, 64, device="meta", dtype=torch.bfloat16)
    k, v = (torch.empty(2, 37, 4, 64, device="meta", dtype=torch.bfloat16) for _ in range(2))
    out, lse, aux = attention_block(q, k, v, 0.1, kernel)
    assert out.shape == q.shape and out.is_contiguous() and out.dtype == q.dtype
    assert lse.shape == (2, 4, 100) and lse.dtype == torch.float32
    grads = attention_block_backward(out, q, k, v, out, lse, aux, 0.1, kernel)
    for grad, like in zip(grads, (q, k, v), strict=True):
        assert grad.shape == like.shape and grad.is_contiguous() and grad.dtype == like.dtype


MERGE_BACKENDS = [
    pytest.param(
        "cpu", id="cpu-triton",
        marks=pytest.mark.skipif(not HAS_TRITON, reason="needs triton, interpreted (no GPU here)"),
    ),
    pytest.param(
        "cuda", id="cuda-triton",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")],
    ),
]  # fmt: skip


@pytest.mark.parametrize("device", MERGE_BACKENDS)
def test_triton_ring_merge_matches_torch(device):
    """The one-pass Triton merge of a block into the running (out, lse) == PyTorch's lerp/logaddexp, for
    blocks in every half and full precision, ragged rows and a head dim that is not a power of two."""
    from conftest import assert_close

    from cosmos_kernels.ops.attention_blocks import merge_attention_block

    gen = torch.Generator().manual_seed(0)
    batch, seq, heads, dim = 2, 45, 3, 48
    out = torch.randn(batch, seq, heads, dim, generator=gen).to(device)
    lse = (3 * torch.randn(batch, heads, seq, generator=gen)).to(device)
    block_lse = (3 * torch.randn(batch, heads, seq, generator=gen)).to(device)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        block = torch.randn(batch, seq, heads, dim, generator=gen).to(device, dtype)
        want_out, got_out = out.clone(), out.clone()
        want_lse = merge_attention_block(want_out, lse.clone(), block, block_lse, "torch")
        got_lse = merge_attention_block(got_out, lse.clone(), block, block_lse, "triton")
        assert_close(got_out, want_out, torch.float32, f"merged out, {dtype} block")
        assert_close(got_lse, want_lse, torch.float32, f"merged lse, {dtype} block")


def check_named_backend_is_honoured(group, sizes):
    """backend="torch" runs the prologue and every block on the reference, even where auto would run
    Triton ($COSMOS_KERNELS_BACKEND=triton here): no Triton kernel may launch."""
    from cosmos_kernels.triton import attention as triton_attention
    from cosmos_kernels.triton import qk_norm_rope as triton_prologue

    def refuse(*args, **kwargs):
        raise AssertionError("a Triton kernel launched under backend='torch'")

    patched = [
        (triton_prologue, "prologue_forward"),
        (triton_prologue, "prologue_backward"),
        (triton_attention, "attention_forward"),
        (triton_attention, "attention_backward"),
        (triton_attention, "merge_block"),
    ]
    saved = [getattr(module, name) for module, name in patched]
    previous = os.environ.get("COSMOS_KERNELS_BACKEND")
    os.environ["COSMOS_KERNELS_BACKEND"] = "triton"
    try:
        for module, name in patched:
            setattr(module, name, refuse)
        q, k, v, weights, (cos, sin), grad_out = (
            t.float() if isinstance(t, torch.Tensor) else [u.float() for u in t]
            for t in attention_inputs(sum(sizes), heads=len(sizes))
        )
        kwargs = {"q_norm_weight": weights[0], "k_norm_weight": weights[1]}
        ref = ops.attention(q, k, v, **kwargs, rope_cos=cos, rope_sin=sin, backend="torch")

        def mine(t, dim=1):
            return distributed.shard_sequence(t, group, dim, sizes=sizes)

        tables = {"rope_cos": mine(cos, 0), "rope_sin": mine(sin, 0)}
        for attend in (distributed.ring_attention, distributed.ulysses_attention):
            local = leaves(mine(q), mine(k), mine(v))
            out = attend(*local, group, **kwargs, **tables, backend="torch")
            out.backward(mine(grad_out))
            assert (out - mine(ref)).abs().max() < 1e-5, attend.__name__
    finally:
        for (module, name), original in zip(patched, saved, strict=True):
            setattr(module, name, original)
        if previous is None:
            del os.environ["COSMOS_KERNELS_BACKEND"]
        else:
            os.environ["COSMOS_KERNELS_BACKEND"] = previous


def ring_workers(rank, world, sizes, bad_input):
    group = dist.group.WORLD
    assert distributed.shard_sizes(24, group) == [len(t) for t in torch.arange(24).tensor_split(world)]
    for variant in ("qk_rope", "k_norm", "plain"):
        check_ring_matches_whole(group, sizes, variant)
    check_ulysses_and_hybrid(world, sizes)
    if HAS_TRITON and world == 3:
        check_ring_with_triton_blocks(group, sizes)
        check_named_backend_is_honoured(group, sizes)
    check_gather(group, sizes)
    if bad_input:
        check_bad_input_raises_everywhere(rank, group, sizes)


def test_ring_attention_uneven_shards_world3():
    run_distributed(ring_workers, 3, [5, 11, 8], True)


def test_ring_attention_world4_with_single_token_shard():
    run_distributed(ring_workers, 4, [1, 6, 3, 2], False)


def tiny_dit(seed=0):
    """The tiny DiT in float64 with every weight random (Cosmos's init makes each block the identity)."""
    model = build_dit("tiny").double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.2 + name.endswith("norm.weight"))
    return model


def dit_batch(model, index, frames=3, height=6, width=10):
    """Latents of 3 x 3 x 5 = 45 tokens (uneven over 2 and 4 ranks), timesteps, text; seeded by index."""
    gen = torch.Generator().manual_seed(10 + index)
    c = model.config
    x = torch.randn(2, c.latent_channels, frames, height, width, generator=gen, dtype=torch.float64)
    text = torch.randn(2, 5, c.crossattn_emb_channels, generator=gen, dtype=torch.float64)
    return x, torch.randn(2, generator=gen, dtype=torch.float64), text


def dit_loss(model, batch):
    x, timesteps, text = batch
    return model(x, timesteps, text, fps=24.0).square().mean()


def train_step(model, optimizer, batch):
    optimizer.zero_grad()
    dit_loss(model, batch).backward()
    optimizer.step()


def check_dit_context_parallel_matches_one_rank(group, layouts=None):
    """Same output on every rank as on one; parameter gradients summed over the group == one rank's;
    for each of ``layouts`` ({label: context_parallel kwargs}; default ring and Ulysses attention)."""
    layouts = layouts or {"ring": {"attention": "ring"}, "ulysses": {"attention": "ulysses"}}
    reference = tiny_dit()
    batch = dit_batch(reference, 0)
    out_ref = reference(*batch, fps=24.0)
    out_ref.square().mean().backward()
    for attention, kwargs in layouts.items():
        model = distributed.context_parallel(tiny_dit(), group, **kwargs)
        out = model(*batch, fps=24.0)
        assert_exact(out, out_ref.detach(), f"context-parallel DiT output ({attention})")
        out.square().mean().backward()
        for name, param in model.named_parameters():
            share = param.grad.clone()
            dist.all_reduce(share, group=group)
            assert_exact(share, dict(reference.named_parameters())[name].grad, f"grad {name} ({attention})")


def check_dit_fsdp_step(mesh, data_rank, data_world, dtype=torch.float64):
    """One FSDP2 SGD step of the DiT (no casts) == one unsharded step on every data rank's batch."""
    reference = tiny_dit().to(dtype)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    ref_opt.zero_grad()
    batches = [[t.to(dtype) for t in dit_batch(reference, d)] for d in range(data_world)]
    ref_loss = sum(dit_loss(reference, batch) for batch in batches) / data_world
    ref_loss.backward()
    ref_opt.step()

    model = distributed.shard_model(tiny_dit().to(dtype), mesh, param_dtype=None, reduce_dtype=None)
    train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), batches[data_rank])
    for name, param in model.named_parameters():
        expected = dict(reference.named_parameters())[name].detach()
        atol = ATOL if dtype == torch.float64 else 1e-5
        assert_exact(param.full_tensor(), expected, f"param {name} ({dtype})", atol)


def check_default_mixed_precision(mesh, rank):
    """bf16 compute / fp32 reduce (the defaults) runs forward and backward, bf16-close to float64."""
    model = distributed.shard_model(tiny_dit().float(), mesh)
    x, timesteps, text = dit_batch(model, rank)
    loss = model(x, timesteps, text, fps=24.0).float().square().mean()
    exact = dit_loss(tiny_dit(), dit_batch(model, rank))
    assert abs(loss.item() - exact.item()) < 5e-2 * exact.item(), (loss.item(), exact.item())
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def full_state(model, optimizer):
    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_checkpoint(rank, world, directory):
    """A DiT trained one AdamW step at this world size, saved sharded; its full state kept on the side."""
    model = distributed.shard_model(tiny_dit(), init_device_mesh("cpu", (world,)), param_dtype=None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    train_step(model, optimizer, dit_batch(model, rank))
    distributed.save_sharded(model, optimizer, f"{directory}/ckpt")
    expected = full_state(model, optimizer)
    if rank == 0:
        torch.save(expected, f"{directory}/full.pt")


def load_workers(rank, world, directory):
    model = distributed.shard_model(tiny_dit(seed=1), init_device_mesh("cpu", (world,)), param_dtype=None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    distributed.load_sharded(model, optimizer, f"{directory}/ckpt")
    model_state, optim_state = full_state(model, optimizer)
    if rank == 0:  # the full state dicts (with cpu_offload) are assembled on rank 0 only
        want_model, want_optim = torch.load(f"{directory}/full.pt", weights_only=False)
        assert model_state.keys() == want_model.keys()
        for name in want_model:
            assert torch.equal(model_state[name], want_model[name]), name
        assert optim_state["state"].keys() == want_optim["state"].keys()
        for name, moments in want_optim["state"].items():
            for key, value in moments.items():
                got = torch.as_tensor(optim_state["state"][name][key])
                assert torch.equal(got, torch.as_tensor(value)), (name, key)
    train_step(model, optimizer, dit_batch(model, rank))  # and it trains on


def check_profile(rank, directory, *extra):
    parser = argparse.ArgumentParser()
    profiling.add_profile_arguments(parser)
    args = parser.parse_args(
        [
            *extra,
            "--latent",
            "2",
            "4",
            "6",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--blocks",
            "1",
            "--trace-dir",
            directory,
            "--json",
            f"{directory}/p.json",
        ]
    )
    assert profiling.run_profile(args) == 0
    dist.barrier()
    report = json.loads(Path(f"{directory}/p.json").read_text())
    world = dist.get_world_size()
    assert (
        report["tokens"] == 12
        and report["blocks"] == 1
        and [r["rank"] for r in report["ranks"]] == [*range(world)]
    )
    top = report["top"]
    assert 0 < len(top) <= 12 and all(row["ms_per_step"] > 0 and 0 < row["share"] <= 1 for row in top), top
    assert [row["ms_per_step"] for row in top] == sorted((row["ms_per_step"] for row in top), reverse=True)
    assert all(r["step_ms"] > 0 and r["comm_ms"] > 0 for r in report["ranks"]), report
    assert json.loads(Path(report["ranks"][rank]["trace"]).read_text())["traceEvents"]


def dit_workers(rank, world, directory):
    if world == 2:
        check_dit_context_parallel_matches_one_rank(dist.group.WORLD)
        mesh = init_device_mesh("cpu", (world,))
        check_dit_fsdp_step(mesh, rank, world)
        check_default_mixed_precision(mesh, rank)
        check_profile(rank, directory)
        save_checkpoint(rank, world, directory)
    else:
        # (data, context) = (2, 2): ranks {0, 1} and {2, 3} each split one batch's sequence.
        mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("data", "context"))
        check_dit_fsdp_step(mesh, rank // (world // 2), 2)
        # All four ranks on one sequence: the gradient divide factor (1) is not the context size (4).
        check_default_mixed_precision(
            init_device_mesh("cpu", (1, world), mesh_dim_names=("data", "context")), 0
        )
        check_dit_hybrid_context_parallel(world)
        check_profile(rank, directory, "--cp-attention", "hybrid", "--ulysses-size", "2")


def check_dit_hybrid_context_parallel(world):
    """The DiT split over 4 ranks as Ulysses inside rank pairs {0, 1}, {2, 3} and ring across them ==
    one rank; groups that do not match the shard order raise on every rank."""
    mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("ring", "ulysses"))
    groups = {"ulysses_group": mesh.get_group("ulysses"), "ring_group": mesh.get_group("ring")}
    hybrid = {"attention": "hybrid", **groups}
    check_dit_context_parallel_matches_one_rank(dist.group.WORLD, {"hybrid": hybrid})
    # Swapped, every rank's Ulysses group holds cp ranks that are not one contiguous run.
    swapped = {"ulysses_group": groups["ring_group"], "ring_group": groups["ulysses_group"]}
    expect_error(
        lambda: distributed.context_parallel(tiny_dit(), None, attention="hybrid", **swapped), ["cp_group"]
    )
    expect_error(
        lambda: distributed.context_parallel(tiny_dit(), dist.group.WORLD, attention="hybrid", **swapped),
        ["cp rank = ring rank * 2 + Ulysses rank", "init_device_mesh"],
    )
    expect_error(
        lambda: distributed.context_parallel(tiny_dit(), dist.group.WORLD, attention="ring", **groups),
        ["neither"],
    )


def test_tiny_dit_world2_and_its_checkpoint_loads_at_world3(tmp_path):
    """Context parallel == one rank, FSDP2 steps, profile, a checkpoint; then that checkpoint at world 3."""
    run_distributed(dit_workers, 2, str(tmp_path))
    run_distributed(load_workers, 3, str(tmp_path))


def test_tiny_dit_fsdp_on_data_x_context_mesh_world4(tmp_path):
    run_distributed(dit_workers, 4, str(tmp_path))


def test_overlapped_fraction():
    assert profiling.overlapped_fraction([(0, 10)], [(5, 20)]) == 0.5
    assert profiling.overlapped_fraction([(0, 4), (2, 6), (10, 12)], [(1, 3), (5, 11)]) == 0.5
    assert profiling.overlapped_fraction([], [(0, 1)]) == 1.0


def test_bad_input_without_a_process_group():
    q = torch.zeros(1, 4, 2, 8)
    expect_error(lambda: distributed.ring_attention(q, q, q, None), ["group", "init_process_group"])
    expect_error(lambda: distributed.gather_sequence(q, None), ["group", "init_process_group"])
    expect_error(lambda: distributed.shard_sequence(q, None), ["group", "init_process_group"])
    expect_error(lambda: distributed.context_parallel(nn.Linear(2, 2), None), ["cp_group"], TypeError)
    model = build_dit("tiny")
    expect_error(lambda: distributed.context_parallel(model, None, attention="x"), ["ulysses"], ValueError)
    expect_error(lambda: distributed.shard_model(build_dit("tiny"), "cpu"), ["mesh", "DeviceMesh"], TypeError)
    expect_error(lambda: distributed.shard_model(nn.Linear(2, 2), None), ["model.blocks"], TypeError)


def test_scaling_model_table_is_the_documented_one():
    """docs/DISTRIBUTED.md shows what benchmarks/scaling_model.py computes, and the in-node target holds."""
    root = Path(__file__).resolve().parent.parent
    script = root / "benchmarks" / "scaling_model.py"
    table = subprocess.run(
        [sys.executable, str(script), "--markdown"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert table.strip() in (root / "docs" / "DISTRIBUTED.md").read_text()
    spec = importlib.util.spec_from_file_location("scaling_model", script)
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    rows = model.table(model.Setup(), [2, 4, 8])
    assert all(row["best_eff"] >= 0.9 for row in rows), rows
