"""Latent normalization between the tokenizer and a diffusion model, as Cosmos's pipelines do it.

The tokenizer's raw latents are not unit-scaled. Cosmos's diffusion models see
``z = (latent - mean) / std * sigma_data`` and decode ``latent = z / sigma_data * std + mean``
(cosmos_predict1/diffusion/module/pretrained_vae.py: the tokenizer wrapper subtracts and divides;
the diffusion model multiplies by sigma_data = 0.5). ``mean`` and ``std`` come from the checkpoint's
``mean_std.pt`` and are per channel *and per latent frame*: the causal first latent frame, which
encodes a single image, has statistics of its own. Cosmos views each as (C, -1) and keeps the first
T_lat columns for latents of T_lat frames; this module does the same, and broadcasts statistics with
one column to every frame. It is kept outside the network so that the tokenizer stays Cosmos's.
"""

from os import PathLike

import torch

Tensor = torch.Tensor
SIGMA_DATA = 0.5


def load_latent_stats(path: str | PathLike[str]) -> tuple[Tensor, Tensor]:
    """(mean, std) from a file like Cosmos's ``mean_std.pt``: a pair of tensors saved by ``torch.save``."""
    stats = torch.load(path, map_location="cpu", weights_only=True)
    if not (
        isinstance(stats, tuple | list) and len(stats) == 2 and all(isinstance(s, Tensor) for s in stats)
    ):
        raise ValueError(f"load_latent_stats: {path} must hold a (mean, std) pair of tensors")
    return stats[0], stats[1]


def _per_frame(stat: Tensor, latents: Tensor, name: str) -> Tensor:
    """``stat`` shaped to broadcast against (B, C, T, h, w) video or (B, C, h, w) image latents."""
    channels = latents.shape[1]
    frames = latents.shape[2] if latents.dim() == 5 else 1
    if stat.numel() % channels:
        raise ValueError(
            f"{name} has {stat.numel()} elements, not a multiple of the latents' {channels} channels"
        )
    columns = stat.reshape(channels, -1)
    if columns.shape[1] == 1:
        columns = columns.expand(channels, frames)
    elif columns.shape[1] < frames:
        raise ValueError(
            f"{name} holds statistics for {columns.shape[1]} latent frames, the latents have {frames}"
        )
    shape = (1, channels, frames, 1, 1) if latents.dim() == 5 else (1, channels, 1, 1)
    return columns[:, :frames].reshape(shape).to(latents)


def _stats(latents: Tensor, mean: Tensor | None, std: Tensor | None) -> tuple[Tensor, Tensor] | None:
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither (identity statistics)")
    if latents.dim() not in (4, 5):
        raise ValueError(f"latents must be (B, C, T, h, w) or (B, C, h, w), got shape {tuple(latents.shape)}")
    if mean is None or std is None:
        return None
    return _per_frame(mean, latents, "mean"), _per_frame(std, latents, "std")


def normalize_latents(
    latents: Tensor, mean: Tensor | None = None, std: Tensor | None = None, sigma_data: float = SIGMA_DATA
) -> Tensor:
    """Tokenizer latents to diffusion-model latents: ``(latents - mean) / std * sigma_data``.

    ``mean`` and ``std`` hold C * N values for C latent channels and N latent frames (any shape, as
    read from ``mean_std.pt``); frame j uses column j, and N = 1 applies to every frame. Without
    statistics only ``sigma_data`` scales.
    """
    stats = _stats(latents, mean, std)
    if stats is not None:
        latents = (latents - stats[0]) / stats[1]
    return latents * sigma_data


def denormalize_latents(
    z: Tensor, mean: Tensor | None = None, std: Tensor | None = None, sigma_data: float = SIGMA_DATA
) -> Tensor:
    """The inverse of :func:`normalize_latents`: ``z / sigma_data * std + mean``."""
    stats = _stats(z, mean, std)
    z = z / sigma_data
    return z if stats is None else z * stats[1] + stats[0]
