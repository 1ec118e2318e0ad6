"""Training checkpoints: one directory per saved step.

Single process::

    model.safetensors    the network (``net.*``) and the uncertainty net (``logvar.*``), Cosmos's keys
    ema.safetensors      the EMA of the network (``net.*``): the weights to sample with
    trainer_state.pt     optimizer, LR scheduler, stage and step, RNG state, the config (torch.save)

Under FSDP2 the weights and optimizer go to ``sharded/`` (``distributed.save_sharded``: every rank
writes its own shards, and the checkpoint loads at any world size) and the EMA to ``ema_sharded/``
(``torch.distributed.checkpoint``); ``trainer_state.pt`` holds the rest. A directory is written under
a temporary name and renamed when complete, so a crash never leaves a half-written checkpoint.
"""

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn

from cosmos_kernels import distributed
from cosmos_kernels.training.ema import EMA, check_state_keys

Tensor = torch.Tensor
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "trainer_state.pt"
SHARDED_DIR = "sharded"
EMA_SHARDED_DIR = "ema_sharded"
STEP_PREFIX = "step_"


def checkpoint_name(step: int) -> str:
    """The directory name of the checkpoint after ``step`` optimizer steps (sorts by step)."""
    return f"{STEP_PREFIX}{step:08d}"


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint with the highest step under ``root`` (a run's ``checkpoints/``), or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(STEP_PREFIX) and p.name[len(STEP_PREFIX) :].isdigit()
    ]
    return max(found, key=lambda p: int(p.name[len(STEP_PREFIX) :]), default=None)


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _rank() -> int:
    return dist.get_rank() if _is_distributed() else 0


def save_checkpoint(
    directory: str | os.PathLike[str],
    module: nn.Module,
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    state: Mapping[str, Any],
    *,
    sharded: bool = False,
) -> Path:
    """Write a checkpoint to ``directory`` (see the module docstring) and return its path.

    ``state`` is the trainer's own state (step, stage, scheduler, ...), saved with the optimizer
    state in ``trainer_state.pt`` (single process) or beside the sharded optimizer. Under FSDP2
    (``sharded``) every rank must call.
    """
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    if _rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    if sharded:
        dist.barrier()
        distributed.save_sharded(module, optimizer, tmp / SHARDED_DIR)
        dcp.save({"ema": ema.state_dict()}, checkpoint_id=tmp / EMA_SHARDED_DIR)
        trainer_state = {**state, "format": "sharded"}
    else:
        tensors = {key: value.detach().contiguous() for key, value in module.state_dict().items()}
        safetensors.torch.save_file(tensors, tmp / MODEL_FILE, metadata={"format": "pt"})
        shadows = {f"net.{key}": value.contiguous() for key, value in ema.state_dict().items()}
        safetensors.torch.save_file(shadows, tmp / EMA_FILE, metadata={"format": "pt"})
        trainer_state = {**state, "format": "single", "optimizer": optimizer.state_dict()}
    if _rank() == 0:
        torch.save(trainer_state, tmp / STATE_FILE)
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)
    if sharded:
        dist.barrier()
    return directory


def load_trainer_state(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``trainer_state.pt`` of a checkpoint directory; ValueError when it is not one."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise ValueError(f"{directory} is not a training checkpoint (no {STATE_FILE} in it)")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(
    directory: str | os.PathLike[str],
    module: nn.Module,
    ema: EMA,
    *,
    sharded: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Load a checkpoint's network, uncertainty net and EMA into ``module`` and ``ema`` in place, and
    under FSDP2 (``sharded``) its optimizer state too when ``optimizer`` is given.

    A single-process checkpoint's keys and shapes must match the model exactly: a ValueError names the
    first missing or unexpected key, or the key whose shape differs (a checkpoint of another config).
    """
    directory = Path(directory)
    saved_format = load_trainer_state(directory).get("format")
    wanted = "sharded" if sharded else "single"
    if saved_format != wanted:
        raise ValueError(
            f"{directory} is a {saved_format!r} checkpoint but this run needs a {wanted!r} one "
            "(single-process checkpoints load in single-process runs, FSDP2 ones under FSDP2)"
        )
    if sharded:
        distributed.load_sharded(module, optimizer, directory / SHARDED_DIR)
        state = {"ema": ema.state_dict()}
        dcp.load(state, checkpoint_id=directory / EMA_SHARDED_DIR)
        return
    source = str(directory / MODEL_FILE)
    weights = safetensors.torch.load_file(directory / MODEL_FILE)
    check_state_keys(module.state_dict(), weights, source, "model")
    module.load_state_dict(weights)
    shadows = safetensors.torch.load_file(directory / EMA_FILE)
    prefix = "net."
    ema.load_state_dict(
        {key.removeprefix(prefix): value for key, value in shadows.items()}, str(directory / EMA_FILE)
    )


def load_optimizer_state(
    optimizer: torch.optim.Optimizer,
    saved: Mapping[str, Any],
    names: Sequence[Sequence[str]],
    source: str,
) -> None:
    """Load a single-process optimizer state into ``optimizer`` after checking that it belongs to these
    parameters: the same names per param group (``names``, as saved in ``saved["param_names"]``) and
    moments of the parameters' shapes. ValueError names the first parameter that does not match."""
    saved_names = saved.get("param_names")
    state = saved.get("optimizer")
    if state is None or saved_names is None:
        raise ValueError(f"{source}: no optimizer state to resume from")
    if [list(g) for g in saved_names] != [list(g) for g in names]:
        for group, (ours, theirs) in enumerate(zip(names, saved_names, strict=False)):
            for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
                if a != b:
                    raise ValueError(
                        f"{source}: the optimizer state does not match this run's parameters: group {group} "
                        f"entry {i} is {b!r} in the checkpoint, {a!r} here"
                    )
        raise ValueError(
            f"{source}: the optimizer state does not match this run's parameters: the checkpoint has "
            f"{[len(g) for g in saved_names]} parameters per group, this run {[len(g) for g in names]}"
        )
    params = [p for group in optimizer.param_groups for p in group["params"]]
    flat_names = [n for group in names for n in group]
    for index, moments in state["state"].items():
        for key, value in moments.items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape != params[index].shape:
                raise ValueError(
                    f"{source}: the optimizer state does not match this run's parameters: {key} of "
                    f"{flat_names[index]!r} has shape {tuple(value.shape)}, the parameter "
                    f"{tuple(params[index].shape)}"
                )
    optimizer.load_state_dict(state)
