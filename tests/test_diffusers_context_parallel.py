"""context_parallel on diffusers' Cosmos transformer (patched by apply_cosmos_kernels): the output of
every rank and the sum of the ranks' gradients equal one rank's, on gloo at world sizes 2 and 3, with
token counts that do not split evenly, for ring, Ulysses and hybrid attention, Cosmos-1.0 (learnable
position embedding) and Predict2 (per-frame timesteps -> per-token modulation). In float32 (diffusers'
learnable position embedding refuses float64): equal up to the rounding of reordered sums.
"""

import copy

import pytest
import torch
import torch.distributed as dist
from _dist_utils import run_distributed
from torch.distributed.device_mesh import init_device_mesh

pytest.importorskip("diffusers", reason="the diffusers integration needs diffusers installed")

from cosmos_kernels import distributed

ATOL = 2e-5
HEADS = 6  # divisible by 2 and 3: Ulysses splits heads over the ranks


def _build(variant: str):
    import diffusers
    import test_diffusers_integration as tdi
    from diffusers.models.transformers import transformer_cosmos

    if not hasattr(transformer_cosmos, "transforms"):  # spawned ranks: see test_diffusers_integration
        transformer_cosmos.transforms = tdi.TRANSFORMS_STAND_IN
    config = dict(
        in_channels=4 if variant == "cosmos1" else 5,
        out_channels=4,
        num_attention_heads=HEADS,
        attention_head_dim=16,
        num_layers=2,
        mlp_ratio=2.0,
        text_embed_dim=16,
        adaln_lora_dim=8,
        max_size=(8, 16, 16),
        extra_pos_embed_type="learnable" if variant == "cosmos1" else None,
    )
    torch.manual_seed(0)  # every rank builds the same weights
    model = tdi._randomize(diffusers.CosmosTransformer3DModel(**config))
    # 5 frames of 7 x 1 patches: 35 tokens, uneven over 2 and over 3 ranks.
    torch.manual_seed(3)
    batch, frames = 2, 5
    inputs = {
        "hidden_states": torch.randn(batch, 4, frames, 14, 2, dtype=torch.float32),
        "encoder_hidden_states": torch.randn(batch, 6, 16, dtype=torch.float32),
        "padding_mask": torch.zeros(1, 1, 14, 2, dtype=torch.float32),
        "fps": 24,
    }
    if variant == "cosmos1":
        inputs["timestep"] = torch.rand(batch, dtype=torch.float32)
    else:
        inputs["timestep"] = torch.rand(batch, 1, frames, 1, 1, dtype=torch.float32)
        inputs["condition_mask"] = (torch.rand(batch, 1, frames, 14, 2) > 0.5).float()
    return model, inputs


def _run(model, inputs):
    x = inputs["hidden_states"].clone().requires_grad_()
    out = model(**(inputs | {"hidden_states": x}), return_dict=False)[0]
    torch.manual_seed(4)
    (out * torch.randn_like(out)).sum().backward()
    return out.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}


def _assert_exact(ours, theirs, what):
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    err = (ours - theirs).abs().max().item() / max(1.0, theirs.abs().max().item())
    assert err < ATOL, f"{what}: max abs error {err:.3g}"


def _layouts(world: int) -> dict[str, dict]:
    # The hybrid's mesh: ring over dim 0, Ulysses over dim 1 (2 = 2 x 1 ring-only, 3 = 1 x 3 Ulysses-only).
    ring, ulysses = (2, 1) if world == 2 else (1, 3)
    mesh = init_device_mesh("cpu", (ring, ulysses), mesh_dim_names=("ring", "ulysses"))
    hybrid = {
        "attention": "hybrid",
        "ulysses_group": mesh.get_group("ulysses"),
        "ring_group": mesh.get_group("ring"),
    }
    return {"ring": {"attention": "ring"}, "ulysses": {"attention": "ulysses"}, "hybrid": hybrid}


def cp_workers(rank, world):
    from cosmos_kernels.integrations.diffusers import apply_cosmos_kernels, remove_cosmos_kernels

    group = dist.group.WORLD
    for variant in ("cosmos1", "predict2"):
        model, inputs = _build(variant)
        reference = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
        out_ref, x_grad_ref, grads_ref = _run(reference, inputs)
        for label, kwargs in _layouts(world).items():
            what = f"{variant}, {label}, world {world}"
            patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
            distributed.context_parallel(patched, group, **kwargs)
            out, x_grad, grads = _run(patched, inputs)
            _assert_exact(out, out_ref, f"output ({what})")
            dist.all_reduce(x_grad, group=group)
            _assert_exact(x_grad, x_grad_ref, f"input gradient summed over ranks ({what})")
            for name, grad in grads.items():
                dist.all_reduce(grad, group=group)
                _assert_exact(grad, grads_ref[name], f"gradient of {name} summed over ranks ({what})")
            # Re-applying keeps the context-parallel settings; removing drops them.
            apply_cosmos_kernels(patched, backend="torch")
            assert patched.cp_group is group
            remove_cosmos_kernels(patched)
            assert not hasattr(patched, "cp_group")


@pytest.mark.parametrize("world", [2, 3])
def test_context_parallel_diffusers_transformer_matches_one_rank(world):
    run_distributed(cp_workers, world, timeout=240.0)


def test_context_parallel_needs_the_patched_transformer():
    model, _ = _build("cosmos1")
    with pytest.raises(TypeError, match="apply_cosmos_kernels"):
        distributed.context_parallel(model, None)
