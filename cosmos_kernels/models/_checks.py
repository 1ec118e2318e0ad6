"""What the model builders and checkpoint loaders share: named configs with overrides, and the exact
comparison of a state dict against a model's."""

from collections.abc import Collection, Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

import torch

Config = TypeVar("Config")


def named_config(kind: str, table: Mapping[str, Config], name: str, overrides: Mapping[str, Any]) -> Config:
    """``table[name]`` (a dataclass) with ``overrides`` replaced; an unknown name or field names it."""
    if name not in table:
        raise ValueError(f"unknown {kind} config {name!r}; known: {', '.join(table)}")
    valid = [f.name for f in fields(table[name])]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(f"unknown {kind} config key(s) {unknown}; valid keys: {', '.join(valid)}")
    return replace(table[name], **overrides)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def check_state_dict(
    ours: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    required: Collection[str],
    prefix: str = "",
) -> None:
    """ValueError naming the first key of ``given`` the model lacks, the first ``required`` key missing
    from ``given``, or the first shape mismatch (both shapes); keys are reported with ``prefix``."""
    unexpected = [prefix + k for k in given if k not in ours]
    if unexpected:
        raise ValueError(f"unexpected key {unexpected[0]!r} in the state dict (all: {_listed(unexpected)})")
    missing = [prefix + k for k in required if k not in given]
    if missing:
        raise ValueError(f"missing key {missing[0]!r} in the state dict (all: {_listed(missing)})")
    for key, value in given.items():
        if value.shape != ours[key].shape:
            raise ValueError(
                f"shape mismatch for {prefix + key!r}: state dict {tuple(value.shape)}, "
                f"model {tuple(ours[key].shape)}"
            )
