"""Load a Cosmos-1.0 diffusion checkpoint (``model.pt`` of Cosmos-1.0-Diffusion-7B-Text2World etc.).

Cosmos saves the diffusion model's ``ModuleDict{"net", "logvar"}``: keys ``net.<GeneralDIT key>`` and
``logvar.{0.freqs, 0.phases, 1.weight}`` (the training-time uncertainty net). Our GeneralDIT carries
Cosmos's module names, so the ``net.`` keys load without renaming. Skipped, because they hold no
weights of ours: ``net.pos_embedder.seq`` (a position arange), TransformerEngine's ``*._extra_state``
entries, and ``logvar.*`` unless a module to receive them is given. Everything else must match: a
missing or unknown key, or a shape mismatch, is a ValueError naming the key.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from cosmos_kernels.models._checks import check_state_dict
from cosmos_kernels.models.dit import GeneralDIT

Tensor = torch.Tensor
SKIPPED_NET_KEYS = ("pos_embedder.seq",)
NESTING_KEYS = ("model", "state_dict")


@dataclass(frozen=True)
class LoadedDiTState:
    """What :func:`load_cosmos_state_dict` did: keys it skipped, and whether it loaded ``logvar``."""

    skipped_keys: tuple[str, ...]
    loaded_logvar: bool


def _load_exactly(module: nn.Module, given: dict[str, Tensor], prefix: str) -> None:
    ours = module.state_dict()
    check_state_dict(ours, given, required=ours, prefix=prefix)
    # assign=True so that a model built on the meta device takes the tensors as they are.
    on_meta = any(t.is_meta for t in ours.values())
    module.load_state_dict(given, strict=True, assign=on_meta)


def load_cosmos_state_dict(
    model: GeneralDIT, state_dict: Mapping[str, object], *, logvar: nn.Module | None = None
) -> LoadedDiTState:
    """Copy a Cosmos diffusion state dict into ``model`` (and its ``logvar.*`` into ``logvar``).

    Accepts the flat dict of ``model.pt`` (``net.*`` keys), the same nested under "model" or
    "state_dict", or a bare GeneralDIT state dict without the ``net.`` prefix. A model built under
    ``torch.device("meta")`` receives the checkpoint's tensors themselves.
    """
    if not isinstance(model, GeneralDIT):
        raise TypeError(f"model must be a GeneralDIT (from build_dit), got {type(model).__name__}")
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    for nesting in NESTING_KEYS:
        if set(state_dict) == {nesting} and isinstance(state_dict[nesting], Mapping):
            state_dict = state_dict[nesting]
    prefixed = any(k.startswith("net.") for k in state_dict)
    net: dict[str, Tensor] = {}
    logvar_state: dict[str, Tensor] = {}
    skipped = []
    for key, value in state_dict.items():
        if key.endswith("._extra_state"):
            skipped.append(key)
            continue
        if not isinstance(value, Tensor):
            raise TypeError(f"state_dict[{key!r}] must be a tensor, got {type(value).__name__}")
        if key.startswith("logvar."):
            if logvar is None:
                skipped.append(key)
            else:
                logvar_state[key.removeprefix("logvar.")] = value
            continue
        if prefixed and not key.startswith("net."):
            raise ValueError(f"unexpected key {key!r} in the state dict (expected net.* and logvar.* keys)")
        name = key.removeprefix("net.") if prefixed else key
        if name in SKIPPED_NET_KEYS:
            skipped.append(key)
        else:
            net[name] = value
    if not net:
        raise ValueError("the state dict has no DiT weights (keys net.*)")
    _load_exactly(model, net, "net." if prefixed else "")
    if logvar is not None:
        if not logvar_state:
            raise ValueError("a logvar module was given but the state dict has no logvar.* keys")
        _load_exactly(logvar, logvar_state, "logvar.")
    return LoadedDiTState(tuple(skipped), logvar is not None)
