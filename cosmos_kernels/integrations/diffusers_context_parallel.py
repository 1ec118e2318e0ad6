"""Context parallelism for diffusers' ``CosmosTransformer3DModel``, through forward hooks.

``apply_cosmos_kernels`` gives a Cosmos transformer the two attributes
``cosmos_kernels.distributed.context_parallel`` sets (``cp_group``, ``cp_attention``) and the hooks
below, which do nothing while ``cp_group`` is None. Once it is set, every rank runs diffusers' forward
on the whole input up to the first block (patch embedding, RoPE tables, timestep embedding: cheap and
replicated), and then:

- the first block's pre-hook takes this rank's contiguous shard of the tokens (``shard_sequence``,
  uneven shards allowed); every block's pre-hook takes the shard of what comes in per token: the RoPE
  tables, the extra position embedding, Predict2's per-token modulation, ControlNet residuals;
- the self-attention processor runs ``cp_attention`` (ring, Ulysses or the hybrid) on the shards;
  cross-attention needs no exchange (queries are local, the text is whole on every rank);
- the final norm and projection run on the shard, and a hook on the projection gathers the sequence
  (``gather_sequence``), so diffusers' unpatchify sees the whole sequence and every rank returns the
  whole output.

Every parameter is used either on the whole replicated input before the split (its gradient reaches
only this rank's rows) or on the shard after it, so each rank's parameter gradients are its share:
summed over the group they are the one-rank gradients, as for our GeneralDIT.
"""

import functools
import inspect
from typing import Any

import torch
from torch import nn

from cosmos_kernels.distributed import gather_sequence, shard_sequence

Tensor = torch.Tensor
HOOKS_ATTRIBUTE = "_cosmos_kernels_cp_hooks"
# Block arguments that hold one row per token (B, S, ...): sharded before every block.
_TOKEN_ARGUMENTS = ("extra_pos_emb", "controlnet_residual", "latents")
# Modulation inputs: per token (B, S, D) with per-frame timesteps, else per sample (B, D), not sharded.
_MODULATION_ARGUMENTS = ("embedded_timestep", "temb")


def _shard(t: Any, group: Any, dim: int = 1) -> Any:
    return shard_sequence(t, group, dim=dim) if isinstance(t, Tensor) else t


def _shard_modulation(t: Any, group: Any) -> Any:
    return _shard(t, group) if isinstance(t, Tensor) and t.dim() == 3 else t


def _block_pre_hook(model: nn.Module, first: bool, block: nn.Module, args: tuple, kwargs: dict):
    processor = block.attn1.processor
    if getattr(processor, "cp_attention", None) is not model.cp_attention:
        processor.cp_attention = model.cp_attention
    group = model.cp_group
    if group is None:
        return None
    bound = inspect.signature(block.forward).bind(*args, **kwargs)
    values = bound.arguments
    if first:
        values["hidden_states"] = _shard(values["hidden_states"], group)
    for name in _TOKEN_ARGUMENTS:
        if name in values:
            values[name] = _shard(values[name], group)
    for name in _MODULATION_ARGUMENTS:
        if name in values:
            values[name] = _shard_modulation(values[name], group)
    if values.get("image_rotary_emb") is not None:
        values["image_rotary_emb"] = tuple(_shard(t, group, dim=0) for t in values["image_rotary_emb"])
    return bound.args, bound.kwargs


def _final_norm_pre_hook(model: nn.Module, norm: nn.Module, args: tuple, kwargs: dict):
    if model.cp_group is None:
        return None
    bound = inspect.signature(norm.forward).bind(*args, **kwargs)
    for name in _MODULATION_ARGUMENTS:
        if name in bound.arguments:
            bound.arguments[name] = _shard_modulation(bound.arguments[name], model.cp_group)
    return bound.args, bound.kwargs


def _projection_hook(model: nn.Module, projection: nn.Module, args: tuple, output: Tensor):
    if model.cp_group is None:
        return None
    return gather_sequence(output, model.cp_group, dim=1)


def install(model: nn.Module, cp_group: Any = None, cp_attention: Any = None) -> None:
    """Give a CosmosTransformer3DModel ``cp_group``/``cp_attention`` and the hooks that act on them."""
    blocks = list(model.transformer_blocks)
    handles = [
        block.register_forward_pre_hook(
            functools.partial(_block_pre_hook, model, index == 0), with_kwargs=True
        )
        for index, block in enumerate(blocks)
    ]
    handles.append(
        model.norm_out.register_forward_pre_hook(
            functools.partial(_final_norm_pre_hook, model), with_kwargs=True
        )
    )
    handles.append(model.proj_out.register_forward_hook(functools.partial(_projection_hook, model)))
    model.__dict__[HOOKS_ATTRIBUTE] = handles
    model.cp_group, model.cp_attention = cp_group, cp_attention


def uninstall(model: nn.Module) -> tuple[Any, Any]:
    """Remove the hooks and attributes; returns the (cp_group, cp_attention) that were set."""
    for handle in model.__dict__.pop(HOOKS_ATTRIBUTE, []):
        handle.remove()
    state = (model.__dict__.pop("cp_group", None), model.__dict__.pop("cp_attention", None))
    for block in model.transformer_blocks:
        processor = block.attn1.processor
        if hasattr(processor, "cp_attention"):
            processor.cp_attention = None
    return state
