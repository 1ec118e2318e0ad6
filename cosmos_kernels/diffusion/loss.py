"""EDM denoising score matching as Cosmos-1.0 trains it, with learned uncertainty weighting.

For clean latents x0 (B, C, T, H, W), sigma with ln(sigma) ~ N(p_mean, p_std^2) (Cosmos's training config:
N(0, 1)), times sqrt(T) for videos when ``adjust_video_noise``, and eps ~ N(0, I):

    x_t = x0 + sigma eps,   L = lambda(sigma) (D(x_t; sigma) - x0)^2,   loss = mean(L exp(-u) + u)

where u = u(c_noise) is the uncertainty net's log-variance per sample and the mean runs over every
element (Cosmos's ``loss_reduce="mean"``; cosmos_predict1/diffusion/training/models/model_image.py).
Images train as 1-frame videos, so a joint image/video schedule alternates batches of T = 1 and T > 1.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from cosmos_kernels.checks import check_int
from cosmos_kernels.diffusion.conditioning import VideoCondition
from cosmos_kernels.diffusion.edm import SIGMA_DATA, EDMDenoiser, edm_scalings, loss_weight, per_sample
from cosmos_kernels.diffusion.latents import normalize_latents
from cosmos_kernels.diffusion.samplers import as_generator, initial_noise

Tensor = torch.Tensor


@dataclass(frozen=True)
class EDMLossParts:
    """Detached parts of one loss evaluation, for logging: scalars ``edm_loss`` (mean lambda-weighted
    squared error) and ``mse`` (mean squared error), per-sample ``logvar`` u (B,) (zeros without an
    uncertainty net) and ``sigma`` (B,)."""

    edm_loss: Tensor
    mse: Tensor
    logvar: Tensor
    sigma: Tensor


def sample_training_sigma(
    batch_size: int,
    *,
    p_mean: float = 0.0,
    p_std: float = 1.0,
    num_frames: int = 1,
    adjust_video_noise: bool = False,
    generator: torch.Generator | int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """(B,) float32 training noise levels: exp(N(p_mean, p_std^2)), times sqrt(num_frames) when
    ``adjust_video_noise`` (Cosmos's video noise multiplier; an image, num_frames = 1, is unaffected)."""
    check_int("sample_training_sigma", "batch_size", batch_size, 1)
    check_int("sample_training_sigma", "num_frames", num_frames, 1)
    if not (math.isfinite(p_mean) and math.isfinite(p_std) and p_std >= 0):
        raise ValueError(f"p_mean must be finite and p_std finite and >= 0, got {p_mean}, {p_std}")
    log_sigma = initial_noise((batch_size,), generator, device=device) * p_std + p_mean
    multiplier = math.sqrt(num_frames) if adjust_video_noise else 1.0
    return log_sigma.exp() * multiplier


def normalize_domain_latents(
    latents: Tensor,
    domain: str,
    stats: Mapping[str, tuple[Tensor, Tensor] | None],
    sigma_data: float = SIGMA_DATA,
) -> Tensor:
    """Tokenizer latents of one domain ("image", "video", ...) as diffusion latents (B, C, T, h, w).

    ``stats[domain]`` is that tokenizer's (mean, std), or None for sigma_data scaling alone; image latents
    (B, C, h, w) become 1-frame videos. The arithmetic is ``normalize_latents``.
    """
    if domain not in stats:
        raise ValueError(f"no latent statistics for domain {domain!r}; stats has {sorted(stats)}")
    if not isinstance(latents, Tensor) or latents.dim() not in (4, 5):
        raise ValueError("latents must be a (B, C, T, h, w) video or (B, C, h, w) image tensor")
    pair = stats[domain]
    mean, std = (None, None) if pair is None else pair
    z = normalize_latents(latents, mean, std, sigma_data)
    return z.unsqueeze(2) if z.dim() == 4 else z


def edm_training_loss(
    denoiser: EDMDenoiser,
    x0: Tensor,
    crossattn_emb: Tensor,
    *,
    uncertainty: torch.nn.Module | None = None,
    sigma: Tensor | None = None,
    noise: Tensor | None = None,
    p_mean: float = 0.0,
    p_std: float = 1.0,
    adjust_video_noise: bool = False,
    video_condition: VideoCondition | None = None,
    generator: torch.Generator | int | None = None,
    **conditions: object,
) -> tuple[Tensor, EDMLossParts]:
    """The scalar training loss for clean latents ``x0`` (B, C, T, H, W) (an image: T = 1), and its parts.

    ``sigma`` (B,) and ``noise`` (like x0) are drawn when not given (see ``sample_training_sigma``).
    ``uncertainty`` is the ``UncertaintyNet`` (its u weights the loss; without it, loss = mean(L)).
    ``video_condition`` (from ``video2world_training_condition``) trains Video2World: its frames enter the
    network noise-augmented with ``condition_video_input_mask`` set, and their x0 estimate is replaced by
    x0, so they add nothing to L (the mean still counts them, as Cosmos's does). ``conditions`` go to the
    network.
    """
    if not isinstance(denoiser, EDMDenoiser):
        raise TypeError(f"denoiser must be an EDMDenoiser, got {type(denoiser).__name__}")
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.dim() != 5:
        raise ValueError("x0 must be a floating-point (B, C, T, H, W) tensor; an image is a 1-frame video")
    x0 = x0.float()
    generator = as_generator(generator)
    batch = x0.shape[0]
    if sigma is None:
        sigma = sample_training_sigma(
            batch,
            p_mean=p_mean,
            p_std=p_std,
            num_frames=x0.shape[2],
            adjust_video_noise=adjust_video_noise,
            generator=generator,
            device=x0.device,
        )
    elif not isinstance(sigma, Tensor) or sigma.shape != (batch,):
        raise ValueError(f"sigma must be a (B,) = ({batch},) tensor")
    if noise is None:
        noise = initial_noise(x0.shape, generator, device=x0.device)
    elif not isinstance(noise, Tensor) or noise.shape != x0.shape:
        raise ValueError(f"noise must be a tensor shaped like x0 {tuple(x0.shape)}")
    _, _, _, c_noise = edm_scalings(sigma.float(), denoiser.sigma_data)
    sigma = sigma.to(c_noise)
    xt = x0 + per_sample(sigma, x0) * noise.float()
    if video_condition is not None:
        if "condition_video_input_mask" in conditions:
            raise ValueError("condition_video_input_mask comes from video_condition; do not pass it")
        conditions["condition_video_input_mask"] = video_condition.input_mask()
        xt = video_condition.impose(xt, sigma)
    x0_pred = denoiser(xt, sigma, crossattn_emb, **conditions)
    if video_condition is not None:
        x0_pred = video_condition.replace_x0(x0_pred, sigma)
    squared = (x0_pred - x0) ** 2
    weighted = per_sample(loss_weight(sigma, denoiser.sigma_data), squared) * squared
    if uncertainty is None:
        logvar = torch.zeros_like(sigma)
        loss = weighted.mean()
    else:
        logvar = uncertainty(c_noise).float()
        loss = (weighted * per_sample(torch.exp(-logvar), weighted) + per_sample(logvar, weighted)).mean()
    parts = EDMLossParts(
        edm_loss=weighted.detach().mean(),
        mse=squared.detach().mean(),
        logvar=logvar.detach(),
        sigma=sigma.detach(),
    )
    return loss, parts
