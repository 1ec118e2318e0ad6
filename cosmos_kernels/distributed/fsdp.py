"""FSDP2 for the DiT and distributed checkpoints that load at any world size.

``shard_model`` applies ``torch.distributed.fsdp.fully_shard`` to each transformer block and then to
the root, so that one block's parameters are gathered at a time (and prefetched while the previous
block computes). ``save_sharded``/``load_sharded`` write and read ``torch.distributed.checkpoint``
directories: every rank writes only its shards, and a checkpoint saved at one world size loads at
another (DCP reshards on load).
"""

import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from cosmos_kernels.distributed._collective import check_group
from cosmos_kernels.distributed.sequence import context_parallel


def _blocks(op: str, model: nn.Module) -> list[nn.Module]:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleDict | nn.ModuleList | nn.Sequential) or len(blocks) == 0:
        raise TypeError(
            f"{op}: model must have its transformer blocks in model.blocks (a non-empty ModuleDict, "
            f"ModuleList or Sequential, as models.dit.DiT does), got {type(blocks).__name__}"
        )
    return list(blocks.values()) if isinstance(blocks, nn.ModuleDict) else list(blocks)


def _check_dtype(op: str, name: str, dtype: object) -> None:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{op}: {name} must be a floating torch.dtype or None, got {dtype!r}")


def shard_model(
    model: nn.Module,
    mesh: DeviceMesh,
    *,
    param_dtype: torch.dtype | None = torch.bfloat16,
    reduce_dtype: torch.dtype | None = torch.float32,
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Shard ``model``'s parameters with FSDP2, one unit per block of ``model.blocks`` plus the root.

    Args:
        model: a module with its transformer blocks in ``model.blocks`` (the DiT).
        mesh: a 1-D mesh (data parallel: parameters sharded over all its ranks, gradients averaged), or a
            2-D mesh (data, context): the model is made context parallel over the second dim
            (:func:`context_parallel` with ``mesh.get_group(1)``), parameters are sharded over that dim
            and replicated over the first (HSDP), and gradients are summed over the context ranks
            (each holds a share of its sequence's gradient) and averaged over the data ranks.
        param_dtype: the dtype parameters are gathered in and the forward/backward compute in; None
            keeps the parameters' own dtype.
        reduce_dtype: the dtype gradients are reduced in; None: the gradients' dtype.
        reshard_after_forward: free each block's gathered parameters after its forward (and gather
            them again for the backward), trading communication for memory.
    Returns:
        the same module, now an ``FSDPModule`` whose parameters are DTensors.
    """
    op = "shard_model"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{op}: model must be a torch.nn.Module, got {type(model).__name__}")
    blocks = _blocks(op, model)
    if not isinstance(mesh, DeviceMesh):
        raise TypeError(
            f"{op}: mesh must be a torch.distributed.device_mesh.DeviceMesh, got {type(mesh).__name__}"
        )
    if mesh.ndim not in (1, 2):
        raise ValueError(f"{op}: mesh must be 1-D (data) or 2-D (data, context), got {mesh.ndim}-D")
    if mesh.ndim == 2 and mesh.mesh_dim_names is None:
        raise ValueError(
            f"{op}: a 2-D mesh needs dim names, e.g. init_device_mesh(device, (data, context), "
            'mesh_dim_names=("data", "context"))'
        )
    _check_dtype(op, "param_dtype", param_dtype)
    _check_dtype(op, "reduce_dtype", reduce_dtype)
    if not isinstance(reshard_after_forward, bool):
        raise TypeError(
            f"{op}: reshard_after_forward must be a bool, got {type(reshard_after_forward).__name__}"
        )
    if mesh.ndim == 2:
        context_parallel(model, mesh.get_group(1))
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    nccl = dist.get_backend(mesh.get_group(0)) == dist.Backend.NCCL
    for module in [*blocks, model]:
        fully_shard(module, mesh=mesh, reshard_after_forward=reshard_after_forward, mp_policy=policy)
        if mesh.ndim == 2:
            # FSDP divides by every rank of the mesh; the context ranks' gradients are shares to add up.
            module.set_gradient_divide_factor(float(mesh.size(0)))
            if not nccl:
                # A divide factor makes FSDP reduce with PREMUL_SUM, which only NCCL has: sum, then divide.
                module.set_force_sum_reduction_for_comms(True)
    return model


def _check_checkpoint_args(op: str, model: nn.Module, optimizer: object, path: object) -> None:
    check_group(op, None)
    if not isinstance(model, FSDPModule):
        raise TypeError(f"{op}: model must be sharded with shard_model first, got a {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"{op}: optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
        )
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{op}: path must be a str or os.PathLike, got {type(path).__name__}")


def save_sharded(model: nn.Module, optimizer: torch.optim.Optimizer | None, path: str | os.PathLike) -> None:
    """Write the sharded model (and optimizer) state to the directory ``path``; every rank must call.

    Each rank writes its own shards (plus metadata on rank 0), nothing is gathered in one place.
    """
    _check_checkpoint_args("save_sharded", model, optimizer, path)
    model_state, optim_state = get_state_dict(model, [] if optimizer is None else optimizer)
    state = {"model": model_state}
    if optimizer is not None:
        state["optimizer"] = optim_state
    dcp.save(state, checkpoint_id=path)


def load_sharded(model: nn.Module, optimizer: torch.optim.Optimizer | None, path: str | os.PathLike) -> None:
    """Load a :func:`save_sharded` checkpoint into ``model`` (and ``optimizer``), in place.

    The model must be sharded (``shard_model``) the way it will run; the checkpoint may come from any
    world size or mesh. Every rank must call.
    """
    op = "load_sharded"
    _check_checkpoint_args(op, model, optimizer, path)
    if not os.path.isdir(path):
        raise ValueError(
            f"{op}: path must be a checkpoint directory written by save_sharded, got {str(path)!r}"
        )
    # The current (sharded) state dicts say which shards this rank needs; DCP fills them in place.
    model_state, optim_state = get_state_dict(model, [] if optimizer is None else optimizer)
    state = {"model": model_state}
    if optimizer is not None:
        state["optimizer"] = optim_state
    dcp.load(state, checkpoint_id=path)
    set_state_dict(
        model,
        [] if optimizer is None else optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state.get("optimizer", {}),
    )
