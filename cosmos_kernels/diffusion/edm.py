"""EDM preconditioning as Cosmos-1.0 uses it (Karras et al. 2022, sigma_data = 0.5), and the uncertainty net.

A network F is turned into a denoiser D(x; sigma) = c_skip x + c_out F(c_in x, c_noise) with

    c_skip = sd^2 / (sigma^2 + sd^2)      c_out = sigma sd / sqrt(sigma^2 + sd^2)
    c_in   = 1 / sqrt(sigma^2 + sd^2)     c_noise = ln(sigma) / 4

(cosmos_predict1/diffusion/modules/denoiser_scaling.py EDMScaling). The network sees ``c_noise`` as its
``timesteps`` input, with no further scaling. Training weights the squared error by
lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2, which makes the effective target of F unit-variance,
and learns a log-variance u(sigma) (``logvar`` in Cosmos's checkpoints) for uncertainty weighting.
"""

import math
from collections.abc import Callable

import torch
from torch import nn

from cosmos_kernels.checks import check_int, check_number

Tensor = torch.Tensor
SIGMA_DATA = 0.5


def _is_compiling() -> bool:
    return torch.compiler.is_compiling()


def as_sigma(sigma: Tensor | float, name: str = "sigma") -> Tensor:
    """``sigma`` as a tensor of at least float32 precision (float64 stays float64), checked positive.

    The check reads the values, which synchronizes with the device; it is skipped under torch.compile.
    """
    if not isinstance(sigma, Tensor):
        sigma = check_number("as_sigma", name, sigma, positive=True)
    sigma = torch.as_tensor(sigma)
    if not sigma.is_floating_point():
        sigma = sigma.float()
    sigma = sigma.to(torch.promote_types(sigma.dtype, torch.float32))
    if not _is_compiling() and not bool((sigma > 0).all() & torch.isfinite(sigma).all()):
        raise ValueError(f"{name} must be positive and finite, got {sigma}")
    return sigma


def edm_scalings(
    sigma: Tensor | float, sigma_data: float = SIGMA_DATA
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) of EDM, each shaped like ``sigma`` (float32, or float64 if given)."""
    check_number("edm_scalings", "sigma_data", sigma_data, positive=True)
    sigma = as_sigma(sigma)
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = total.rsqrt()
    c_noise = 0.25 * sigma.log()
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: Tensor | float, sigma_data: float = SIGMA_DATA) -> Tensor:
    """EDM's per-sigma loss weight lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2."""
    check_number("loss_weight", "sigma_data", sigma_data, positive=True)
    sigma = as_sigma(sigma)
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def batch_sigma(sigma: Tensor | float, batch: int, device: torch.device) -> Tensor:
    """A number, a 0-dim, (1,) or (B,) tensor as a (B,) tensor of sigmas on ``device``."""
    sigma = as_sigma(sigma)
    if sigma.dim() > 1 or sigma.numel() not in (1, batch):
        raise ValueError(
            f"sigma must be a number or a tensor of 1 or B={batch} values, got shape {tuple(sigma.shape)}"
        )
    return sigma.reshape(-1).to(device).expand(batch)


def per_sample(values: Tensor, like: Tensor) -> Tensor:
    """(B,) values viewed as (B, 1, ..., 1) to broadcast against ``like`` (B, ...)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def _net_dtype(net: Callable[..., Tensor], fallback: torch.dtype) -> torch.dtype:
    if isinstance(net, nn.Module):
        for parameter in net.parameters():
            return parameter.dtype
    return fallback


class EDMDenoiser(nn.Module):
    """D(x; sigma) = c_skip x + c_out net(c_in x, c_noise, crossattn_emb, **conditions): the x0 estimate.

    ``net`` is any callable with Cosmos's GeneralDIT forward, ``net(x, timesteps, crossattn_emb, *, fps=None,
    padding_mask=None, crossattn_mask=None, condition_video_input_mask=None) -> (B, C, T, H, W)``; it gets
    ``x`` already multiplied by c_in and ``timesteps`` = c_noise of shape (B,). Its inputs (and every
    floating-point tensor among ``conditions``) are cast to the dtype of its parameters, as Cosmos runs the
    net in bfloat16; the preconditioning itself is computed in float32 (float64 for float64 ``x``).
    """

    def __init__(self, net: Callable[..., Tensor], sigma_data: float = SIGMA_DATA) -> None:
        super().__init__()
        if not callable(net):
            raise TypeError(f"net must be callable, got {type(net).__name__}")
        check_number("EDMDenoiser", "sigma_data", sigma_data, positive=True)
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(
        self, x: Tensor, sigma: Tensor | float, crossattn_emb: Tensor, **conditions: object
    ) -> Tensor:
        """The x0 estimate for noisy latents ``x`` (B, ...) at noise level ``sigma`` (a number or (B,)).

        Returns a tensor shaped like ``x`` in float32 (float64 when ``x`` is float64).
        """
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1:
            raise TypeError("x must be a floating-point tensor with a leading batch dimension")
        if not isinstance(crossattn_emb, Tensor) or crossattn_emb.dim() < 1:
            raise TypeError("crossattn_emb must be a tensor (B, L, D)")
        if crossattn_emb.shape[0] != x.shape[0]:
            raise ValueError(
                f"crossattn_emb has batch {crossattn_emb.shape[0]}, x has batch {x.shape[0]} "
                f"(crossattn_emb shape {tuple(crossattn_emb.shape)}, x shape {tuple(x.shape)})"
            )
        compute = torch.promote_types(x.dtype, torch.float32)
        sigma = batch_sigma(sigma, x.shape[0], x.device).to(compute)
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, self.sigma_data)
        x = x.to(compute)
        dtype = _net_dtype(self.net, compute)
        cast = {
            name: value.to(dtype) if isinstance(value, Tensor) and value.is_floating_point() else value
            for name, value in conditions.items()
        }
        net_in = (per_sample(c_in, x) * x).to(dtype)
        out = self.net(net_in, c_noise.to(dtype), crossattn_emb.to(dtype), **cast)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"net returned {shape}, expected a tensor shaped like x {tuple(x.shape)}")
        return per_sample(c_skip, x) * x + per_sample(c_out, x) * out.to(compute)


class FourierFeatures(nn.Module):
    """Random Fourier features of a scalar: (B,) -> (B, C), ``gain * cos(x * freqs + phases)``.

    ``freqs`` ~ 2 pi bandwidth N(0, 1) and ``phases`` ~ 2 pi U(0, 1) are fixed buffers saved in the state
    dict; ``gain`` is sqrt(2) when ``normalize`` (unit mean square). Cosmos's class of the same name.
    """

    def __init__(
        self,
        num_channels: int,
        bandwidth: float = 1.0,
        normalize: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_int("FourierFeatures", "num_channels", num_channels, 1)
        freqs = 2 * math.pi * bandwidth * torch.randn(num_channels, generator=generator)
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels, generator=generator))
        self.gain = math.sqrt(2) if normalize else 1.0

    def forward(self, x: Tensor) -> Tensor:
        """Features of the (B,) values ``x``, (B, C) in float32."""
        angles = torch.outer(x.reshape(-1).float(), self.freqs.float()) + self.phases.float()
        return angles.cos() * self.gain


class UncertaintyNet(nn.Sequential):
    """u(sigma) = Linear(C -> 1, no bias)(FourierFeatures(C, normalize=True)(c_noise)): (B,) -> (B,).

    The learned log-variance of the EDM loss (Cosmos's ``logvar`` module; training only). Its state-dict
    keys ``0.freqs``, ``0.phases``, ``1.weight`` match Cosmos's ``logvar.*`` checkpoint keys with that
    prefix removed. It takes c_noise = ln(sigma) / 4, as Cosmos feeds it.
    """

    def __init__(self, num_channels: int = 128, generator: torch.Generator | None = None) -> None:
        super().__init__(
            FourierFeatures(num_channels, normalize=True, generator=generator),
            nn.Linear(num_channels, 1, bias=False),
        )

    def forward(self, c_noise: Tensor) -> Tensor:
        """u for each of the (B,) noise conditionings ``c_noise``, (B,) in float32."""
        features = self[0](c_noise)
        return self[1](features.to(self[1].weight.dtype)).reshape(-1).float()
