"""An exponential moving average of a module's parameters, the weights Cosmos samples with."""

from collections.abc import Mapping

import torch
from torch import nn

from cosmos_kernels.checks import check_number

Tensor = torch.Tensor


class EMA:
    """Shadow copies of ``module``'s parameters, updated after each optimizer step as

        ema <- decay * ema + (1 - decay) * param

    The shadows keep the parameters' dtype (float32 master weights), device and, under FSDP2, their
    sharding (DTensor shards): each rank averages only its own shard.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = check_number("EMA", "decay", decay, minimum=0, maximum=1)
        self.shadow: dict[str, Tensor] = {
            name: param.detach().clone() for name, param in module.named_parameters()
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One EMA step towards ``module``'s current parameters."""
        for name, param in module.named_parameters():
            self.shadow[name].lerp_(param.detach(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        """The shadow parameters by name (the tensors themselves, not copies)."""
        return dict(self.shadow)

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Tensor], source: str = "state") -> None:
        """Copy ``state`` into the shadows; raises ValueError naming a missing, unexpected or
        wrongly shaped key (``source`` names where the state came from in the message)."""
        check_state_keys(self.shadow, state, source, "EMA")
        for name, value in state.items():
            self.shadow[name].copy_(value)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Overwrite ``module``'s parameters with the averages (to sample with the EMA weights)."""
        for name, param in module.named_parameters():
            param.copy_(self.shadow[name])


def check_state_keys(ours: Mapping[str, Tensor], given: Mapping[str, Tensor], source: str, what: str) -> None:
    """Raise ValueError unless ``given`` has exactly ``ours``'s keys with the same shapes; the message
    names ``source``, the first missing or unexpected keys, or the key whose shapes differ."""
    missing = [k for k in ours if k not in given]
    unexpected = [k for k in given if k not in ours]
    if missing or unexpected:
        raise ValueError(
            f"{source}: the {what} weights do not fit this model (a checkpoint of another config?): "
            f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, value in given.items():
        if tuple(value.shape) != tuple(ours[key].shape):
            raise ValueError(
                f"{source}: {what} key {key!r} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(ours[key].shape)} in this model (a checkpoint of another config?)"
            )
